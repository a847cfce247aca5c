"""DSNs: one parser (libpq's), masking from the parsed form, and no password in any output.

A password may hold any character. Read by libpq it is either read as meant,
and then masked from the parsed form, or (a raw ``@ / ? #`` before the host of
a URL) read differently, and then refused with a ConfigError that says to
percent-encode. Either way no part of it reaches a header line, a subject, an
error or ``--json``: the commands are driven through the real CLI with such
DSNs and every byte they print is searched, as the canary test does.
"""

from __future__ import annotations

import hashlib
import json
import secrets as pysecrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg import sql
from typer.testing import CliRunner

from ops import db
from ops.errors import EXIT_INTERNAL, ConfigError
from ops.logs import clear_secret_values
from tests.conftest import PgServer
from tests.helpers import encoded_forms


# -- parsing and masking ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (
            "postgresql://app:s3cret-pw@db.example.com:5432/empire",
            "postgresql://app:****@db.example.com:5432/empire",
        ),
        (
            "postgres://postgres.abcd:p%40ss%3Aword@aws-0-eu.pooler.supabase.com:6543/postgres",
            "postgresql://postgres.abcd:****@aws-0-eu.pooler.supabase.com:6543/postgres",
        ),
        ("postgresql://app@localhost/empire", "postgresql://app@localhost/empire"),
        (
            "host=db port=5432 user=app password=s3cret dbname=e",
            "postgresql://app:****@db:5432/e",
        ),
        ("host=db password='with space' user=app", "postgresql://app:****@db"),
        (
            "postgresql://localhost/empire?password=s3cret&sslmode=require",
            "postgresql://:****@localhost/empire?sslmode=require",
        ),
        ("postgresql://u@/db?host=/tmp", "postgresql://u@/db?host=/tmp"),
        ("postgresql://u@[::1]:5433/db", "postgresql://u@[::1]:5433/db"),
        ("postgresql://u:a:b@h/db", "postgresql://u:****@h/db"),  # a raw : is read as meant
        ("host=h sslpassword=k3y-pass user=u", "postgresql://u@h?sslpassword=****"),
    ],
)
def test_mask_dsn_rebuilds_the_dsn_from_libpqs_reading(dsn: str, masked: str) -> None:
    assert db.mask_dsn(dsn) == masked
    assert db.parse_dsn(dsn).masked == masked


