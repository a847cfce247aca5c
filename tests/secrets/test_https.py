"""The https fallback source against a real local HTTP(S) server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets import load_secrets
from ops.secrets.errors import SourceInvalid
from ops.secrets.sources import source_from_url
from ops.secrets.sources.dotenv import quote_value
from tests.secrets.conftest import AWKWARD, DocServer, write_config

DOC = {"SMTP_PASSWORD": "smtp-from-https-42", "FALLBACK_ONLY": "fallback-value-9"}


def configure(tmp_path: Path, url: str, extra: str = "") -> None:
    write_config(tmp_path, f'[secrets.sources.https]\nurl = "{url}"\ntimeout = "2s"\n{extra}')


def test_json_document_with_bearer_from_another_secret(
    https_doc: DocServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    https_doc.routes["/doc.json"] = (200, json.dumps(DOC).encode())
    monkeypatch.setenv("DOC_TOKEN", "bearer-token-abc")
    configure(
        tmp_path,
        f"{https_doc.url}/doc.json",
        f'bearer_secret = "DOC_TOKEN"\nverify = "{https_doc.ca_path}"\n',
    )
    loaded = load_secrets(load_config())
    assert loaded.secrets["FALLBACK_ONLY"] == DOC["FALLBACK_ONLY"]
    assert loaded.secrets.provenance("SMTP_PASSWORD").source == "https"
    assert https_doc.seen[-1]["Authorization"] == "Bearer bearer-token-abc"


def test_untrusted_certificate_is_unavailable(https_doc: DocServer, tmp_path: Path) -> None:
    https_doc.routes["/doc.json"] = (200, json.dumps(DOC).encode())
    configure(tmp_path, f"{https_doc.url}/doc.json")
    assert "https: unavailable" in load_secrets(load_config()).consulted


def test_dotenv_format_and_sha256_pin(http_doc: DocServer, tmp_path: Path) -> None:
    body = "".join(f"{k}={quote_value(v)}\n" for k, v in AWKWARD.items()).encode()
    http_doc.routes["/env"] = (200, body)
    pin = hashlib.sha256(body).hexdigest()
    configure(tmp_path, f"{http_doc.url}/env", f'format = "dotenv"\nsha256 = "{pin}"\n')
    src = source_from_url("https", load_config())
    assert {k: v.value for k, v in src.fetch().items()} == AWKWARD


def test_awkward_values_round_trip_through_a_json_document(
    http_doc: DocServer, tmp_path: Path
) -> None:
    http_doc.routes["/doc.json"] = (200, json.dumps(AWKWARD, ensure_ascii=False).encode())
    configure(tmp_path, f"{http_doc.url}/doc.json")
    assert {k: v.value for k, v in source_from_url("https", load_config()).fetch().items()} == (
        AWKWARD
    )


def test_wrong_sha256_is_a_clear_error(http_doc: DocServer, tmp_path: Path) -> None:
    http_doc.routes["/doc.json"] = (200, json.dumps(DOC).encode())
    configure(tmp_path, f"{http_doc.url}/doc.json", f'sha256 = "{"0" * 64}"\n')
    with pytest.raises(SourceInvalid, match="does not match the pinned sha256"):
        source_from_url("https", load_config()).fetch()
    loaded = load_secrets(load_config())
    assert [f.code for f in loaded.findings] == ["SECRETS_SOURCE_INVALID"]
    assert loaded.exit_code == 3


def test_invalid_json_is_a_clear_error(http_doc: DocServer, tmp_path: Path) -> None:
    http_doc.routes["/doc.json"] = (200, b'{"A": "secret-in-broken-doc",')
    configure(tmp_path, f"{http_doc.url}/doc.json")
    with pytest.raises(SourceInvalid, match="invalid JSON at line 1") as err:
        source_from_url("https", load_config()).fetch()
    assert "secret-in-broken-doc" not in str(err.value)
    http_doc.routes["/doc.json"] = (200, b'["a list"]')
    with pytest.raises(SourceInvalid, match="not an object"):
        source_from_url("https", load_config()).fetch()


@pytest.mark.parametrize(
    "status, consulted, exit_code",
    [(503, "https: unavailable", 0), (403, "https: denied", 4), (404, "https: not-found", 0)],
)
def test_status_codes(
    http_doc: DocServer, tmp_path: Path, status: int, consulted: str, exit_code: int
) -> None:
    http_doc.routes["/doc.json"] = (status, b"{}")
    configure(tmp_path, f"{http_doc.url}/doc.json")
    loaded = load_secrets(load_config())
    assert consulted in loaded.consulted and loaded.exit_code == exit_code
