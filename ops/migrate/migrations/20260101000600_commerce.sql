-- Commerce: purchases, license keys and affiliate payout logs.
-- These are money records: they RESTRICT the deletion of the products and
-- offers they refer to (archive those instead), and survive the deletion of
-- a user (user_id is set to null). Signed-in users may read their own
-- purchases and licence keys; only service_role writes them.

-- migrate:up
create table public.purchases (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  product_id uuid,
  offer_id uuid,
  amount numeric(12, 2) not null,
  currency char(3) not null,
  method text not null,
  license text,
  status text not null default 'pending',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint purchases_pkey primary key (id),
  constraint purchases_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint purchases_product_id_fkey foreign key (product_id)
    references public.products (id) on delete restrict,
  constraint purchases_offer_id_fkey foreign key (offer_id)
    references public.offers (id) on delete restrict,
  constraint purchases_amount_check check (amount >= 0),
  constraint purchases_currency_check check (currency ~ '^[A-Z]{3}$'),
  constraint purchases_method_check
    check (method in ('card', 'paypal', 'bank_transfer', 'crypto', 'apple_pay', 'google_pay', 'manual', 'other')),
  constraint purchases_status_check
    check (status in ('pending', 'completed', 'failed', 'refunded', 'chargeback', 'cancelled'))
);
create index idx_purchases_user_id on public.purchases (user_id, created_at);
create index idx_purchases_product_id on public.purchases (product_id);
create index idx_purchases_offer_id on public.purchases (offer_id);
create index idx_purchases_status on public.purchases (status);
create trigger set_updated_at before update on public.purchases
  for each row execute function public.set_updated_at();

alter table public.purchases enable row level security;
create policy service_role_all on public.purchases
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.purchases
  for select to authenticated using ((select auth.uid()) = user_id);

create table public.license_keys (
  id uuid not null default gen_random_uuid(),
  user_id uuid,
  product_id uuid not null,
  license_key text not null,
  expires_at timestamptz,
  status text not null default 'active',
  usage_logs jsonb not null default '[]'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint license_keys_pkey primary key (id),
  constraint license_keys_license_key_key unique (license_key),
  constraint license_keys_user_id_fkey foreign key (user_id)
    references public.users (id) on delete set null,
  constraint license_keys_product_id_fkey foreign key (product_id)
    references public.products (id) on delete restrict,
  constraint license_keys_status_check
    check (status in ('active', 'suspended', 'revoked', 'expired'))
);
create index idx_license_keys_user_id on public.license_keys (user_id);
create index idx_license_keys_product_id on public.license_keys (product_id);
create index idx_license_keys_status on public.license_keys (status);
create trigger set_updated_at before update on public.license_keys
  for each row execute function public.set_updated_at();

alter table public.license_keys enable row level security;
create policy service_role_all on public.license_keys
  for all to service_role using (true) with check (true);
create policy own_rows_select on public.license_keys
  for select to authenticated using ((select auth.uid()) = user_id);

create table public.payout_logs (
  id uuid not null default gen_random_uuid(),
  affiliate_network text not null,
  offer_id uuid,
  amount numeric(12, 2) not null,
  currency char(3) not null,
  status text not null default 'pending',
  paid_at timestamptz,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payout_logs_pkey primary key (id),
  constraint payout_logs_offer_id_fkey foreign key (offer_id)
    references public.offers (id) on delete restrict,
  constraint payout_logs_currency_check check (currency ~ '^[A-Z]{3}$'),
  constraint payout_logs_status_check
    check (status in ('pending', 'approved', 'paid', 'rejected', 'reversed'))
);
create index idx_payout_logs_offer_id on public.payout_logs (offer_id);
create index idx_payout_logs_status on public.payout_logs (status);
create index idx_payout_logs_network_paid_at on public.payout_logs (affiliate_network, paid_at);
create trigger set_updated_at before update on public.payout_logs
  for each row execute function public.set_updated_at();

alter table public.payout_logs enable row level security;
create policy service_role_all on public.payout_logs
  for all to service_role using (true) with check (true);

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.purchases, public.license_keys, public.payout_logs
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.purchases, public.license_keys, public.payout_logs
  to anon, authenticated, service_role;

-- migrate:down
drop table public.payout_logs;
drop table public.license_keys;
drop table public.purchases;