@pytest.mark.parametrize("char", ["@", "/", "?", "#"])
def test_a_raw_reserved_character_before_the_host_is_refused(char: str) -> None:
    password = f"Sec{char}ret-Zq9"
    dsn = f"postgresql://app:{password}@db.example.com:5432/empire"
    with pytest.raises(ConfigError) as info:
        db.parse_dsn(dsn)
    said = f"{info.value.message} {info.value.hint}"
    assert "percent-encode" in said and f"raw {char}" in said
    for part in ("Sec", "ret-Zq9", password):
        assert part not in said
    assert db.mask_dsn(dsn) == db.UNREADABLE_DSN
    assert db.dsn_password(dsn) is None
    assert db.dsn_secret_parts(dsn) == [dsn]  # unreadable: the whole DSN is a secret
    # percent-encoded, the same password is read as meant
    encoded = f"postgresql://app:{quote(password, safe='')}@db.example.com:5432/empire"
    assert db.dsn_password(encoded) == password
    assert db.parse_dsn(encoded).host == "db.example.com"


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db password='hunter2secret",
        "postgresql://u:hunter%zzsecret@h/db",
        "postgresql://u:hunter2 secret@h/db",
        "host=db password=hunter2\nsecret user=u",
    ],
)
def test_a_parse_error_quotes_no_part_of_the_dsn(dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        db.parse_dsn(dsn)
    said = f"{info.value.message} {info.value.hint}"
    assert "does not parse" in said
    assert "hunter" not in said and "secret" not in said
    assert db.mask_dsn(dsn) == db.UNREADABLE_DSN


def test_a_non_numeric_port_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as info:
        db.parse_dsn("host=h port=hunter2")
    assert "not a number" in info.value.message and "hunter2" not in str(info.value)


def test_make_dsn_percent_encodes_and_libpq_reads_it_back() -> None:
    dsn = db.make_dsn("h", 5432, "u", "d", "p@ss:w/rd?#é")
    assert db.dsn_password(dsn) == "p@ss:w/rd?#é"
    assert db.mask_dsn(dsn) == "postgresql://u:****@h:5432/d"


def test_dsn_secret_parts() -> None:
    assert db.dsn_secret_parts("postgresql://u@h/db") == []
    dsn = "postgresql://u:p%40ss-w0rd@h/db"
    assert db.dsn_secret_parts(dsn) == [dsn, "p@ss-w0rd", "p%40ss-w0rd"]


def test_no_other_dsn_parser_in_ops() -> None:
    """libpq reads DSNs; urllib only ever sees http(s) URLs (kinds, sources)."""
    repo = Path(__file__).resolve().parent.parent
    for path in (repo / "ops").rglob("*.py"):
        text = path.read_text()
        assert "unquote(" not in text, f"{path.name} decodes a URL by hand"
        if path.name in ("db.py", "logs.py", "target.py"):
            assert "urlsplit" not in text and "urlparse" not in text, path.name


# -- the real CLI with awkward passwords ----------------------------------------------------
def _passwords() -> dict[str, str]:
    tag = pysecrets.token_hex(6)
    return {
        "hash": f"Cnry#{tag}#x",
        "question": f"Cnry?{tag}?x",
        "slash": f"Cnry/{tag}/x",
        "at": f"Cnry@{tag}@x",
        "colon": f"Cnry:{tag}:x",
        "non-ascii": f"Cnryé€{tag}ß",
        "newline": f"Cnry{tag}\nsecond-line-{tag}",
    }


@dataclass
class Run:
    label: str
    code: int
    output: str


@pytest.fixture
def awkward(fresh_db: str) -> Iterator[tuple[db.DsnInfo, dict[str, str]]]:
    yield db.parse_dsn(fresh_db), _passwords()


def _cli(*args: str, dsn: str) -> Run:
    from ops.cli import app

    clear_secret_values()  # a fresh process would not know earlier values
    result = CliRunner().invoke(app, list(args), env={"DATABASE_URL": dsn}, catch_exceptions=False)
    return Run(" ".join(args), result.exit_code, result.stdout + result.stderr)


def _leaks(password: str, text: str) -> list[str]:
    forms = encoded_forms(password) | {password}
    return [form for form in forms if form in text]


COMMANDS = [
    ("preflight",),
    ("preflight", "--json"),
    ("--debug", "preflight", "--json"),
    ("secrets", "status"),
    ("secrets", "status", "--json"),
    ("migrate", "status"),
    ("migrate", "status", "--json"),
]


@pytest.mark.parametrize("form", ["raw", "encoded", "keyvalue"])
def test_no_password_reaches_any_output(
    awkward: tuple[db.DsnInfo, dict[str, str]], form: str
) -> None:
    info, passwords = awkward
    runs: list[tuple[str, str, Run]] = []
    for kind, password in passwords.items():
        if form == "keyvalue" and kind not in ("hash", "at", "non-ascii"):
            continue  # the key=value form quotes any character alike
        if form == "raw":
            dsn = f"postgresql://{info.user}:{password}@{info.host}:{info.port}/{info.dbname}"
        elif form == "encoded":
            dsn = db.make_dsn(info.host, info.port, info.user, info.dbname, password)
        else:
            escaped = password.replace("\\", "\\\\").replace("'", "\\'")
            dsn = (
                f"host={info.host} port={info.port} user={info.user} "
                f"password='{escaped}' dbname={info.dbname}"
            )
        runs += [(kind, password, _cli(*cmd, dsn=dsn)) for cmd in COMMANDS]

    leaks = [
        f"{kind} in `{run.label}`: {hit!r}"
        for kind, password, run in runs
        for hit in _leaks(password, run.output)
    ]
    assert leaks == []
    assert all(run.code != EXIT_INTERNAL for _, _, run in runs), [
        (run.label, run.output) for _, _, run in runs if run.code == EXIT_INTERNAL
    ]
    for kind, _, run in runs:
        refused = form == "raw" and kind in ("hash", "question", "slash", "at")
        if refused:
            # Never used: secrets report it as invalid, migrate refuses with exit 2.
            assert run.code in (2, 3), (kind, run.label, run.output)
            assert "percent-encode" in run.output, (kind, run.label, run.output)
        else:
            # Read as meant: used, so the server answers (4 when it refuses the password).
            assert run.code in (0, 1, 4), (kind, run.label, run.output)
            assert "percent-encode" not in run.output, (kind, run.label, run.output)
            if run.label == "migrate status":
                assert f"database {info.dbname!r} on {info.host}:{info.port}" in run.output


@pytest.fixture
def weak_role(pg: PgServer, fresh_db: str) -> Iterator[str]:
    """A DSN to ``fresh_db`` as a login role whose password is ``postgres``."""
    role = f"postgres_weak_{pysecrets.token_hex(3)}"
    with pg.admin() as conn:
        conn.execute(
            sql.SQL("create role {} login password 'postgres'").format(sql.Identifier(role))
        )
    info = db.parse_dsn(fresh_db)
    yield f"postgresql://{role}:postgres@{info.host}:{info.port}/{info.dbname}"
    with pg.admin() as conn:
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def test_a_weak_password_is_flagged_and_never_revealed(weak_role: str) -> None:
    """`postgres` as a password: SECRETS_WEAK, no fingerprint, and no [REDACTED] blanks."""
    dsn = weak_role
    info = db.parse_dsn(dsn)
    hashes = {hashlib.sha256(v.encode()).hexdigest()[:8] for v in ("postgres", dsn)}
    runs = [_cli(*cmd, dsn=dsn) for cmd in COMMANDS]
    for run in runs:
        assert run.code in (0, 1), (run.label, run.output)  # a warning in dev: it connects
        assert "[REDACTED]" not in run.output, (run.label, run.output)  # nothing garbled
        assert ":postgres@" not in run.output and not any(h in run.output for h in hashes)
    said = {run.label: run.output for run in runs}
    assert "SECRETS_WEAK" in said["preflight"] and "(weak)" in said["secrets status"]
    masked = f"postgresql://{info.user}:****@{info.host}:{info.port}/{info.dbname}"
    assert masked in said["preflight"]  # `postgres` in the scheme and the user stays readable
    assert "DB_REACHABLE" in said["preflight"] and "PostgreSQL 1" in said["preflight"]
    assert f"as {info.user} (from DATABASE_URL)" in said["migrate status"]
    # outside dev and test a weak password stops the run
    prod = _cli("preflight", "--env", "prod", "--json", dsn=dsn)
    weak = [f for f in json.loads(prod.output)["findings"] if f["code"] == "SECRETS_WEAK"]
    assert prod.code == 3 and weak[0]["severity"] == "error" and weak[0]["exit_code"] == 3
