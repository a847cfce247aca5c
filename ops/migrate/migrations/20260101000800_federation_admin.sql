-- Federation registry and the admin audit log (service_role only).
-- federation_neurons.api_key_ref holds the NAME of a secret (e.g.
-- NEURON_SEO_API_KEY) kept in the secrets backend, never a key itself; the
-- check constraint only admits an upper-case identifier.

-- migrate:up
create table public.federation_neurons (
  id uuid not null default gen_random_uuid(),
  name text not null,
  type text not null,
  url text,
  api_key_ref text,
  status text not null default 'inactive',
  last_seen_at timestamptz,
  feature_flags jsonb not null default '{}'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint federation_neurons_pkey primary key (id),
  constraint federation_neurons_name_key unique (name),
  constraint federation_neurons_type_check
    check (type in ('content', 'seo', 'affiliate', 'analytics', 'ai', 'commerce', 'social', 'email', 'other')),
  constraint federation_neurons_status_check
    check (status in ('active', 'inactive', 'degraded', 'offline', 'retired')),
  constraint federation_neurons_api_key_ref_check check (api_key_ref ~ '^[A-Z][A-Z0-9_]*$')
);
create index idx_federation_neurons_status on public.federation_neurons (status);
create trigger set_updated_at before update on public.federation_neurons
  for each row execute function public.set_updated_at();

alter table public.federation_neurons enable row level security;
create policy service_role_all on public.federation_neurons
  for all to service_role using (true) with check (true);

create table public.admin_logs (
  id uuid not null default gen_random_uuid(),
  action text not null,
  subject text,
  actor_id text,
  before jsonb,
  after jsonb,
  occurred_at timestamptz not null default now(),
  ip inet,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint admin_logs_pkey primary key (id),
  -- Admin actions are an open set ("offer.update", "user.delete", ...): the
  -- check pins their shape rather than a fixed list.
  constraint admin_logs_action_check check (action ~ '^[a-z][a-z0-9_]*([.:][a-z][a-z0-9_]*)*$')
);
create index idx_admin_logs_occurred_at on public.admin_logs (occurred_at);
create index idx_admin_logs_actor_id_occurred_at on public.admin_logs (actor_id, occurred_at);
create index idx_admin_logs_subject on public.admin_logs (subject);
create trigger set_updated_at before update on public.admin_logs
  for each row execute function public.set_updated_at();

alter table public.admin_logs enable row level security;
create policy service_role_all on public.admin_logs
  for all to service_role using (true) with check (true);

-- Append-only, for everyone: privileges keep the API roles to SELECT and
-- INSERT, and these triggers refuse UPDATE, DELETE and TRUNCATE whoever
-- runs them (service_role, a SECURITY DEFINER function, the owner). The
-- owner's one way to rewrite the log is a visible, explicit
-- `alter table public.admin_logs disable trigger ...` (runbooks/ADMIN_LOGS_APPEND_ONLY.md).
create function public.admin_logs_append_only()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'public.admin_logs is append-only: % is refused', tg_op
    using hint = 'audit rows are never changed or removed; add a new row instead '
                 '(see runbooks/ADMIN_LOGS_APPEND_ONLY.md)';
end;
$$;
comment on function public.admin_logs_append_only() is
  'Trigger function: refuses UPDATE and DELETE (row triggers) and TRUNCATE (statement trigger) '
  'on public.admin_logs, which is append-only.';
revoke all on function public.admin_logs_append_only() from public, anon, authenticated, service_role;
create trigger admin_logs_append_only before update or delete on public.admin_logs
  for each row execute function public.admin_logs_append_only();
create trigger admin_logs_no_truncate before truncate on public.admin_logs
  for each statement execute function public.admin_logs_append_only();

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.federation_neurons
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.federation_neurons
  to anon, authenticated, service_role;
-- admin_logs is append-only: service_role may read and add rows, nothing else;
-- anon and authenticated get nothing (no policy would let them in anyway).
revoke all on table public.admin_logs from anon, authenticated, service_role;
grant select, insert on table public.admin_logs to service_role;

-- migrate:down
drop table public.admin_logs;
drop function public.admin_logs_append_only();
drop table public.federation_neurons;
