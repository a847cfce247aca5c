-- Identity: users, their credentials and their sessions.
-- users.id is the Supabase auth user id when the visitor has signed in, so
-- the RLS policies compare it with auth.uid(). (No FK to auth.users: that
-- table is GoTrue's and does not exist on a plain PostgreSQL.)
--
-- Grants: every Empire table is granted table by table, right after it is
-- created, so a table never keeps the ALL that Supabase's default
-- privileges give, and no grant ever reaches a table the Empire does not own
-- (never `on all tables in schema`). `revoke all` first makes the result
-- exact whatever the default privileges were; the down section drops the
-- table, and its grants with it. anon and authenticated get no TRUNCATE,
-- TRIGGER or REFERENCES (TRUNCATE ignores row level security).
--
-- Credentials (password_hash, session_tokens) are not in public.users: they
-- live in empire_private.user_credentials, a schema no API role may use,
-- which PostgREST does not expose and realtime does not publish
-- (docs/decisions/0008-credentials-out-of-api-reach.md).

-- migrate:up
create table public.users (
  id uuid not null default gen_random_uuid(),
  email text,
  anon_id text,
  device_list jsonb not null default '[]'::jsonb,
  consent jsonb not null default '{}'::jsonb,
  last_seen timestamptz,
  geo jsonb,
  archetype text,
  favorites jsonb not null default '[]'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint users_pkey primary key (id),
  constraint users_anon_id_key unique (anon_id),
  constraint users_email_check check (email ~ '^[^@\s]+@[^@\s]+$')
);
-- Case-insensitive uniqueness (citext is not assumed to be available).
create unique index users_email_key on public.users (lower(email));
create index idx_users_last_seen on public.users (last_seen);
create trigger set_updated_at before update on public.users
  for each row execute function public.set_updated_at();

alter table public.users enable row level security;
create policy service_role_all on public.users
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.users
  for select to authenticated using ((select auth.uid()) = id);
create policy own_rows_insert on public.users
  for insert to authenticated with check ((select auth.uid()) = id);
create policy own_rows_update on public.users
  for update to authenticated
  using ((select auth.uid()) = id) with check ((select auth.uid()) = id);
create policy own_rows_delete on public.users
  for delete to authenticated using ((select auth.uid()) = id);
revoke all on table public.users from anon, authenticated, service_role;
grant select, insert, update, delete on table public.users to anon, authenticated, service_role;

-- The schema is the Empire's own (never `if not exists`: a schema of that
-- name that is not ours makes this migration fail instead of adopting it).
create schema empire_private;
revoke all on schema empire_private from public;
create table empire_private.user_credentials (
  user_id uuid not null,
  password_hash text,
  session_tokens jsonb not null default '[]'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint user_credentials_pkey primary key (user_id),
  constraint user_credentials_user_id_fkey foreign key (user_id)
    references public.users (id) on delete cascade
);
create trigger set_updated_at before update on empire_private.user_credentials
  for each row execute function public.set_updated_at();
-- Defence in depth: should an API role ever be given USAGE and SELECT, row
-- level security with no policy still returns nothing.
alter table empire_private.user_credentials enable row level security;
revoke all on table empire_private.user_credentials from public, anon, authenticated, service_role;

create table public.user_sessions (
  id uuid not null default gen_random_uuid(),
  session_id text not null,
  user_id uuid,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  device text,
  ip inet,
  actions jsonb not null default '[]'::jsonb,
  profile_snapshot jsonb,
  consent_status text not null default 'unknown',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint user_sessions_pkey primary key (id),
  constraint user_sessions_session_id_key unique (session_id),
  -- Sessions are owned by their user: deleting the user deletes them.
  constraint user_sessions_user_id_fkey foreign key (user_id)
    references public.users (id) on delete cascade,
  constraint user_sessions_consent_status_check
    check (consent_status in ('unknown', 'granted', 'partial', 'denied', 'withdrawn')),
  constraint user_sessions_ended_at_check check (ended_at is null or ended_at >= started_at)
);
create index idx_user_sessions_user_id_started_at on public.user_sessions (user_id, started_at);
create trigger set_updated_at before update on public.user_sessions
  for each row execute function public.set_updated_at();

alter table public.user_sessions enable row level security;
create policy service_role_all on public.user_sessions
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.user_sessions
  for select to authenticated using ((select auth.uid()) = user_id);
create policy own_rows_insert on public.user_sessions
  for insert to authenticated with check ((select auth.uid()) = user_id);
create policy own_rows_update on public.user_sessions
  for update to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
revoke all on table public.user_sessions from anon, authenticated, service_role;
grant select, insert, update, delete on table public.user_sessions to anon, authenticated, service_role;

-- migrate:down
drop table public.user_sessions;
drop table empire_private.user_credentials;
drop schema empire_private;
drop table public.users;
