"""Spec validation: every kind, the Supabase key checks, and values rejected everywhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ops.config import load_config
from ops.errors import ConfigError
from ops.logs import redact
from ops.secrets import load_secrets
from ops.secrets.kinds import KindContext, check_value, decode_jwt
from ops.secrets.model import SecretSet, SecretValue
from ops.secrets.spec import load_spec, validate
from tests.secrets.conftest import (
    ANON_KEY,
    JWT_SECRET,
    REF,
    SERVICE_KEY,
    SUPABASE_URL,
    make_jwt,
    supabase_key,
    write_config,
)


def sset(**values: str) -> SecretSet:
    return SecretSet({k: SecretValue(k, v, "test", "") for k, v in values.items()})


def check(values: dict[str, str], env: str = "prod") -> list:
    spec = load_spec(None)
    found, _ = validate(sset(**values), spec, env)
    return found


def codes(found: list) -> list[tuple[str, str]]:
    return [(f.code, f.subject) for f in found]


GOOD = {
    "SUPABASE_URL": SUPABASE_URL,
    "SUPABASE_ANON_KEY": ANON_KEY,
    "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
    "SUPABASE_JWT_SECRET": JWT_SECRET,
    "DATABASE_URL": f"postgresql://postgres:pw%24x-9Fk2-long@db.{REF}.supabase.co:5432/postgres"
    "?sslmode=require",
}


def test_a_correct_supabase_set_passes_with_signature_check() -> None:
    assert check(GOOD) == []


def test_not_a_jwt() -> None:
    found = check({**GOOD, "SUPABASE_ANON_KEY": "definitely-not-a-jwt-value"})
    assert codes(found) == [("SECRETS_INVALID", "SUPABASE_ANON_KEY")]
    assert "is not a JWT" in found[0].message
    assert "definitely-not-a-jwt-value" not in found[0].message
    with pytest.raises(ValueError, match="not a JWT"):
        decode_jwt("a.b")


def test_swapped_keys_name_both() -> None:
    found = check({**GOOD, "SUPABASE_ANON_KEY": SERVICE_KEY, "SUPABASE_SERVICE_ROLE_KEY": ANON_KEY})
    assert sorted(codes(found)) == [
        ("SECRETS_INVALID", "SUPABASE_ANON_KEY"),
        ("SECRETS_INVALID", "SUPABASE_SERVICE_ROLE_KEY"),
    ]
    for f in found:
        assert "swapped" in f.message
        assert "SUPABASE_ANON_KEY" in f.message and "SUPABASE_SERVICE_ROLE_KEY" in f.message
        assert SERVICE_KEY not in f.message and ANON_KEY not in f.message


def test_equal_keys_name_both() -> None:
    found = check({**GOOD, "SUPABASE_SERVICE_ROLE_KEY": ANON_KEY})
    assert any("same value" in f.message for f in found)
    assert {f.subject for f in found} >= {"SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"}


def test_expired_key() -> None:
    old = supabase_key("anon", iat=1_000_000_000, exp=int(time.time()) - 3600)
    found = check({**GOOD, "SUPABASE_ANON_KEY": old})
    assert codes(found) == [("SECRETS_INVALID", "SUPABASE_ANON_KEY")]
    assert "expired on" in found[0].message


def test_demo_key_only_in_dev() -> None:
    demo = supabase_key("anon", iss="supabase-demo")
    values = {**GOOD, "SUPABASE_ANON_KEY": demo}
    assert any("demo key" in f.message for f in check(values, "prod"))
    assert check(values, "dev") == []


def test_ref_must_match_supabase_url() -> None:
    other = supabase_key("service_role", ref="zzzzzzzzzzzzzzzzzzzz")
    found = check({**GOOD, "SUPABASE_SERVICE_ROLE_KEY": other})
    assert any("belongs to project 'zzzzzzzzzzzzzzzzzzzz'" in f.message for f in found)


def test_signature_is_verified_with_the_jwt_secret() -> None:
    forged = make_jwt(
        {"role": "anon", "ref": REF, "iss": "supabase", "exp": int(time.time()) + 999},
        secret="some-other-secret-entirely-0000000000",
    )
    found = check({**GOOD, "SUPABASE_ANON_KEY": forged})
    assert any("signature does not verify" in f.message for f in found)
    no_secret = {k: v for k, v in GOOD.items() if k != "SUPABASE_JWT_SECRET"}
    assert check({**no_secret, "SUPABASE_ANON_KEY": forged}) == []


def test_new_style_keys_need_their_prefixes() -> None:
    # Supabase's shape: the prefix, 22 URL-safe characters, _ and 8 more.
    pub, sec = (
        "sb_publishable_abcdefghijklmnopqrstuv_wxyz0123",
        "sb_secret_abcdefghijk-mnopq_stuv_wxyz0123",
    )
    ok = {**GOOD, "SUPABASE_ANON_KEY": pub, "SUPABASE_SERVICE_ROLE_KEY": sec}
    assert check(ok) == []
    wrong = {**GOOD, "SUPABASE_ANON_KEY": sec}
    assert any("secret key" in f.message for f in check(wrong))
    ctx = KindContext("prod", "K")
    assert check_value("supabase_publishable_key", pub, ctx) == []
    assert check_value("supabase_secret_key", pub, ctx)


@pytest.mark.parametrize(
    "value, why",
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("eyJhbGciOi••••••••", "masked"),
        ("abc····def", "masked"),
        ("sk_live_****1234", "masked"),
        ("changeme", "placeholder"),
        ("your-anon-key-here", "placeholder"),
        ("YOUR_SERVICE_ROLE_KEY_HERE", "placeholder"),
        ("<paste-key>", "placeholder"),
    ],
)
def test_masked_placeholder_and_empty_values_are_rejected_for_every_kind(
    value: str, why: str
) -> None:
    for kind in ("string", "supabase_anon_key", "postgres_dsn", "url"):
        problems = check_value(kind, value, KindContext("dev", "X"))
        assert problems and why in problems[0].message


def test_service_key_under_a_client_side_name() -> None:
    found = check({**GOOD, "NEXT_PUBLIC_SUPABASE_KEY": SERVICE_KEY, "VITE_KEY": ANON_KEY})
    assert codes(found) == [("SECRETS_INVALID", "NEXT_PUBLIC_SUPABASE_KEY")]
    found = check({**GOOD, "VITE_SUPABASE_SECRET": "sb_secret_abcdefghijklmnopqrs"})
    assert codes(found) == [("SECRETS_INVALID", "VITE_SUPABASE_SECRET")]


@pytest.mark.parametrize(
    "dsn, expect",
    [
        (f"postgresql://postgres:pw@db.{REF}.supabase.co:5432/postgres?sslmode=require", None),
        (f"postgresql://postgres.{REF}:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres"
         "?sslmode=verify-full", None),
        (f"postgresql://postgres.{REF}:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
         "warning:shared pooler (Supavisor) in transaction mode"),
        ("postgresql://postgres:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
         "error:postgres.<project-ref>"),
        (f"postgresql://postgres:pw@db.{REF}.supabase.co:6543/postgres",
         "warning:dedicated pooler (PgBouncer) in transaction mode"),
        (f"postgresql://postgres:pw@db.{REF}.supabase.co:6544/postgres", "error:listens on 5432"),
        (f"postgresql://someone:pw@db.{REF}.supabase.co:5432/postgres", "error:expects user"),
        ("postgresql://postgres:pw@db.zzzzzzzzzzzzzzzzzzzz.supabase.co:5432/postgres",
         "error:points at project"),
        ("host=localhost port=notaport", "error:port is not a number"),
        ("host=localhost port=5432 password='unclosed", "error:does not parse"),
        ("postgresql://u:a/b@h:5432/db", "error:percent-encode"),
        ("mysql://u:p@h/db", "error:postgresql://"),
        ("postgresql://app:pw@127.0.0.1:5433/empire", None),
    ],
)  # fmt: skip
def test_postgres_dsn_shapes(dsn: str, expect: str | None) -> None:
    ctx = KindContext("prod", "DATABASE_URL", {"SUPABASE_URL": SUPABASE_URL})
    problems = check_value("postgres_dsn", dsn, ctx)
    if expect is None:
        assert problems == []
    else:
        severity, text = expect.split(":", 1)
        assert any(p.severity == severity and text in p.message for p in problems), problems
        assert all("pw" not in p.message.split() for p in problems)


def test_url_needs_https_outside_dev_and_scalars() -> None:
    assert check_value("url", "http://example.com", KindContext("prod", "U"))
    assert not check_value("url", "http://localhost:54321", KindContext("dev", "U"))
    assert check_value("supabase_url", f"{SUPABASE_URL}/rest/v1", KindContext("prod", "U"))
    assert check_value("int", "12a", KindContext("dev", "I"))
    assert not check_value("int", "-12", KindContext("dev", "I"))
    assert check_value("bool", "maybe", KindContext("dev", "B"))
    assert not check_value("email", "ops@example.com", KindContext("dev", "E"))
    assert check_value("email", "ops-at-example", KindContext("dev", "E"))


def test_pattern_min_length_required_and_aliases_from_config(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[secrets.spec.STRIPE_KEY]\nrequired = true\npattern = "sk_[a-z]+"\nmin_length = 8\n'
        'aliases = ["STRIPE_SECRET"]\n[secrets.spec.SUPABASE_URL]\nrequired = false\n',
    )
    spec = load_spec(load_config())
    assert spec.entries["SUPABASE_URL"].kind == "supabase_url"  # overriding one field keeps kind
    found, missing = validate(sset(), spec, "prod")
    assert "STRIPE_KEY" in missing and "SUPABASE_URL" not in missing
    found, _ = validate(sset(STRIPE_KEY="sk_1"), spec, "dev")
    assert "shorter than 8" in found[0].message
    found, _ = validate(sset(STRIPE_KEY="pk_abcdefgh"), spec, "dev")
    assert "does not match the pattern" in found[0].message


def test_invalid_spec_in_config_is_reported_with_dotted_paths(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[secrets.spec.API_KEY]\nkind = "passwrd"\nrequired = ["production"]\npattern = "(["\n'
        '[secrets.spec.lower_name]\nkind = "string"\n',
    )
    with pytest.raises(ConfigError) as err:
        load_config()
    text = str(err.value)
    assert "secrets.spec.API_KEY.kind: 'passwrd' is not one of" in text
    assert "secrets.spec.API_KEY.required: unknown environment" in text
    assert "secrets.spec.API_KEY.pattern:" in text
    with pytest.raises(ConfigError, match=r"secrets\.spec\.lower_name"):
        write_config(tmp_path, '[secrets.spec.lower_name]\nkind = "string"\n')
        load_spec(load_config())


def test_every_kind_the_config_accepts_has_a_validator() -> None:
    from ops.secrets.kinds import KIND_VALIDATORS
    from ops.secrets.settings import KINDS

    assert set(KINDS) == set(KIND_VALIDATORS)


# -- settings that are not secret (docs/decisions/0010) ----------------------------------------
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("hostname", "localhost"),
        ("hostname", "smtp.example.com"),
        ("hostname", "smtp.example.com."),
        ("hostname", "mail_relay"),
        ("hostname", "127.0.0.1"),
        ("hostname", "::1"),
        ("hostname", "2001:db8::25"),
        ("port", "25"),
        ("port", "1"),
        ("port", "65535"),
        ("email_list", "ops@example.com"),
        ("email_list", "ops@example.com, oncall+db@example.org,x@y.io"),
    ],
)
def test_hostname_port_and_email_list_accept(kind: str, value: str) -> None:
    assert check_value(kind, value, KindContext("prod", "X")) == []


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("hostname", "smtp://mail-host.example.com", "is a URL"),
        ("hostname", "mail-host.example.com:587", "has a port"),
        ("hostname", "mail-host.example.com/x", "has a path"),
        ("hostname", "mail host.example.com", "contains spaces"),
        ("hostname", " mail-host.example.com", "contains spaces"),
        ("hostname", "[2001:db8::25]", "brackets"),
        ("hostname", "-mail-host.example.com", "is not a host name"),
        ("hostname", "mail..example.com", "is not a host name"),
        ("hostname", "10.20.30.400", "is not an IP address"),
        ("port", "0", "is not a TCP port"),
        ("port", "65536", "is not a TCP port"),
        ("port", "smtp-port", "is not a TCP port"),
        ("port", "-25", "is not a TCP port"),
        ("port", "2.5", "is not a TCP port"),
        ("email_list", "oncall-at-example.com", "is not an e-mail address"),
        ("email_list", "ops@example.com;oncall@example.com", "is not an e-mail address"),
        ("email_list", "ops@example.com, oncall-at-example.com", "entry 2 is not"),
        ("email_list", "ops@example.com,,oncall@example.com", "has an empty entry"),
        ("email_list", "ops@example.com,", "has an empty entry"),
    ],
)
def test_hostname_port_and_email_list_refuse_without_quoting(
    kind: str, value: str, why: str
) -> None:
    problems = check_value(kind, value, KindContext("dev", "X"))
    assert len(problems) == 1 and why in problems[0].message, problems
    words = {w for w in value.replace(",", " ").split() if len(w) > 3}
    assert not any(w in problems[0].message for w in words), problems


ALERT_SETTINGS = {
    "SMTP_HOST": "localhost",
    "SMTP_PORT": "25",
    "SMTP_USER": "ops",
    "ALERT_FROM": "ops@example.com",
    "ALERT_TO": "ops-team@example.com",
}


def test_the_alert_settings_are_declared_optional_and_not_secret() -> None:
    spec = load_spec(None)
    for name in (*ALERT_SETTINGS, "SMTP_PASSWORD", "ALERT_WEBHOOK_URL"):
        entry = spec.entries[name]
        assert not entry.required and entry.description.startswith("alerts: ")
    assert spec.public_names() >= set(ALERT_SETTINGS)
    assert spec.entries["SMTP_PASSWORD"].secret and spec.entries["ALERT_WEBHOOK_URL"].secret
    kinds = {n: spec.entries[n].kind for n in ALERT_SETTINGS}
    assert kinds == {
        "SMTP_HOST": "hostname",
        "SMTP_PORT": "port",
        "SMTP_USER": "string",
        "ALERT_FROM": "email",
        "ALERT_TO": "email_list",
    }


def test_short_or_common_alert_settings_are_not_weak_in_staging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ALERT_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SMTP_PASSWORD", "admin")  # a secret still is weak
    loaded = load_secrets(load_config(env="staging"))
    weak = [
        (f.code, f.subject, f.severity.name) for f in loaded.findings if f.code == "SECRETS_WEAK"
    ]
    assert weak == [("SECRETS_WEAK", "SMTP_PASSWORD", "ERROR")]
    assert not [f for f in loaded.findings if f.subject in ALERT_SETTINGS]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMTP_PORT", "70000"),
        ("SMTP_HOST", "smtp.example.com:587"),
        ("ALERT_TO", "ops@example.com, oncall-at-example"),
        ("ALERT_FROM", "alerts-at-example.com"),
    ],
)
def test_a_bad_alert_setting_is_invalid_by_name_never_by_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    loaded = load_secrets(load_config(env="staging"))
    found = [f for f in loaded.findings if f.subject == name]
    assert [f.code for f in found] == ["SECRETS_INVALID"]
    assert found[0].message.startswith(f"{name} ")
    shown = found[0].message + json.dumps(found[0].details)
    assert value not in shown and value.split(",")[-1].strip() not in shown


def test_secret_false_from_config(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "[secrets.spec.MAIL_LOGIN]\nsecret = false\n"
        '[secrets.spec.MAIL_TOKEN]\ndescription = "a secret by default"\n'
        "[secrets.spec.SMTP_USER]\nsecret = true\n",
    )
    spec = load_spec(load_config())
    assert not spec.entries["MAIL_LOGIN"].secret and spec.entries["MAIL_TOKEN"].secret
    assert spec.entries["SMTP_USER"].secret  # a built-in entry can be made secret again
    found, _ = validate(sset(MAIL_LOGIN="administrator"), spec, "prod")
    assert found == []
    found, _ = validate(sset(MAIL_TOKEN="administrator"), spec, "prod")
    assert codes(found) == [("SECRETS_WEAK", "MAIL_TOKEN")]
    found, _ = validate(sset(SMTP_USER="ops"), spec, "prod")
    assert codes(found) == [("SECRETS_WEAK", "SMTP_USER")]


def test_a_value_declared_public_is_not_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "[secrets.spec.BUILD_LABEL]\nsecret = false\n")
    monkeypatch.setenv("BUILD_LABEL", "release-candidate-7")
    load_secrets(load_config())
    assert redact("built release-candidate-7") == "built release-candidate-7"
