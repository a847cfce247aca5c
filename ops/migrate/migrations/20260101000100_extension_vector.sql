-- pgvector, installed into the `extensions` schema (as Supabase does).
-- Kept on its own so that a PostgreSQL without pgvector fails here, on a file
-- that is plainly about the "vector" extension, and nowhere else.
-- Note: if vector was already installed before this migration, the down
-- section still drops it (by then nothing in this schema uses it).

-- migrate:up
create extension if not exists vector with schema extensions;

-- migrate:down
drop extension if exists vector;
