"""Redaction of ``--json``: inside the structure, before serialising, so no encoding slips by.

A secret holding non-ASCII, a quote, a newline or a backslash is escaped by
``json.dumps``; redacting the serialised text would miss it. Every string of
the payload (keys too) is redacted first, and the value appears in no form:
raw, JSON-escaped or ``\\u``-escaped.
"""

from __future__ import annotations

import json
from pathlib import Path

from ops import findings as F
from ops.cliutil import echo_json
from ops.logs import REDACTED, redact_data, register_secret_values

AWKWARD = 'päss"wörd\\with\nnewline-€-ABCDEF123456'


def _forms(value: str) -> set[str]:
    escaped = json.dumps(value)[1:-1]  # \u-escaped non-ASCII, \" \\ \n
    unicode_kept = json.dumps(value, ensure_ascii=False)[1:-1]
    return {value, escaped, unicode_kept, *(line for line in value.splitlines() if len(line) > 7)}


def test_redact_data_walks_keys_values_lists_and_objects() -> None:
    register_secret_values([AWKWARD])
    data = {
        "text": f"before {AWKWARD} after",
        AWKWARD: [AWKWARD, 1, None, True, 2.5, (AWKWARD,)],
        "path": Path(f"/x/{AWKWARD}"),
    }
    out = redact_data(data)
    assert out == {
        "text": f"before {REDACTED} after",
        REDACTED: [REDACTED, 1, None, True, 2.5, [REDACTED]],
        "path": f"/x/{REDACTED}",
    }


def test_no_encoding_of_the_secret_survives_to_json(capsys) -> None:
    register_secret_values([AWKWARD])
    finding = F.error("SECRETS_INVALID", "X", f"bad {AWKWARD}", details={"v": AWKWARD})
    printed = [F.to_json([finding], {"nested": {"list": [AWKWARD]}}), F.dumps({"k": AWKWARD})]
    for payload in ({"raw": AWKWARD, "line": AWKWARD.splitlines()[1]}, F.to_json([finding])):
        echo_json(payload)
        printed.append(capsys.readouterr().out)
    for text in printed:
        assert REDACTED in text
        assert [f for f in _forms(AWKWARD) if f in text] == []
        json.loads(text)  # still valid JSON


def test_the_old_way_would_have_leaked() -> None:
    """Redacting serialised text misses the escaped form: the reason for the rule."""
    from ops.logs import redact

    register_secret_values([AWKWARD])
    assert json.dumps(AWKWARD)[1:-1] in redact(json.dumps({"k": AWKWARD}))
