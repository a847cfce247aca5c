-- Supabase-shaped platform setup, phase 1: what supabase/postgres's
-- migrations/db/init-scripts (and the image's pgbouncer 00-schema.sql) leave
-- behind. Run as `postgres` while it is still a superuser, as migrate.sh does.
-- Written for empire-ops' tests; see tests/supabase/README.md. A statement
-- marked "-- requires extension: X" is skipped (and recorded) when X cannot be
-- created on the server under test.

create publication supabase_realtime;

alter role supabase_admin with superuser createdb createrole replication bypassrls;

create role supabase_replication_admin with login replication;

create role supabase_read_only_user with login bypassrls;

grant pg_read_all_data to supabase_read_only_user;

-- pgbouncer's auth lookup
create role pgbouncer login;

revoke all privileges on schema public from pgbouncer;

create schema pgbouncer authorization pgbouncer;

create function pgbouncer.get_auth(p_usename text)
returns table (username text, password text)
language plpgsql security definer
as $$
begin
    raise warning 'PgBouncer auth request: %', p_usename;
    return query
    select usename::text, passwd::text from pg_catalog.pg_shadow where usename = p_usename;
end;
$$;

revoke all on function pgbouncer.get_auth(text) from public;

grant execute on function pgbouncer.get_auth(text) to pgbouncer;

-- extensions live in their own schema
create schema if not exists extensions;

-- requires extension: uuid-ossp
create extension if not exists "uuid-ossp" with schema extensions;

-- requires extension: pgcrypto
create extension if not exists pgcrypto with schema extensions;

-- requires extension: pgjwt
create extension if not exists pgjwt with schema extensions;

-- the API roles PostgREST switches to
create role anon nologin noinherit;

create role authenticated nologin noinherit;

create role service_role nologin noinherit bypassrls;

create role authenticator login noinherit;

grant anon, authenticated, service_role, supabase_admin to authenticator;

grant usage on schema public to postgres, anon, authenticated, service_role;

alter default privileges in schema public grant all on tables to postgres, anon, authenticated, service_role;

alter default privileges in schema public grant all on functions to postgres, anon, authenticated, service_role;

alter default privileges in schema public grant all on sequences to postgres, anon, authenticated, service_role;

grant usage on schema extensions to postgres, anon, authenticated, service_role;

alter default privileges for role supabase_admin in schema public grant all on sequences to postgres, anon, authenticated, service_role;

alter default privileges for role supabase_admin in schema public grant all on tables to postgres, anon, authenticated, service_role;

alter default privileges for role supabase_admin in schema public grant all on functions to postgres, anon, authenticated, service_role;

alter role anon set statement_timeout = '3s';

alter role authenticated set statement_timeout = '8s';

-- auth and storage schemas, owned by supabase_admin, used by their services' admins
create schema if not exists auth authorization supabase_admin;

grant usage on schema auth to anon, authenticated, service_role;

create role supabase_auth_admin noinherit createrole login noreplication;

grant all privileges on schema auth to supabase_auth_admin;

alter role supabase_auth_admin set search_path = "auth";

create schema if not exists storage authorization supabase_admin;

grant usage on schema storage to postgres, anon, authenticated, service_role;

alter default privileges in schema storage grant all on tables to postgres, anon, authenticated, service_role;

alter default privileges in schema storage grant all on functions to postgres, anon, authenticated, service_role;

alter default privileges in schema storage grant all on sequences to postgres, anon, authenticated, service_role;

create role supabase_storage_admin noinherit createrole login noreplication;

grant all privileges on schema storage to supabase_storage_admin;

alter role supabase_storage_admin set search_path = "storage";

alter role supabase_admin set search_path to "$user", public, auth, extensions;

alter role postgres set search_path to "$user", public, extensions;

-- event triggers that hand extension objects to postgres when they appear
create or replace function extensions.grant_pg_cron_access()
returns event_trigger
language plpgsql
as $$
begin
  if exists (
    select from pg_event_trigger_ddl_commands() as ev
    join pg_catalog.pg_namespace as n on ev.objid = n.oid
    where n.nspname = 'cron'
  ) then
    grant usage on schema cron to postgres with grant option;
    alter default privileges in schema cron grant all on tables to postgres with grant option;
    alter default privileges in schema cron grant all on functions to postgres with grant option;
    alter default privileges in schema cron grant all on sequences to postgres with grant option;
    grant all privileges on all tables in schema cron to postgres with grant option;
  end if;
end;
$$;

create event trigger issue_pg_cron_access on ddl_command_end
  when tag in ('CREATE SCHEMA')
  execute procedure extensions.grant_pg_cron_access();

comment on function extensions.grant_pg_cron_access is 'Grants access to pg_cron';

create or replace function extensions.grant_pg_net_access()
returns event_trigger
language plpgsql
as $$
begin
  if exists (
    select from pg_event_trigger_ddl_commands() as ev
    join pg_extension as ext on ev.objid = ext.oid
    where ext.extname = 'pg_net'
  ) then
    if not exists (select from pg_roles where rolname = 'supabase_functions_admin') then
      create user supabase_functions_admin noinherit createrole login noreplication;
    end if;
    grant usage on schema net to supabase_functions_admin, postgres, anon, authenticated, service_role;
  end if;
end;
$$;

comment on function extensions.grant_pg_net_access is 'Grants access to pg_net';

create event trigger issue_pg_net_access on ddl_command_end
  when tag in ('CREATE EXTENSION')
  execute procedure extensions.grant_pg_net_access();

-- the dashboard's role
create role dashboard_user nosuperuser createdb createrole replication;

grant all on schema auth, extensions, storage to dashboard_user;

grant all on all tables in schema extensions to dashboard_user;

grant all on all sequences in schema extensions to dashboard_user;

grant all on all routines in schema extensions to dashboard_user;
