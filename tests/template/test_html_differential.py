"""Random html templates rendered by tocsin and by amtool 0.25, compared byte for byte.

The templates mix HTML, JS and CSS fragments with actions of many value types and with
nested ``if``/``with``/``range`` (and ``break``/``continue``), so most contexts, their
joins and Go's escape errors (with Go's wording) are met. Seeded: the same templates
every run.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from daemon.template.errors import TemplateError
from daemon.template.templateset import TemplateSet
from tests.template.amdata import amtool_example_data
from tests.template.test_go_outputs import _amtool

FRAGMENTS = [
    *['<a href="', "<a href=", '"', "'", ">", "</a>", '<p style="', "color: ", "; ", "url("],
    *[")", "<script>", "</script>", "<style>", "</style>", "var x = ", "/", "//", "/*", "*/"],
    *["\n", " ", "?", "#", "&amp;", "&quot;", "<!--", "-->", "<", "x", "=", 'onclick="'],
    *["<title>", "</title>", "<textarea>", "</textarea>", "<img src=", '<img srcset="', ","],
    *["a.png 1x", "(", "[", "]", "\\", "`", "<b ", 'data-url="', "http://h/", "javascript:"],
    *["return ", "+", "-", ".", "1", "if ", "{", "}", ":", "style='", "font: ", '"x', "'y"],
    *['type="text/plain"', '<script type="application/json">', '<svg xlink:href="'],
]
VALUES = [
    *['"a b"', '"<x>&\'\\"+"', '"javascript:alert(1)"', '"http://ok/a b?c=d#e"', '""', "1"],
    *["1.5", "true", ".CommonLabels", ".Receiver", '"é\\u2028"', '"/p q(x)"', '"red"'],
    *['"expression(x)"', '"%41%zz"', '"a,b 2x"', ".Alerts.Firing", '"x" | html'],
    *['"x y" | urlquery', '"<b>" | safeHtml', 'html "a<" 2', '"  x"', '"\\\\"', '"-->"'],
    '"a\\nb"',
]
BRANCHES = ["if .Receiver", "if .Foo", "range .Alerts", "with .Status", "if false"]


def random_template(rng: random.Random, depth: int = 0) -> str:
    """Fragments, actions and nested branches, at most three levels deep."""
    parts = []
    for _ in range(rng.randint(1, 5)):
        r = rng.random()
        if r < 0.3:
            parts.append("{{ " + rng.choice(VALUES) + " }}")
        elif r < 0.45 and depth < 2:
            kind = rng.choice(BRANCHES)
            body = random_template(rng, depth + 1)
            if kind.startswith("range") and rng.random() < 0.3:
                body += rng.choice(["{{ break }}", "{{ continue }}"])
            other = "{{ else }}" + random_template(rng, depth + 1) if rng.random() < 0.5 else ""
            parts.append("{{ " + kind + " }}" + body + other + "{{ end }}")
        else:
            parts.append(rng.choice(FRAGMENTS))
    return "".join(parts)


TEMPLATES = [random_template(random.Random(seed)) for seed in range(150)]


@pytest.mark.alertmanager
@pytest.mark.parametrize("text", TEMPLATES)
def test_random_html_template_like_amtool(tmp_path: Path, text: str) -> None:
    """tocsin prints what amtool prints for the template, or fails with Go's message; a
    template Go cannot parse, tocsin refuses too (parse messages are compared elsewhere)."""
    assert shutil.which("amtool") is not None
    want = _amtool(tmp_path, text, "html", errors=True)
    try:
        got = TemplateSet(html=True).execute_text(text, amtool_example_data())
    except TemplateError as e:
        got = f"ERROR {e}"
    if want.startswith("ERROR template:") and "executing" not in want:
        assert got.startswith("ERROR "), f"Go refused to parse it, tocsin printed {got!r}"
        return
    assert got == want
