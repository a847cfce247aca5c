-- Shared helpers used by every table: the updated_at trigger function.
-- Each table gets `create trigger set_updated_at before update ... for each
-- row execute function public.set_updated_at()`.

-- migrate:up
create function public.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;

comment on function public.set_updated_at() is
  'BEFORE UPDATE row trigger: keeps updated_at current. Attached to every table as trigger "set_updated_at".';

-- migrate:down
drop function public.set_updated_at();
