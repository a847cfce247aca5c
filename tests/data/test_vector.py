"""Vector search on a real, migrated PostgreSQL with pgvector: exactness, the HNSW index, RLS."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import db
from ops.data.service import DataService, DataValidationError, Principal
from ops.data.vector import nearest_query, search_settings

SERVICE = Principal.service()
DIM = 1536
ROWS = 200


def _vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def _text(v: list[float]) -> str:
    return "[" + ",".join(repr(x) for x in v) + "]"


def _cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1 - dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _stored(v: list[float]) -> list[float]:
    """The vector as pgvector stores it (float4)."""
    import struct

    return list(struct.unpack(f"{len(v)}f", struct.pack(f"{len(v)}f", *v)))


@pytest.fixture
def nodes(migrated_db: str) -> dict[str, list[float]]:
    """~200 memory nodes with random embeddings (id → embedding as stored)."""
    rng = random.Random(12)
    out: dict[str, list[float]] = {}
    with psycopg.connect(migrated_db) as conn, conn.cursor() as cur:
        for i in range(ROWS):
            v = _vector(rng)
            node_id = str(uuid.uuid4())
            cur.execute(
                "insert into public.memory_nodes (id, slug, type, vector_embedding, "
                "usage_score) values (%s, %s, 'fact', %s::extensions.vector, %s)",
                (node_id, f"n-{i:03d}", _text(v), float(i % 3)),
            )
            out[node_id] = _stored(v)
        # a row without an embedding is never a neighbour
        cur.execute("insert into public.memory_nodes (slug, type) values ('bare', 'fact')")
    return out


@pytest.fixture
def data(migrated_db: str) -> Iterator[DataService]:
    conn = db.connect(migrated_db)
    try:
        yield DataService(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("through_index", [False, True])
def test_nearest_is_the_true_k_nearest_by_cosine_distance(
    data: DataService, nodes: dict[str, list[float]], through_index: bool
) -> None:
    if through_index:
        # On 200 rows the planner picks a sequential scan and a sort (exact by
        # construction); forbid it for this session so the HNSW index, which is
        # approximate, is what the answer is checked against brute force on.
        data.conn.execute("set enable_seqscan = off")
        data.conn.commit()
    rng = random.Random(99)
    for k in (1, 10, 37):
        probe = _vector(rng)
        found = data.nearest(SERVICE, "memory_nodes", probe, k, fields=["slug"])
        truth = sorted(nodes, key=lambda i: _cosine_distance(_stored(probe), nodes[i]))[:k]
        assert [str(n.id) for n in found] == truth
        for n in found:
            assert n.distance == pytest.approx(
                _cosine_distance(_stored(probe), nodes[str(n.id)]), abs=1e-6
            )
            assert set(n.fields) == {"slug"}
    # through a bare connection too, with a filter the index scan must keep k rows past
    probe = _vector(rng)
    found = DataService(data.conn).nearest(SERVICE, "memory_nodes", probe, 5,
                                          filters={"usage_score": 2.0})  # fmt: skip
    allowed = [i for i, _ in enumerate(nodes) if i % 3 == 2]
    ids = list(nodes)
    truth = sorted(
        (ids[i] for i in allowed), key=lambda i: _cosine_distance(_stored(probe), nodes[i])
    )
    assert [str(n.id) for n in found] == truth[:5]


def test_the_statement_uses_the_hnsw_index(
    data: DataService, nodes: dict[str, list[float]], migrated_db: str
) -> None:
    probe = _vector(random.Random(5))
    query = nearest_query("memory_nodes", probe, 10, fields=["slug"])
    settings, params = search_settings(10)
    with psycopg.connect(migrated_db) as conn:
        conn.execute(settings, params)
        # On 200 rows a sequential scan and a sort is cheaper, so the planner
        # would rightly pick it; forbid it in this transaction to show that the
        # statement is one the HNSW index can serve (on a real table it wins).
        conn.execute("set local enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in conn.execute(db.SQL("explain ") + query.statement, query.params)
        )
    assert "idx_memory_nodes_vector_embedding" in plan, plan
    assert "Sort" not in plan, plan  # the index gives the order: no sort


def test_bad_arguments_are_named(data: DataService) -> None:
    with pytest.raises(DataValidationError) as bad:
        data.nearest(SERVICE, "memory_nodes", [0.1, 0.2, 0.3], 0, fields=["nope"],
                filters={"ghost": 1})  # fmt: skip
    assert set(bad.value.problems) == {"embedding", "k", "nope", "ghost"}
    assert "3 dimensions" in bad.value.problems["embedding"]
    assert "1536" in bad.value.problems["embedding"]
    with pytest.raises(DataValidationError) as bad:
        data.nearest(SERVICE, "offers", [0.0] * DIM, 5)
    assert "has no vector column" in bad.value.problems["table"]
    assert "public.memory_nodes" in bad.value.problems["table"]
    with pytest.raises(DataValidationError) as bad:
        data.nearest(SERVICE, "blogs", [0.0] * DIM, 5, bump_usage=True)
    assert set(bad.value.problems) == {"bump_usage"}
    with pytest.raises(DataValidationError):
        data.nearest(SERVICE, "memory_nodes", [0.0] * DIM, 1001)


def test_bump_usage_adds_one_to_exactly_the_returned_rows(
    data: DataService, nodes: dict[str, list[float]], migrated_db: str
) -> None:
    def scores() -> dict[str, float]:
        with psycopg.connect(migrated_db) as conn:
            rows = conn.execute("select id::text, usage_score from public.memory_nodes")
            return dict(rows.fetchall())

    before = scores()
    found = data.nearest(Principal.admin("ops-1"), "memory_nodes", _vector(random.Random(3)),
                    7, bump_usage=True)  # fmt: skip
    after = scores()
    returned = {str(n.id) for n in found}
    assert len(returned) == 7
    assert {i for i in after if after[i] != before[i]} == returned
    assert all(after[i] == before[i] + 1 for i in returned)
    with psycopg.connect(migrated_db) as conn:
        audited = conn.execute(
            "select count(*) from public.admin_logs where action = 'data.memory_nodes.nearest'"
        ).fetchone()
    assert audited is not None and audited[0] == 7  # an admin's bump is a write: audited


def test_a_user_finds_only_the_rows_its_policies_allow(data: DataService, migrated_db: str) -> None:
    rng = random.Random(8)
    status: dict[str, str] = {}
    with psycopg.connect(migrated_db) as conn:
        for i in range(30):
            blog_id, state = str(uuid.uuid4()), ("published", "draft", "archived")[i % 3]
            conn.execute(
                "insert into public.blogs (id, slug, title, status, vector_embedding) "
                "values (%s, %s, 't', %s, %s::extensions.vector)",
                (blog_id, f"b-{i}", state, _text(_vector(rng))),
            )
            status[blog_id] = state
    user = Principal.user(str(uuid.uuid4()))
    found = data.nearest(user, "blogs", _vector(rng), 20, fields=["status"])
    assert len(found) == 10  # every published blog, none other
    assert {status[str(n.id)] for n in found} == {"published"}
    assert len(data.nearest(SERVICE, "blogs", _vector(rng), 20)) == 20


def _write(tmp_path: Path, value: Any, name: str = "e.json") -> str:
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


def test_cli_prints_ids_and_distances(
    cli: Any, migrated_db: str, nodes: dict[str, list[float]], tmp_path: Path
) -> None:
    env = {"DATABASE_URL": migrated_db}
    probe = _vector(random.Random(4))
    path = _write(tmp_path, probe)
    truth = sorted(nodes, key=lambda i: _cosine_distance(_stored(probe), nodes[i]))[:3]
    shown = cli("data", "nearest", "memory_nodes", "--embedding-file", path, "--k", "3",
                "--field", "slug", env=env)  # fmt: skip
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.stdout.splitlines() if line.strip()]
    for node_id in truth:
        assert any(node_id in line for line in lines), shown.stdout
    as_json = cli("data", "nearest", "memory_nodes", "--embedding-file", path, "--k", "3",
                  "--filter", "type=fact", "--bump", "--as-admin", "ops-2", "--json",
                  env=env)  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    assert payload["ok"] is True and payload["exit_code"] == 0
    got = payload["data"]["neighbours"]
    assert [n["id"] for n in got] == truth
    assert all(isinstance(n["distance"], float) for n in got)
    assert payload["data"]["principal"] == "admin" and payload["data"]["bumped"] is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        (["a", "b"], "not a list of finite numbers"),
        ([0.5, 0.25], "2 dimensions, the column has 1536"),
    ],
)
def test_cli_refuses_a_bad_embedding_file(
    cli: Any, migrated_db: str, tmp_path: Path, content: Any, message: str
) -> None:
    path = str(tmp_path / "missing.json") if content is None else _write(tmp_path, content)
    result = cli("data", "nearest", "blogs", "--embedding-file", path,
                 env={"DATABASE_URL": migrated_db})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.stderr
