-- Content: blogs, quizzes and quiz results.
-- The HNSW index on blogs.vector_embedding is built concurrently in a later
-- no-transaction migration.

-- migrate:up
create table public.blogs (
  id uuid not null default gen_random_uuid(),
  slug text not null,
  title text not null,
  content text,
  author text,
  tags text[] not null default '{}',
  vector_embedding extensions.vector(1536),
  emotion text,
  status text not null default 'draft',
  published_at timestamptz,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint blogs_pkey primary key (id),
  constraint blogs_slug_key unique (slug),
  constraint blogs_status_check check (status in ('draft', 'published', 'archived'))
);
create index idx_blogs_status on public.blogs (status);
create index idx_blogs_tags on public.blogs using gin (tags);
create trigger set_updated_at before update on public.blogs
  for each row execute function public.set_updated_at();

alter table public.blogs enable row level security;
create policy service_role_all on public.blogs
  for all to service_role using (true) with check (true);
create policy public_read_published on public.blogs
  for select to anon, authenticated using (status = 'published');

create table public.quizzes (
  id uuid not null default gen_random_uuid(),
  slug text not null,
  title text not null,
  questions jsonb not null default '[]'::jsonb,
  answers jsonb not null default '[]'::jsonb,
  logic jsonb not null default '{}'::jsonb,
  personalization_map jsonb not null default '{}'::jsonb,
  last_used_at timestamptz,
  status text not null default 'draft',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint quizzes_pkey primary key (id),
  constraint quizzes_slug_key unique (slug),
  constraint quizzes_status_check check (status in ('draft', 'published', 'archived'))
);
create index idx_quizzes_status on public.quizzes (status);
create trigger set_updated_at before update on public.quizzes
  for each row execute function public.set_updated_at();

alter table public.quizzes enable row level security;
create policy service_role_all on public.quizzes
  for all to service_role using (true) with check (true);
create policy public_read_published on public.quizzes
  for select to anon, authenticated using (status = 'published');

create table public.quiz_results (
  id uuid not null default gen_random_uuid(),
  quiz_id uuid not null,
  user_id uuid,
  session_id text,
  score numeric,
  answers jsonb not null default '{}'::jsonb,
  archetype text,
  product_stack jsonb not null default '[]'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint quiz_results_pkey primary key (id),
  -- Results are children of their quiz (meaningless without its questions);
  -- quizzes are retired with status = 'archived', not deleted.
  constraint quiz_results_quiz_id_fkey foreign key (quiz_id)
    references public.quizzes (id) on delete cascade,
  -- Results stay (anonymised) for analytics when the user is deleted.
  constraint quiz_results_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null
);
create index idx_quiz_results_quiz_id on public.quiz_results (quiz_id, created_at);
create index idx_quiz_results_user_id on public.quiz_results (user_id, created_at);
create index idx_quiz_results_session_id on public.quiz_results (session_id);
create trigger set_updated_at before update on public.quiz_results
  for each row execute function public.set_updated_at();

alter table public.quiz_results enable row level security;
create policy service_role_all on public.quiz_results
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.quiz_results
  for select to authenticated using ((select auth.uid()) = user_id);
create policy own_rows_insert on public.quiz_results
  for insert to authenticated with check ((select auth.uid()) = user_id);

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.blogs, public.quizzes, public.quiz_results
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.blogs, public.quizzes, public.quiz_results
  to anon, authenticated, service_role;

-- migrate:down
drop table public.quiz_results;
drop table public.quizzes;
drop table public.blogs;
