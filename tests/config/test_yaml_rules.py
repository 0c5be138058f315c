"""yaml.v2's reading and writing rules that tocsin copies (tags, quoting, key order, syntax errors)."""

from __future__ import annotations

import pytest

from daemon.config.decode import go_sorted_keys
from daemon.config.errors import ConfigError
from daemon.config.yamlsource import compose, needs_quotes, resolve_plain
from daemon.gocompat.strconv import go_quote


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("y", "bool"),
        ("Off", "bool"),
        ("true", "bool"),
        ("", "null"),
        ("~", "null"),
        ("12", "int"),
        ("0x1F", "int"),
        ("-3", "int"),
        ("1.5", "float"),
        (".inf", "float"),
        ("2020-01-02", "timestamp"),
        ("09:00", "str"),
        ("hello", "str"),
        ("<<", "merge"),
    ],
)
def test_plain_scalar_tags(value: str, tag: str) -> None:
    """Unquoted scalars resolve to yaml.v2's (YAML 1.1) tags, e.g. 'y' is a bool."""
    assert resolve_plain(value) == tag


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("y", True), ("09:00", True), ("1:5", True), ("2020:2030", False), ("abc", False)],
)
def test_strings_needing_quotes(value: str, quoted: bool) -> None:
    """Strings that would read back as another type (incl. base-60 numbers) are quoted."""
    assert needs_quotes(value) is quoted


def test_go_key_order() -> None:
    """Map keys sort like yaml.v2: non-letters first, digit runs by numeric value."""
    keys = ["a10", "a9", "Z", "_x", "b", "a", "a1", "10", "2"]
    assert go_sorted_keys(keys) == ["_x", "2", "10", "Z", "a", "a1", "a9", "a10", "b"]


def test_go_quote() -> None:
    """Messages quote like Go's %q."""
    assert go_quote('a"b\\c\n\x01') == '"a\\"b\\\\c\\n\\x01"'


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: b\n  c: d\n", "yaml: line 2: mapping values are not allowed in this context", 2),
        ("a: [1, 2\nb: 3\n", "yaml: line 1: did not find expected ',' or ']'", 2),
        ("a:\n  - b\n  c: d\n", "yaml: line 2: did not find expected '-' indicator", 3),
        ('a: "x\n', "yaml: line 2: found unexpected end of stream", 2),
        ("a: b: c\n", "yaml: mapping values are not allowed in this context", 1),
        ("a:\n\tb: c\n", "yaml: line 2: found character that cannot start any token", 2),
        ("a: *x\n", "yaml: unknown anchor 'x' referenced", None),
    ],
)
def test_syntax_errors_read_like_libyaml(text: str, message: str, line: int | None) -> None:
    """Syntax errors use libyaml's words and yaml.v2's (sometimes off-by-one) line number;
    ``line`` holds the real one."""
    with pytest.raises(ConfigError) as info:
        compose(text)
    assert (info.value.message, info.value.line) == (message, line)


def test_only_first_document_is_read() -> None:
    """Like yaml.v2's Unmarshal, later documents (even broken ones) are ignored."""
    node = compose("a: 1\n---\nb: [\n")
    assert node is not None and node.value[0][0].value == "a"
