-- Module tables: funnels and their steps, A/B tests (tests, variants,
-- assignments) and conversions. Service_role only, except that a signed-in
-- user can read their own A/B assignments and conversions.

-- migrate:up
create table public.funnels (
  id uuid not null default gen_random_uuid(),
  slug text not null,
  name text not null,
  status text not null default 'draft',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint funnels_pkey primary key (id),
  constraint funnels_slug_key unique (slug),
  constraint funnels_status_check check (status in ('draft', 'active', 'paused', 'archived'))
);
create index idx_funnels_status on public.funnels (status);
create trigger set_updated_at before update on public.funnels
  for each row execute function public.set_updated_at();

alter table public.funnels enable row level security;
create policy service_role_all on public.funnels
  for all to service_role using (true) with check (true);

create table public.funnel_steps (
  id uuid not null default gen_random_uuid(),
  funnel_id uuid not null,
  position integer not null,
  name text not null,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint funnel_steps_pkey primary key (id),
  -- Also the index for the funnel_id foreign key (leading column).
  constraint funnel_steps_funnel_id_position_key unique (funnel_id, position),
  constraint funnel_steps_funnel_id_fkey foreign key (funnel_id)
    references public.funnels (id) on delete cascade,
  constraint funnel_steps_position_check check (position >= 0)
);
create trigger set_updated_at before update on public.funnel_steps
  for each row execute function public.set_updated_at();

alter table public.funnel_steps enable row level security;
create policy service_role_all on public.funnel_steps
  for all to service_role using (true) with check (true);

create table public.ab_tests (
  id uuid not null default gen_random_uuid(),
  slug text not null,
  name text not null,
  status text not null default 'draft',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ab_tests_pkey primary key (id),
  constraint ab_tests_slug_key unique (slug),
  constraint ab_tests_status_check
    check (status in ('draft', 'running', 'paused', 'completed', 'archived'))
);
create index idx_ab_tests_status on public.ab_tests (status);
create trigger set_updated_at before update on public.ab_tests
  for each row execute function public.set_updated_at();

alter table public.ab_tests enable row level security;
create policy service_role_all on public.ab_tests
  for all to service_role using (true) with check (true);

create table public.ab_variants (
  id uuid not null default gen_random_uuid(),
  test_id uuid not null,
  name text not null,
  weight numeric(8, 4) not null default 1,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ab_variants_pkey primary key (id),
  -- Also the index for the test_id foreign key (leading column).
  constraint ab_variants_test_id_name_key unique (test_id, name),
  -- Target of ab_assignments' composite FK (variant must belong to the test).
  constraint ab_variants_id_test_id_key unique (id, test_id),
  constraint ab_variants_test_id_fkey foreign key (test_id)
    references public.ab_tests (id) on delete cascade,
  constraint ab_variants_weight_check check (weight >= 0)
);
create trigger set_updated_at before update on public.ab_variants
  for each row execute function public.set_updated_at();

alter table public.ab_variants enable row level security;
create policy service_role_all on public.ab_variants
  for all to service_role using (true) with check (true);

create table public.ab_assignments (
  id uuid not null default gen_random_uuid(),
  test_id uuid not null,
  variant_id uuid not null,
  user_id uuid,
  session_id text not null,
  assigned_at timestamptz not null default now(),
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ab_assignments_pkey primary key (id),
  -- Also the index for the test_id foreign key (leading column).
  constraint ab_assignments_test_id_session_id_key unique (test_id, session_id),
  constraint ab_assignments_test_id_fkey foreign key (test_id)
    references public.ab_tests (id) on delete cascade,
  constraint ab_assignments_variant_id_fkey foreign key (variant_id, test_id)
    references public.ab_variants (id, test_id) on delete cascade,
  -- Experiment data survives the user's deletion, anonymised.
  constraint ab_assignments_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null
);
create index idx_ab_assignments_variant_id on public.ab_assignments (variant_id, test_id);
create index idx_ab_assignments_user_id on public.ab_assignments (user_id);
create trigger set_updated_at before update on public.ab_assignments
  for each row execute function public.set_updated_at();

alter table public.ab_assignments enable row level security;
create policy service_role_all on public.ab_assignments
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.ab_assignments
  for select to authenticated using ((select auth.uid()) = user_id);

create table public.conversions (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  session_id text,
  offer_id uuid,
  funnel_id uuid,
  value numeric(12, 2),
  currency char(3),
  occurred_at timestamptz not null default now(),
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint conversions_pkey primary key (id),
  -- Conversions are analytics (the ledger is purchases/payout_logs): they
  -- survive the deletion of the user, offer or funnel.
  constraint conversions_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint conversions_offer_id_fkey foreign key (offer_id)
    references public.offers (id) on delete set null,
  constraint conversions_funnel_id_fkey foreign key (funnel_id)
    references public.funnels (id) on delete set null,
  constraint conversions_currency_check check (currency ~ '^[A-Z]{3}$')
);
create index idx_conversions_user_id_occurred_at on public.conversions (user_id, occurred_at);
create index idx_conversions_offer_id on public.conversions (offer_id);
create index idx_conversions_funnel_id on public.conversions (funnel_id);
create index idx_conversions_session_id on public.conversions (session_id);
create index idx_conversions_occurred_at on public.conversions (occurred_at);
create trigger set_updated_at before update on public.conversions
  for each row execute function public.set_updated_at();

alter table public.conversions enable row level security;
create policy service_role_all on public.conversions
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.conversions
  for select to authenticated using ((select auth.uid()) = user_id);

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.funnels, public.funnel_steps, public.ab_tests, public.ab_variants, public.ab_assignments, public.conversions
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.funnels, public.funnel_steps, public.ab_tests, public.ab_variants, public.ab_assignments, public.conversions
  to anon, authenticated, service_role;

-- migrate:down
drop table public.conversions;
drop table public.ab_assignments;
drop table public.ab_variants;
drop table public.ab_tests;
drop table public.funnel_steps;
drop table public.funnels;
