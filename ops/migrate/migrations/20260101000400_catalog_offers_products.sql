-- Catalog: affiliate/commercial offers and the products built on them.
-- Public read access is limited to rows whose status is 'active'.

-- migrate:up
create table public.offers (
  id uuid not null default gen_random_uuid(),
  type text not null,
  title text not null,
  slug text not null,
  url text not null,
  cta_text text,
  affiliate_network text,
  payout numeric(12, 2),
  country text,
  currency char(3),
  emotion text,
  product_tags text[] not null default '{}',
  status text not null default 'draft',
  expires_at timestamptz,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint offers_pkey primary key (id),
  constraint offers_slug_key unique (slug),
  constraint offers_type_check
    check (type in ('affiliate', 'lead_gen', 'product', 'subscription', 'coupon', 'trial')),
  constraint offers_status_check
    check (status in ('draft', 'active', 'paused', 'expired', 'archived')),
  constraint offers_payout_check check (payout is null or payout >= 0),
  constraint offers_country_check check (country ~ '^[A-Z]{2}$'),
  constraint offers_currency_check check (currency ~ '^[A-Z]{3}$')
);
create index idx_offers_status on public.offers (status);
create index idx_offers_type on public.offers (type);
create index idx_offers_product_tags on public.offers using gin (product_tags);
create trigger set_updated_at before update on public.offers
  for each row execute function public.set_updated_at();

alter table public.offers enable row level security;
create policy service_role_all on public.offers
  for all to service_role using (true) with check (true);
create policy public_read_published on public.offers
  for select to anon, authenticated using (status = 'active');

create table public.products (
  id uuid not null default gen_random_uuid(),
  type text not null,
  title text not null,
  slug text not null,
  details jsonb not null default '{}'::jsonb,
  offer_id uuid,
  price numeric(12, 2),
  features jsonb not null default '[]'::jsonb,
  reviews jsonb not null default '[]'::jsonb,
  status text not null default 'draft',
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint products_pkey primary key (id),
  constraint products_slug_key unique (slug),
  -- A product outlives the offer it was promoted through.
  constraint products_offer_id_fkey foreign key (offer_id)
    references public.offers (id) on delete set null,
  constraint products_type_check
    check (type in ('digital', 'physical', 'course', 'software', 'subscription', 'bundle', 'service')),
  constraint products_status_check
    check (status in ('draft', 'active', 'discontinued', 'archived')),
  constraint products_price_check check (price is null or price >= 0)
);
create index idx_products_offer_id on public.products (offer_id);
create index idx_products_status on public.products (status);
create trigger set_updated_at before update on public.products
  for each row execute function public.set_updated_at();

alter table public.products enable row level security;
create policy service_role_all on public.products
  for all to service_role using (true) with check (true);
create policy public_read_published on public.products
  for select to anon, authenticated using (status = 'active');

-- Grants, table by table on this file's own tables (see 20260101000300's header).
revoke all on table public.offers, public.products
  from anon, authenticated, service_role;
grant select, insert, update, delete on table public.offers, public.products
  to anon, authenticated, service_role;

-- migrate:down
drop table public.products;
drop table public.offers;
