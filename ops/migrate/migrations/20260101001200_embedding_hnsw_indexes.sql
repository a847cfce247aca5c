-- migrate:no-transaction
-- HNSW (cosine) indexes on the 1536-dimension embeddings, built with
-- CREATE INDEX CONCURRENTLY so writes to blogs and memory_nodes are not
-- blocked. Runs outside a transaction, one statement at a time.
-- If a concurrent build fails it leaves an INVALID index behind, which
-- IF NOT EXISTS would then skip: drop it (DROP INDEX CONCURRENTLY) before
-- re-running this migration.

-- migrate:up
create index concurrently if not exists idx_blogs_vector_embedding
  on public.blogs using hnsw (vector_embedding extensions.vector_cosine_ops);
create index concurrently if not exists idx_memory_nodes_vector_embedding
  on public.memory_nodes using hnsw (vector_embedding extensions.vector_cosine_ops);

-- migrate:down
drop index concurrently if exists public.idx_memory_nodes_vector_embedding;
drop index concurrently if exists public.idx_blogs_vector_embedding;
