-- Signed-out visitors never reach todos, whatever the default privileges say.
revoke all on table public.todos from anon;
