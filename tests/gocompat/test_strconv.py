"""go_quote against Go's strconv.Quote: a table, and the real amtool 0.25 as the oracle."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from daemon.gocompat.strconv import go_quote

#: (input, what Go's strconv.Quote returns); ``test_go_quote_agrees_with_amtool`` checks
#: each one that YAML can carry against the real Go binary.
GO_OUTPUTS = [
    ("", '""'),
    ("plain", '"plain"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
    ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
    ("caf\u00e9 \u65e5\u672c", '"caf\u00e9 \u65e5\u672c"'),
    ("\u00a0", '"\\u00a0"'),  # no-break space: a separator, not printable in Go
    ("\u200b\u2028", '"\\u200b\\u2028"'),  # zero-width space (Cf), line separator (Zl)
    ("\u0085", '"\\u0085"'),  # NEL, a C1 control
    ("\U0001f600", '"\U0001f600"'),  # emoji: a symbol, printable
    ("\U000e0001", '"\\U000e0001"'),  # language tag (Cf)
    ("\ue000", '"\\ue000"'),  # private use
    ("'single'", "\"'single'\""),
    ("\udcff", '"\\xff"'),  # an invalid UTF-8 byte, as surrogateescape carries it
]


@pytest.mark.parametrize(("text", "expected"), GO_OUTPUTS)
def test_go_quote_matches_go(text: str, expected: str) -> None:
    """Every rune class Go's Quote distinguishes is escaped exactly as Go does."""
    assert go_quote(text) == expected


AMTOOL = "/usr/bin/amtool"


@pytest.mark.alertmanager
@pytest.mark.parametrize(
    "text", [text for text, _ in GO_OUTPUTS if text and "\x00" not in text and "\udcff" not in text]
)
def test_go_quote_agrees_with_amtool(text: str, tmp_path: Path) -> None:
    """amtool quotes an undefined receiver name with %q: its text is go_quote's."""
    config = tmp_path / "q.yml"
    doc = {"route": {"receiver": text}, "receivers": [{"name": "other"}]}
    # JSON is YAML: BMP characters go as \\u escapes (YAML would fold a raw NEL into a
    # space), astral ones raw (YAML refuses JSON's surrogate-pair escapes).
    astral = any(ord(ch) > 0xFFFF for ch in text)
    config.write_text(json.dumps(doc, ensure_ascii=not astral), encoding="utf-8")
    out = subprocess.run(
        [AMTOOL, "check-config", str(config)], capture_output=True, text=True, timeout=30
    ).stdout
    found = re.search(r"undefined receiver (.*) used in route", out)
    assert found is not None, out
    assert found.group(1) == go_quote(text)
