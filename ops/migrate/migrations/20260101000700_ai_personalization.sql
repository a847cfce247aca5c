-- AI and personalisation: persona profiles, the memory graph and versioned
-- prompts. The HNSW index on memory_nodes.vector_embedding is built
-- concurrently in a later no-transaction migration.

-- migrate:up
create table public.persona_profiles (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  session_id text,
  persona_tags text[] not null default '{}',
  fusion_scores jsonb not null default '{}'::jsonb,
  feedback jsonb not null default '{}'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint persona_profiles_pkey primary key (id),
  -- Profiling data is personal and owned by the user: erased with them.
  constraint persona_profiles_user_id_fkey foreign key (user_id)
    references public.users (id) on delete cascade
);
create index idx_persona_profiles_user_id on public.persona_profiles (user_id);
create index idx_persona_profiles_session_id on public.persona_profiles (session_id);
create trigger set_updated_at before update on public.persona_profiles
  for each row execute function public.set_updated_at();

alter table public.persona_profiles enable row level security;
create policy service_role_all on public.persona_profiles
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.persona_profiles
  for select to authenticated using ((select auth.uid()) = user_id);
create policy own_rows_insert on public.persona_profiles
  for insert to authenticated with check ((select auth.uid()) = user_id);
create policy own_rows_update on public.persona_profiles
  for update to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
create policy own_rows_delete on public.persona_profiles
  for delete to authenticated using ((select auth.uid()) = user_id);

create table public.memory_nodes (
  id uuid not null default gen_random_uuid(),
  type text not null,
  slug text not null,
  content text,
  vector_embedding extensions.vector(1536),
  source text,
  usage_score double precision not null default 0,
  version integer not null default 1,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint memory_nodes_pkey primary key (id),
  constraint memory_nodes_slug_key unique (slug),
  constraint memory_nodes_type_check
    check (type in ('fact', 'concept', 'summary', 'document', 'insight', 'prompt', 'embedding')),
  constraint memory_nodes_version_check check (version >= 1)
);
create index idx_memory_nodes_type on public.memory_nodes (type);
create trigger set_updated_at before update on public.memory_nodes
  for each row execute function public.set_updated_at();

alter table public.memory_nodes enable row level security;
create policy service_role_all on public.memory_nodes
  for all to service_role using (true) with check (true);

create table public.prompts (
  id uuid not null default gen_random_uuid(),
  name text not null,
  version integer not null default 1,
  body text not null,
  model text,
  status text not null default 'draft',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint prompts_pkey primary key (id),
  constraint prompts_name_version_key unique (name, version),
  constraint prompts_version_check check (version >= 1),
  constraint prompts_status_check check (status in ('draft', 'active', 'deprecated', 'archived'))
);
create index idx_prompts_status on public.prompts (status);
create trigger set_updated_at before update on public.prompts
  for each row execute function public.set_updated_at();

alter table public.prompts enable row level security;
create policy service_role_all on public.prompts
  for all to service_role using (true) with check (true);

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.persona_profiles, public.memory_nodes, public.prompts
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.persona_profiles, public.memory_nodes, public.prompts
  to anon, authenticated, service_role;

-- migrate:down
drop table public.prompts;
drop table public.memory_nodes;
drop table public.persona_profiles;
