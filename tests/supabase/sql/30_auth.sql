-- Supabase-shaped Auth (GoTrue) schema: the end state of supabase/auth's
-- migrations rendered with namespace `auth`, reduced to the objects tests
-- look at. Run as supabase_auth_admin, as the Auth service runs them.
-- Written for empire-ops' tests; see tests/supabase/README.md.

create table if not exists auth.schema_migrations (
    version varchar(255) not null primary key
);

create table if not exists auth.instances (
    id uuid not null primary key,
    uuid uuid null,
    raw_base_config text null,
    created_at timestamptz null,
    updated_at timestamptz null
);

create table if not exists auth.users (
    instance_id uuid null,
    id uuid not null primary key,
    aud varchar(255) null,
    role varchar(255) null,
    email varchar(255) null,
    encrypted_password varchar(255) null,
    email_confirmed_at timestamptz null,
    invited_at timestamptz null,
    confirmation_token varchar(255) null,
    confirmation_sent_at timestamptz null,
    recovery_token varchar(255) null,
    recovery_sent_at timestamptz null,
    email_change_token_new varchar(255) null,
    email_change varchar(255) null,
    email_change_sent_at timestamptz null,
    last_sign_in_at timestamptz null,
    raw_app_meta_data jsonb null,
    raw_user_meta_data jsonb null,
    is_super_admin bool null,
    created_at timestamptz null,
    updated_at timestamptz null,
    phone text null unique default null,
    phone_confirmed_at timestamptz null default null,
    confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    banned_until timestamptz null,
    reauthentication_token varchar(255) null default '',
    is_sso_user boolean not null default false,
    deleted_at timestamptz null,
    is_anonymous boolean not null default false
);

create index if not exists users_instance_id_idx on auth.users using btree (instance_id);

comment on table auth.users is 'Auth: Stores user login data within a secure schema.';

create table if not exists auth.identities (
    provider_id text not null,
    user_id uuid not null references auth.users (id) on delete cascade,
    identity_data jsonb not null,
    provider text not null,
    last_sign_in_at timestamptz null,
    created_at timestamptz null,
    updated_at timestamptz null,
    email text generated always as (lower(identity_data ->> 'email')) stored,
    id uuid not null default gen_random_uuid() primary key,
    constraint identities_provider_id_provider_unique unique (provider_id, provider)
);

create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');

create table if not exists auth.sessions (
    id uuid not null primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    created_at timestamptz null,
    updated_at timestamptz null,
    factor_id uuid null,
    aal auth.aal_level null,
    not_after timestamptz null
);

create table if not exists auth.refresh_tokens (
    instance_id uuid null,
    id bigserial primary key,
    token varchar(255) null unique,
    user_id varchar(255) null,
    revoked bool null,
    created_at timestamptz null,
    updated_at timestamptz null,
    parent varchar(255) null,
    session_id uuid null references auth.sessions (id) on delete cascade
);

create table if not exists auth.audit_log_entries (
    instance_id uuid null,
    id uuid not null primary key,
    payload json null,
    created_at timestamptz null,
    ip_address varchar(64) not null default ''
);

do $$
declare
  t text;
begin
  foreach t in array array['schema_migrations', 'instances', 'users', 'identities', 'sessions',
                           'refresh_tokens', 'audit_log_entries']
  loop
    execute format('alter table auth.%I enable row level security', t);
    execute format('grant select on auth.%I to postgres with grant option', t);
  end loop;
end;
$$;

create or replace function auth.uid()
returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role()
returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email()
returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt()
returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';

comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';

comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';
