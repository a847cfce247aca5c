-- Bootstrap: provide the pieces a Supabase project already has, so the rest of
-- the schema also applies to a plain PostgreSQL. Every statement is
-- idempotent and creates something only when it is missing; on a real
-- Supabase project this migration changes nothing.
--
-- The runner owns the `ops` and `supabase_migrations` schemas; they are not
-- created here.

-- migrate:up

-- Supabase API roles (create only when missing; never alter existing ones).
do $bootstrap_roles$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$bootstrap_roles$;

create schema if not exists extensions;
create schema if not exists auth;

-- auth.uid() / auth.jwt(): create only when missing. CREATE OR REPLACE would
-- clobber the GoTrue-managed definitions on a real Supabase project.
do $bootstrap_auth$
begin
  if not exists (
    select 1
    from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'uid' and p.pronargs = 0
  ) then
    execute $fn$
      create function auth.uid() returns uuid
      language sql stable
      as $body$
        select coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
      $body$
    $fn$;
  end if;

  if not exists (
    select 1
    from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'jwt' and p.pronargs = 0
  ) then
    execute $fn$
      create function auth.jwt() returns jsonb
      language sql stable
      as $body$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $body$
    $fn$;
  end if;
end
$bootstrap_auth$;

-- Realtime publication (Supabase creates it with no tables).
do $bootstrap_publication$
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$bootstrap_publication$;

-- Schema usage for the API roles, as a direct grant like Supabase's. Skipped
-- where the role already holds a direct USAGE grant (always the case on
-- Supabase), so nothing is touched there; also skipped where the role already
-- has usage and the current role could not grant it anyway.
do $bootstrap_usage$
declare
  s text;
  r text;
begin
  foreach s in array array['public', 'extensions', 'auth'] loop
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
      if not exists (
        select 1
        from pg_catalog.pg_namespace n,
             pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
        where n.nspname = s
          and a.grantee = (select oid from pg_catalog.pg_roles where rolname = r)
          and a.privilege_type = 'USAGE'
      ) and (
        pg_catalog.has_schema_privilege(current_user, s, 'USAGE WITH GRANT OPTION')
        or not pg_catalog.has_schema_privilege(r, s, 'USAGE')
      ) then
        execute pg_catalog.format('grant usage on schema %I to %I', s, r);
      end if;
    end loop;
  end loop;
end
$bootstrap_usage$;

-- Default privileges as Supabase sets them (for the role running migrations).
-- Row Level Security, enabled on every table, is what actually limits access.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

-- migrate:down

-- Deliberate no-op. Everything the up section creates (the anon,
-- authenticated and service_role roles, the extensions and auth schemas,
-- auth.uid(), auth.jwt(), the supabase_realtime publication, schema usage
-- grants and default privileges) may be Supabase's own, and the up section
-- cannot tell whether it created them. Dropping or revoking any of it could
-- break a real Supabase project, so nothing is dropped or revoked here.
