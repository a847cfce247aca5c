-- Event tables, range-partitioned by month on their time column:
--   analytics_events(occurred_at), affiliate_clicks(clicked_at),
--   consent_logs(occurred_at), rlhf_feedback(occurred_at), error_logs(occurred_at)
--
-- * The primary key is (id, <time column>): a partitioned table's unique
--   constraints must include the partition key. Consequently nothing can
--   reference these tables with a foreign key (the FKs FROM them are fine).
-- * Each has a DEFAULT partition <table>_default that catches rows outside
--   the monthly partitions <table>_pYYYYMM (UTC months).
-- * public.create_event_partitions(months_ahead) creates the current and the
--   next N monthly partitions (see the comment on the function); run it from a
--   monthly job. It is called once below.
-- * User references are ON DELETE SET NULL so analytics survive a user's
--   deletion. analytics_events, affiliate_clicks, consent_logs and error_logs
--   are write-only for anon/authenticated (insert policy, no select policy).
-- * RLS is enabled on the parents and on every partition, since partitions
--   can be queried directly; partitions have no policies of their own.

-- migrate:up
create table public.analytics_events (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  session_id text,
  event_type text not null,
  path text,
  occurred_at timestamptz not null default now(),
  referrer text,
  device text,
  conversion_value numeric(12, 2),
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint analytics_events_pkey primary key (id, occurred_at),
  constraint analytics_events_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint analytics_events_event_type_check
    check (event_type in ('page_view', 'click', 'scroll', 'form_submit', 'search',
                          'quiz_start', 'quiz_complete', 'offer_view', 'offer_click',
                          'signup', 'login', 'logout', 'conversion', 'custom'))
) partition by range (occurred_at);
create index idx_analytics_events_user_id_occurred_at on public.analytics_events (user_id, occurred_at);
create index idx_analytics_events_session_id_occurred_at on public.analytics_events (session_id, occurred_at);
create index idx_analytics_events_event_type_occurred_at on public.analytics_events (event_type, occurred_at);
create trigger set_updated_at before update on public.analytics_events
  for each row execute function public.set_updated_at();
create table public.analytics_events_default partition of public.analytics_events default;
alter table public.analytics_events enable row level security;
alter table public.analytics_events_default enable row level security;
create policy service_role_all on public.analytics_events
  for all to service_role using (true) with check (true);
create policy anon_insert_only on public.analytics_events
  for insert to anon, authenticated with check (true);

create table public.affiliate_clicks (
  id uuid not null default gen_random_uuid(),
  offer_id uuid,
  user_id uuid,
  session_id text,
  clicked_at timestamptz not null default now(),
  payout numeric(12, 2),
  cookie text,
  ip inet,
  geo jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint affiliate_clicks_pkey primary key (id, clicked_at),
  -- Clicks are attribution logs, not the money ledger: they outlive offers.
  constraint affiliate_clicks_offer_id_fkey foreign key (offer_id)
    references public.offers (id) on delete set null,
  constraint affiliate_clicks_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint affiliate_clicks_payout_check check (payout is null or payout >= 0)
) partition by range (clicked_at);
create index idx_affiliate_clicks_offer_id_clicked_at on public.affiliate_clicks (offer_id, clicked_at);
create index idx_affiliate_clicks_user_id_clicked_at on public.affiliate_clicks (user_id, clicked_at);
create index idx_affiliate_clicks_session_id_clicked_at on public.affiliate_clicks (session_id, clicked_at);
create trigger set_updated_at before update on public.affiliate_clicks
  for each row execute function public.set_updated_at();
create table public.affiliate_clicks_default partition of public.affiliate_clicks default;
alter table public.affiliate_clicks enable row level security;
alter table public.affiliate_clicks_default enable row level security;
create policy service_role_all on public.affiliate_clicks
  for all to service_role using (true) with check (true);
create policy anon_insert_only on public.affiliate_clicks
  for insert to anon, authenticated with check (true);

