"""The Supabase CLI port against the CLI's own Go test cases (pkg/parser, pkg/migration)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.supabase.cli_port import (
    ERR_MISSING_LOCAL,
    ERR_MISSING_REMOTE,
    InsertBeforeRemote,
    MissingLocalMigrations,
    find_pending_migrations,
    list_local_migrations,
    split,
    split_and_trim,
)

# pkg/parser/state_test.go: each case is split back into exactly its parts.
SPLIT_CASES = [
    ["END;", "-- comment"],
    ["SELECT --; 1"],
    ["- ;", "END"],
    ["-- /* \n;", " */ END"],
    ["SELECT /* ; */ 1;"],
    ["SELECT /*; /*;*/ ;*/ 1"],
    ["/ * ;", " */ END"],
    [";", "END;", ";"],
    ["BEGIN   ;", "  END"],
    ["\\;;", "\\;"],
    ["$tag$ any ; string$tag$"],
    ['$$"Dane\'s horse"$$'],
    ['SELECT "$";', " $$"],
    ["SELECT ';' 1"],
    ["SELECT ';'';' 1"],
    ["SELECT '\\';", " 1'"],
    ['CREATE POLICY "cats;dogs" on cats_dogs;', " END"],
    ["CREATE POLICY \"cat's and dog's\" on cats_dogs;", " END"],
    ['CREATE POLICY "pet""name" on pets;', " END"],
    [
        'CREATE RULE notify_me AS ON UPDATE TO mytable DO (NOTIFY mytable; SELECT "1");',
        "SELECT 1",
    ],
    ["CREATE RULE notify_me AS ON UPDATE TO mytable DO (-- )\nSELECT ')';\n-- )\n)\n"],
    [
        "CREATE FUNCTION add(a integer, b integer) RETURNS integer\nLANGUAGE SQL\n"
        "IMMUTABLE STRICT PARALLEL SAFE\nRETURNS NULL ON NULL INPUT\nBEGIN ATOMIC\n"
        "\tSELECT 'add';\n\tSELECT a + b;\nEND;"
    ],
    ["begin atomic; select 'end'; end"],
    ["CREATE FUNCTION test() BEGIN\nATOMIC-- END;\n-- END;\nEND\n;"],
    *[
        [
            f"CREATE OR REPLACE FUNCTION {name}()\nRETURNS void LANGUAGE plpgsql AS $$\n"
            "BEGIN\n  NULL;\nEND;\n$$;",
            "\nSELECT 1;",
        ]
        for name in ("fn_atomic", "atomic_fn", "my_atomic_thing", "xatomicx", "fn_ATomiC")
    ],
    [
        "CREATE OR REPLACE FUNCTION public.atomic_example()\nRETURNS INTEGER\nLANGUAGE plpgsql\n"
        "AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;",
        "\nGRANT EXECUTE ON FUNCTION public.atomic_example() TO authenticated;",
    ],
]


@pytest.mark.parametrize("parts", SPLIT_CASES, ids=lambda p: repr(p)[:40])
def test_split_matches_the_cli_cases(parts: list[str]) -> None:
    # assert.ElementsMatch: the same elements, in any order
    assert Counter(split("".join(parts))) == Counter(parts)


def test_split_and_trim_drops_separators_and_spaces() -> None:
    assert split_and_trim("\tBEGIN; select 1 ;\n\n-- tail\n") == ["BEGIN", "select 1", "-- tail"]
    assert split_and_trim("select 1;\n  \n") == ["select 1"]


# pkg/migration/apply_test.go TestPendingMigrations
def test_finds_pending_migrations() -> None:
    local = [f"2022120100000{i}_test.sql" for i in range(4)]
    assert find_pending_migrations(local, ["20221201000000", "20221201000001"]) == local[2:]


def test_missing_local_migration() -> None:
    with pytest.raises(MissingLocalMigrations, match=ERR_MISSING_LOCAL) as exc:
        find_pending_migrations([], ["0"])
    assert exc.value.versions == ["0"]
    assert "supabase migration repair --status reverted 0" in exc.value.suggestion


def test_missing_remote_version() -> None:
    with pytest.raises(InsertBeforeRemote, match=ERR_MISSING_REMOTE) as exc:
        find_pending_migrations(["0_test.sql", "1_test.sql"], ["1"])
    assert exc.value.paths == [Path("0_test.sql")]


def test_out_of_order_remote_migrations() -> None:
    local = [f"2022120100000{i}_test.sql" for i in range(5)]
    with pytest.raises(InsertBeforeRemote) as exc:
        find_pending_migrations(local, ["20221201000002", "20221201000004"])
    assert exc.value.paths == [Path(local[0]), Path(local[1]), Path(local[3])]


def test_out_of_order_local_migrations() -> None:
    local = ["20221201000000_test.sql", "20221201000002_test.sql"]
    remote = [f"2022120100000{i}" for i in range(5)]
    with pytest.raises(MissingLocalMigrations) as exc:
        find_pending_migrations(local, remote)
    assert exc.value.versions == [remote[1], remote[3], remote[4]]


def test_include_all_applies_the_older_files_first() -> None:
    # up.go GetPendingMigrations with --include-all
    local = ["0_a.sql", "1_b.sql", "2_c.sql"]
    assert find_pending_migrations(local, ["1"], include_all=True) == ["0_a.sql", "2_c.sql"]


# pkg/migration/list_test.go TestLocalMigrations
def test_lists_local_migrations(tmp_path: Path) -> None:
    for name in ("20220727064248_test.sql", "20220727064246_test.sql"):
        (tmp_path / name).write_text("")
    assert [p.name for p in list_local_migrations(tmp_path)] == [
        "20220727064246_test.sql",
        "20220727064248_test.sql",
    ]


def test_ignores_outdated_and_invalid_files(tmp_path: Path, capsys) -> None:
    (tmp_path / "20211208000000_init.sql").write_text("")
    (tmp_path / "20211208000001_invalid.ts").write_text("")
    (tmp_path / "sub").mkdir()
    assert list_local_migrations(tmp_path) == []
    err = capsys.readouterr().err
    assert 'replace "init" with a different file name' in err
    assert 'file name must match pattern "<timestamp>_name.sql"' in err


def test_a_later_init_file_is_kept(tmp_path: Path) -> None:
    # only the first entry is checked for the legacy init name
    (tmp_path / "0_first.sql").write_text("")
    (tmp_path / "20211208000000_init.sql").write_text("")
    assert len(list_local_migrations(tmp_path)) == 2


def test_a_missing_folder_has_no_migrations(tmp_path: Path) -> None:
    assert list_local_migrations(tmp_path / "absent") == []


def test_a_file_name_ending_in_a_newline_does_not_match(tmp_path: Path) -> None:
    # Go's `$` is end of text; Python's `$` would also match before a final newline
    (tmp_path / "1_x.sql\n").write_text("")
    assert list_local_migrations(tmp_path) == []
