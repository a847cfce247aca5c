"""Migration files without a database: names, sections, statement splitting, new files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.migrate.errors import MigrationFileError
from ops.migrate.files import (
    create_migration,
    load_migrations,
    parse_migration,
    split_statements,
)


def test_shipped_migrations_parse_in_order() -> None:
    migs = load_migrations()
    assert len(migs) == 14
    assert [m.version for m in migs] == sorted(m.version for m in migs)
    hnsw = [m for m in migs if m.no_transaction]
    assert [m.name for m in hnsw] == ["embedding_hnsw_indexes"]
    assert all(len(m.checksum) == 64 for m in migs)
    assert not any(m.up_only for m in migs)


def test_splitter_respects_strings_comments_and_dollar_quotes() -> None:
    sql = """
    -- a comment; with a semicolon
    create table t (a text default 'x;y', "we;ird" int); /* block; /* nested; */ */
    do $tag$ begin perform 1; perform format('%s', 2); end $tag$;
    select E'it\\'s;', $$a;b$$, 1
    """
    stmts = split_statements(sql, first_line=10)
    assert len(stmts) == 3
    assert stmts[0].sql.endswith("""int)""")
    assert stmts[1].sql.startswith("/* block") and "perform format('%s', 2)" in stmts[1].sql
    assert stmts[2].sql.startswith("select E'it\\'s;'")
    assert [s.line for s in stmts] == [12, 13, 14]  # the line of the first code, not of a comment


def test_comment_only_sections_have_no_statements() -> None:
    assert split_statements("-- nothing here\n/* nor here */\n") == []


def test_file_without_markers_is_up_only(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_supabase_style.sql"
    path.write_text("create table a (id int primary key);\n")
    mig = parse_migration(path)
    assert mig.up_only and mig.down_sql is None
    assert [s.sql for s in mig.up_statements] == ["create table a (id int primary key)"]


def test_down_before_up_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_x.sql"
    path.write_text("-- migrate:down\nselect 1;\n-- migrate:up\nselect 2;\n")
    with pytest.raises(MigrationFileError, match="must come before"):
        parse_migration(path)


def test_bad_name_and_duplicate_versions(tmp_path: Path) -> None:
    (tmp_path / "add_stuff.sql").write_text("select 1;")
    with pytest.raises(MigrationFileError, match=r"named <YYYYMMDDHHMMSS>_<name>\.sql"):
        load_migrations([tmp_path])
    (tmp_path / "add_stuff.sql").unlink()
    other = tmp_path / "other"
    other.mkdir()
    (tmp_path / "20240101000000_a.sql").write_text("select 1;")
    (other / "20240101000000_b.sql").write_text("select 1;")
    with pytest.raises(MigrationFileError, match="used twice"):
        load_migrations([tmp_path, other])


def test_create_migration_sorts_last(tmp_path: Path) -> None:
    (tmp_path / "29990101000000_future.sql").write_text("-- migrate:up\n-- migrate:down\n")
    path = create_migration("add_orders_table", tmp_path)
    assert path.name == "29990101000001_add_orders_table.sql"
    mig = parse_migration(path)
    assert mig.up_statements == [] and not mig.up_only