create table public.consent_logs (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  session_id text,
  action text not null,
  value jsonb not null default '{}'::jsonb,
  occurred_at timestamptz not null default now(),
  ip inet,
  geo jsonb,
  source text,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint consent_logs_pkey primary key (id, occurred_at),
  constraint consent_logs_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint consent_logs_action_check check (action in ('grant', 'deny', 'update', 'withdraw'))
) partition by range (occurred_at);
create index idx_consent_logs_user_id_occurred_at on public.consent_logs (user_id, occurred_at);
create index idx_consent_logs_session_id_occurred_at on public.consent_logs (session_id, occurred_at);
create trigger set_updated_at before update on public.consent_logs
  for each row execute function public.set_updated_at();
create table public.consent_logs_default partition of public.consent_logs default;
alter table public.consent_logs enable row level security;
alter table public.consent_logs_default enable row level security;
create policy service_role_all on public.consent_logs
  for all to service_role using (true) with check (true);
create policy anon_insert_only on public.consent_logs
  for insert to anon, authenticated with check (true);

create table public.rlhf_feedback (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  session_id text,
  agent_id text,
  signal text not null,
  value numeric,
  target text,
  occurred_at timestamptz not null default now(),
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint rlhf_feedback_pkey primary key (id, occurred_at),
  constraint rlhf_feedback_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint rlhf_feedback_signal_check
    check (signal in ('thumbs_up', 'thumbs_down', 'rating', 'click', 'dwell', 'skip', 'correction'))
) partition by range (occurred_at);
create index idx_rlhf_feedback_user_id_occurred_at on public.rlhf_feedback (user_id, occurred_at);
create index idx_rlhf_feedback_agent_id_occurred_at on public.rlhf_feedback (agent_id, occurred_at);
create trigger set_updated_at before update on public.rlhf_feedback
  for each row execute function public.set_updated_at();
create table public.rlhf_feedback_default partition of public.rlhf_feedback default;
alter table public.rlhf_feedback enable row level security;
alter table public.rlhf_feedback_default enable row level security;
create policy service_role_all on public.rlhf_feedback
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.rlhf_feedback
  for select to authenticated using ((select auth.uid()) = user_id);
create policy own_rows_insert on public.rlhf_feedback
  for insert to authenticated with check ((select auth.uid()) = user_id);

create table public.error_logs (
  id uuid not null default gen_random_uuid(),
  occurred_at timestamptz not null default now(),
  severity text not null default 'error',
  source text,
  message text not null,
  context jsonb not null default '{}'::jsonb,
  user_id uuid,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint error_logs_pkey primary key (id, occurred_at),
  constraint error_logs_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint error_logs_severity_check
    check (severity in ('debug', 'info', 'warning', 'error', 'critical'))
) partition by range (occurred_at);
create index idx_error_logs_severity_occurred_at on public.error_logs (severity, occurred_at);
create index idx_error_logs_user_id_occurred_at on public.error_logs (user_id, occurred_at);
create index idx_error_logs_source_occurred_at on public.error_logs (source, occurred_at);
create trigger set_updated_at before update on public.error_logs
  for each row execute function public.set_updated_at();
create table public.error_logs_default partition of public.error_logs default;
alter table public.error_logs enable row level security;
alter table public.error_logs_default enable row level security;
create policy service_role_all on public.error_logs
  for all to service_role using (true) with check (true);
create policy anon_insert_only on public.error_logs
  for insert to anon, authenticated with check (true);

create function public.create_event_partitions(months_ahead integer default 3)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  ev record;
  i integer;
  base timestamp;
  month_start timestamptz;
  month_end timestamptz;
  lower_bound text;
  upper_bound text;
  part_name text;
  default_name text;
  cols text;
  has_rows boolean;
  created integer := 0;
