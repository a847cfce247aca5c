-- Module tables: notifications, translations and search queries.

-- migrate:up
create table public.notifications (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  channel text not null default 'in_app',
  title text not null,
  body text,
  status text not null default 'pending',
  read_at timestamptz,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint notifications_pkey primary key (id),
  -- A user's notifications are theirs: deleted with them.
  constraint notifications_user_id_fkey foreign key (user_id)
    references public.users (id) on delete cascade,
  constraint notifications_channel_check
    check (channel in ('in_app', 'email', 'sms', 'push', 'webhook')),
  constraint notifications_status_check
    check (status in ('pending', 'sent', 'delivered', 'read', 'failed', 'cancelled'))
);
create index idx_notifications_user_id_created_at on public.notifications (user_id, created_at);
create index idx_notifications_status on public.notifications (status);
create trigger set_updated_at before update on public.notifications
  for each row execute function public.set_updated_at();

alter table public.notifications enable row level security;
create policy service_role_all on public.notifications
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.notifications
  for select to authenticated using ((select auth.uid()) = user_id);
create policy own_rows_update on public.notifications
  for update to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
create policy own_rows_delete on public.notifications
  for delete to authenticated using ((select auth.uid()) = user_id);

create table public.translations (
  id uuid not null default gen_random_uuid(),
  key text not null,
  locale text not null,
  value text not null,
  status text not null default 'draft',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint translations_pkey primary key (id),
  constraint translations_key_locale_key unique (key, locale),
  constraint translations_locale_check check (locale ~ '^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$'),
  constraint translations_status_check check (status in ('draft', 'published', 'archived'))
);
create index idx_translations_locale_status on public.translations (locale, status);
create trigger set_updated_at before update on public.translations
  for each row execute function public.set_updated_at();

alter table public.translations enable row level security;
create policy service_role_all on public.translations
  for all to service_role using (true) with check (true);
create policy public_read_published on public.translations
  for select to anon, authenticated using (status = 'published');

create table public.search_queries (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  session_id text,
  query text not null,
  results_count integer,
  occurred_at timestamptz not null default now(),
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint search_queries_pkey primary key (id),
  constraint search_queries_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint search_queries_results_count_check check (results_count is null or results_count >= 0)
);
create index idx_search_queries_user_id_occurred_at on public.search_queries (user_id, occurred_at);
create index idx_search_queries_occurred_at on public.search_queries (occurred_at);
create trigger set_updated_at before update on public.search_queries
  for each row execute function public.set_updated_at();

alter table public.search_queries enable row level security;
create policy service_role_all on public.search_queries
  for all to service_role using (true) with check (true);

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.notifications, public.translations, public.search_queries
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.notifications, public.translations, public.search_queries
  to anon, authenticated, service_role;

-- migrate:down
drop table public.search_queries;
drop table public.translations;
drop table public.notifications;
