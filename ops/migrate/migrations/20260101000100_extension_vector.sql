-- pgvector, installed into the `extensions` schema (as Supabase does).
-- Kept on its own so that a PostgreSQL without pgvector fails here, on a file
-- that is plainly about the "vector" extension, and nowhere else.
-- The extension is created only when missing, and then marked as ours, so the
-- down section drops only an extension this migration created: on Supabase,
-- vector is usually enabled from the dashboard already, and it is not ours to
-- drop. (Where the mark cannot be set, the down section leaves vector in place.)

-- migrate:up
do $empire_vector$
begin
  if not exists (select 1 from pg_extension where extname = 'vector') then
    create extension vector with schema extensions;
    begin
      comment on extension vector is 'created by empire-ops (20260101000100_extension_vector)';
    exception when insufficient_privilege then
      null;  -- created through supautils for another owner: leave it unmarked
    end;
  end if;
end
$empire_vector$;

-- migrate:down
do $empire_vector$
begin
  if exists (
    select 1 from pg_extension e
    where e.extname = 'vector'
      and obj_description(e.oid, 'pg_extension')
        = 'created by empire-ops (20260101000100_extension_vector)'
  ) then
    drop extension vector;
  end if;
end
$empire_vector$;