begin
  if months_ahead is null or months_ahead < 0 then
    raise exception 'create_event_partitions: months_ahead must be >= 0 (got %)', months_ahead;
  end if;

  -- One caller at a time (e.g. a cron job racing a manual run).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('public.create_event_partitions'));

  base := pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC');

  for ev in
    select t.table_name, t.time_column
    from (values
      ('analytics_events', 'occurred_at'),
      ('affiliate_clicks', 'clicked_at'),
      ('consent_logs', 'occurred_at'),
      ('rlhf_feedback', 'occurred_at'),
      ('error_logs', 'occurred_at')
    ) as t(table_name, time_column)
  loop
    default_name := ev.table_name || '_default';

    for i in 0..months_ahead loop
      month_start := (base + pg_catalog.make_interval(months => i)) at time zone 'UTC';
      month_end := (base + pg_catalog.make_interval(months => i + 1)) at time zone 'UTC';
      part_name := ev.table_name || '_p' || pg_catalog.to_char(month_start at time zone 'UTC', 'YYYYMM');

      if pg_catalog.to_regclass(pg_catalog.format('public.%I', part_name)) is not null then
        continue;
      end if;

      -- ISO 8601 with an explicit offset: independent of TimeZone/DateStyle.
      lower_bound := pg_catalog.to_char(month_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';
      upper_bound := pg_catalog.to_char(month_end at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';

      -- A new partition cannot be created while the DEFAULT partition holds
      -- rows in its range. If it does: detach the default, create the
      -- partition, move those rows through the parent (which now routes them
      -- into the new partition), and re-attach the default. All of it runs in
      -- the caller's transaction, so it is all-or-nothing.
      has_rows := false;
      if pg_catalog.to_regclass(pg_catalog.format('public.%I', default_name)) is not null then
        execute pg_catalog.format(
          'select exists (select 1 from public.%I where %I >= $1 and %I < $2)',
          default_name, ev.time_column, ev.time_column)
        into has_rows
        using month_start, month_end;
      end if;

      if has_rows then
        execute pg_catalog.format('alter table public.%I detach partition public.%I',
          ev.table_name, default_name);
      end if;

      execute pg_catalog.format(
        'create table public.%I partition of public.%I for values from (%L) to (%L)',
        part_name, ev.table_name, lower_bound, upper_bound);
      execute pg_catalog.format('alter table public.%I enable row level security', part_name);
      -- Reached through the parent only: none of the ALL that default
      -- privileges give a new table (TRUNCATE would bypass row level security).
      execute pg_catalog.format(
        'revoke all on table public.%I from anon, authenticated, service_role', part_name);

      if has_rows then
        select pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' order by a.attnum)
        into cols
        from pg_catalog.pg_attribute a
        where a.attrelid = pg_catalog.format('public.%I', ev.table_name)::regclass
          and a.attnum > 0
          and not a.attisdropped
          and a.attgenerated = '';
        execute pg_catalog.format(
          'with moved as (delete from public.%I where %I >= $1 and %I < $2 returning *) '
          'insert into public.%I (%s) select %s from moved',
          default_name, ev.time_column, ev.time_column, ev.table_name, cols, cols)
        using month_start, month_end;
        execute pg_catalog.format('alter table public.%I attach partition public.%I default',
          ev.table_name, default_name);
      end if;

      created := created + 1;
    end loop;
  end loop;

  return created;
end;
$$;

comment on function public.create_event_partitions(integer) is
  'Creates the monthly (UTC) partitions <table>_pYYYYMM of the event tables for the current month '
  'and the next months_ahead months when missing, with RLS enabled and no privilege for the API '
  'roles (they go through the parent); rows already caught by the '
  '<table>_default partition in those ranges are moved into the new partition. Returns the number '
  'of partitions created. A partition name that already exists is skipped; a range overlapping a '
  'differently named partition raises an error.';

-- DDL helper: only the owner (the migration/cron role) runs it. Revoke the
-- execute privilege that PUBLIC and Supabase's default privileges would give.
revoke all on function public.create_event_partitions(integer) from public, anon, authenticated, service_role;

select public.create_event_partitions();

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.analytics_events, public.affiliate_clicks, public.consent_logs, public.rlhf_feedback, public.error_logs
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.analytics_events, public.affiliate_clicks, public.consent_logs, public.rlhf_feedback, public.error_logs
  to anon, authenticated, service_role;
-- Partitions are read and written through their parent, whose privileges
-- are the ones checked; direct access gets nothing (TRUNCATE would bypass
-- row level security).
revoke all on table public.analytics_events_default, public.affiliate_clicks_default, public.consent_logs_default, public.rlhf_feedback_default, public.error_logs_default
  from anon, authenticated, service_role;

-- migrate:down
drop function public.create_event_partitions(integer);
drop table public.error_logs;
drop table public.rlhf_feedback;
drop table public.consent_logs;
drop table public.affiliate_clicks;
drop table public.analytics_events;
