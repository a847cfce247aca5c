-- Realtime publication membership and Supabase-style table grants.
-- Realtime delivers changes subject to each table's RLS policies.
-- The grants are explicit because the default privileges from the bootstrap
-- only apply to tables created by the role that set them. Access is still
-- limited row by row by the RLS policies on every table.

-- migrate:up
alter publication supabase_realtime
  add table public.users, public.offers, public.quiz_results, public.notifications;

grant select, insert, update, delete on all tables in schema public to anon, authenticated, service_role;
grant usage, select on all sequences in schema public to anon, authenticated, service_role;

-- migrate:down
-- The grants are not revoked: they go away with the tables when the earlier
-- migrations are reversed, and revoking them here would also strip the
-- privileges that the default privileges (ours or Supabase's) granted when
-- the tables were created, leaving the tables unlike their pre-up state.
alter publication supabase_realtime
  drop table public.users, public.offers, public.quiz_results, public.notifications;
