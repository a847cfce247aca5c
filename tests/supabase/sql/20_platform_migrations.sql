-- Supabase-shaped platform setup, phase 2: what supabase/postgres's
-- migrations/db/migrations leave behind, starting with the demotion of
-- `postgres` (10000000000000_demote-postgres). Run as supabase_admin.
-- Written for empire-ops' tests; see tests/supabase/README.md.

grant all on schema auth, extensions, storage to postgres;

grant all on all tables in schema extensions to postgres;

grant all on all sequences in schema extensions to postgres;

grant all on all routines in schema extensions to postgres;

alter role postgres nosuperuser createdb createrole login replication bypassrls;

-- the services' admins own their schemas' objects; postgres and the dashboard get them too
alter default privileges for role supabase_auth_admin in schema auth grant all on tables to postgres, dashboard_user;

alter default privileges for role supabase_auth_admin in schema auth grant all on sequences to postgres, dashboard_user;

alter default privileges for role supabase_auth_admin in schema auth grant all on routines to postgres, dashboard_user;

create schema if not exists realtime;

grant usage on schema realtime to postgres;

alter default privileges for role supabase_admin in schema realtime grant all on tables to postgres, dashboard_user;

alter default privileges for role supabase_admin in schema realtime grant all on sequences to postgres, dashboard_user;

alter default privileges for role supabase_admin in schema realtime grant all on routines to postgres, dashboard_user;

-- requires library: safeupdate
alter role authenticator set session_preload_libraries = 'safeupdate';

-- PostgREST reloads its schema cache on DDL
create or replace function extensions.pgrst_ddl_watch() returns event_trigger
language plpgsql
as $$
declare
  cmd record;
begin
  for cmd in select * from pg_event_trigger_ddl_commands()
  loop
    if cmd.command_tag in (
      'CREATE SCHEMA', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO',
      'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'CREATE VIEW', 'ALTER VIEW',
      'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW', 'CREATE FUNCTION',
      'ALTER FUNCTION', 'CREATE TRIGGER', 'CREATE TYPE', 'ALTER TYPE', 'CREATE RULE', 'COMMENT'
    ) and cmd.schema_name is distinct from 'pg_temp' then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end;
$$;

create or replace function extensions.pgrst_drop_watch() returns event_trigger
language plpgsql
as $$
declare
  obj record;
begin
  for obj in select * from pg_event_trigger_dropped_objects()
  loop
    if obj.object_type in (
      'schema', 'table', 'foreign table', 'view', 'materialized view', 'function',
      'trigger', 'type', 'rule'
    ) and obj.is_temporary is false then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end;
$$;

create event trigger pgrst_ddl_watch on ddl_command_end
  execute procedure extensions.pgrst_ddl_watch();

create event trigger pgrst_drop_watch on sql_drop
  execute procedure extensions.pgrst_drop_watch();

alter role supabase_auth_admin set idle_in_transaction_session_timeout to 60000;

-- GraphQL: a placeholder entry point until pg_graphql is enabled
create schema if not exists graphql_public;

create or replace function graphql_public.graphql(
    "operationName" text default null,
    query text default null,
    variables jsonb default null,
    extensions jsonb default null
)
returns jsonb
language plpgsql
as $$
begin
    return jsonb_build_object(
        'data', null::jsonb,
        'errors', array['pg_graphql extension is not enabled.']
    );
end;
$$;

grant usage on schema graphql_public to postgres, anon, authenticated, service_role;

alter default privileges in schema graphql_public grant all on tables to postgres, anon, authenticated, service_role;

alter default privileges in schema graphql_public grant all on functions to postgres, anon, authenticated, service_role;

alter default privileges in schema graphql_public grant all on sequences to postgres, anon, authenticated, service_role;

create or replace function extensions.grant_pg_graphql_access()
returns event_trigger
language plpgsql
as $$
begin
  if exists (
    select from pg_event_trigger_ddl_commands() as ev
    join pg_catalog.pg_proc as p on ev.objid = p.oid
    where p.proname = 'resolve'
  ) then
    grant usage on schema graphql to postgres, anon, authenticated, service_role;
    grant execute on all functions in schema graphql to postgres, anon, authenticated, service_role;
  end if;
end;
$$;

create event trigger issue_pg_graphql_access on ddl_command_end
  when tag in ('CREATE FUNCTION')
  execute procedure extensions.grant_pg_graphql_access();

comment on function extensions.grant_pg_graphql_access is 'Grants access to pg_graphql';

create or replace function extensions.set_graphql_placeholder()
returns event_trigger
language plpgsql
as $$
begin
  if exists (
    select from pg_event_trigger_dropped_objects() as ev where ev.object_identity = 'schema graphql'
  ) then
    notify pgrst, 'reload schema';
  end if;
end;
$$;

create event trigger issue_graphql_placeholder on sql_drop
  when tag in ('DROP EXTENSION')
  execute procedure extensions.set_graphql_placeholder();

comment on function extensions.set_graphql_placeholder is 'Reintroduces placeholder function for graphql_public.graphql';

-- requires extension: pg_graphql
create extension if not exists pg_graphql;

-- requires extension: pg_stat_statements
create extension if not exists pg_stat_statements with schema extensions;

-- requires extension: pgsodium
create extension if not exists pgsodium;

-- requires extension: supabase_vault
create extension if not exists supabase_vault;

alter role authenticator set statement_timeout = '8s';

alter role authenticator set lock_timeout to '8s';

revoke supabase_admin from authenticator;

grant supabase_auth_admin, supabase_storage_admin to postgres;

grant anon, authenticated, service_role to postgres;

grant pg_monitor, pg_read_all_data, pg_signal_backend to postgres;

alter role authenticated inherit;

alter role anon inherit;

alter role service_role inherit;

grant authenticator to supabase_storage_admin;
