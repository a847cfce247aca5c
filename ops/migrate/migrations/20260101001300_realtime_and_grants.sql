-- Realtime publication membership.
-- Realtime delivers changes subject to each table's RLS policies. public.users
-- is published without credentials: those live in empire_private (decision
-- 0008), so no realtime payload can carry them.
--
-- The grants that used to be here (`grant ... on all tables in schema
-- public`) also reached the user's own tables and overrode their revokes.
-- Each table is now granted by the migration that creates it, table by
-- table (see 20260101000300's header); this file keeps its name so that
-- histories that applied it still match.

-- migrate:up
alter publication supabase_realtime
  add table public.users, public.offers, public.quiz_results, public.notifications;

-- migrate:down
alter publication supabase_realtime
  drop table public.users, public.offers, public.quiz_results, public.notifications;
