"""The condition language: a table of conditions x events, and the errors."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from daemon.eventrules.condition import (
    ConditionError,
    compile_condition,
    go_sprint,
    mixed_and_or,
)

EVENT: dict[str, Any] = {
    "type": "Warning",
    "reason": "BackOff",
    "message": "Back-off restarting failed container",
    "count": 5,
    "ratio": 2.5,
    "numtext": "12",
    "ready": True,
    "readytext": "False",
    "nothing": None,
    "involvedObject": {
        "kind": "Pod",
        "name": "web-0",
        "namespace": "shop",
        "fieldPath": "spec.containers{app}",
    },
    "metadata": {"labels": {"app": "web"}},
    "containers": [
        {"name": "app", "ports": [{"hostPort": 0}, {"hostPort": 8080}], "privileged": False},
        {"name": "sidecar", "ports": [{"hostPort": 0}], "privileged": True},
        {"image": "busybox"},
    ],
    "tags": ["a", "b", "c", None],
    "user-name": "alice",
}

TABLE: list[tuple[str, bool]] = [
    # equality, both spellings
    ('reason = "BackOff"', True),
    ('reason == "BackOff"', True),
    ('reason = "backoff"', False),
    ('reason != "BackOff"', False),
    ('reason != "Other"', True),
    # string order is lexical on the text
    ('reason > "A"', True),
    ('reason < "A"', False),
    ('reason >= "BackOff"', True),
    ('reason <= "BackOff"', True),
    ('count > "10"', True),  # "5" > "10" as text
    # a number literal compares numerically
    ("count > 3", True),
    ("count > 10", False),
    ("count = 5", True),
    ("count = 5.0", True),
    ("count != 5", False),
    ("count >= 5", True),
    ("count <= 4", False),
    ("count < -1", False),
    ("ratio < 3", True),
    ("numtext > 11.5", True),  # a numeric string field parses
    ('ratio = "2.5"', True),
    ('count = "5"', True),  # Go prints the float64 5 as "5"
    # a number literal against a non-number: upstream's error, the condition is false
    ("reason > 3", False),
    ("not (reason > 3)", False),
    # booleans, every spelling, bare and negated
    ("ready = true", True),
    ("ready == TRUE", True),
    ("ready = True", True),
    ("ready != true", False),
    ("ready = false", False),
    ("ready = FALSE", False),
    ("ready != False", True),
    ("readytext = false", True),
    ("ready", True),
    ("readytext", False),
    ("not ready", False),
    ("! ready", False),
    ("reason = true", False),  # not a boolean: error, false
    # contains / in / like / regex and their not forms
    ('message contains "restarting"', True),
    ('message not contains "restarting"', False),
    ('message not contains "zzz"', True),
    ("count contains 5", True),
    ('reason in ("Failed", "BackOff")', True),
    ('reason not in ("Failed", "BackOff")', False),
    ('reason not in ("Failed")', True),
    ("count in (4, 5)", True),
    ("count in (5.0)", False),  # in compares text: "5" is not "5.0"
    ('reason like "Back*"', True),
    ('reason like "B?ckOff"', True),
    ('reason like "ack"', True),  # unanchored
    ('reason not like "Back*"', False),
    ('reason regex "^Back"', True),
    ('reason regex "Off$"', True),
    ('reason regex "ckO"', True),
    ('reason not regex "^Off"', True),
    ('reason regex "^off"', False),
    # exists / not exists
    ("reason exists", True),
    ("involvedObject exists", True),  # an object counts
    ("missing exists", False),
    ("missing not exists", True),
    ("nothing exists", False),  # null is missing
    # nested paths
    ('involvedObject.kind = "Pod"', True),
    ('metadata.labels.app = "web"', True),
    ('user-name = "alice"', True),
    # arrays: [*] any, index and slices every selected element
    ('containers[*].name = "sidecar"', True),
    ('containers[*].name = "nope"', False),
    ('containers[1].name = "sidecar"', True),
    ('containers[0].name = "sidecar"', False),
    ('containers[5].name = "sidecar"', False),  # out of range selects nothing
    ('containers[0:2].name like "*"', True),
    ('containers[:2].name != "x"', True),
    ('containers[0:3].name != "x"', False),  # the third has no name
    ('containers[2:].image = "busybox"', True),
    ("containers[*].ports[*].hostPort > 0", True),
    ("containers[1].ports[*].hostPort > 0", False),
    ("containers[0:1].ports[0:2].hostPort >= 0", True),
    ("containers[*].privileged = true", True),
    ("containers[0].privileged = true", False),
    ('tags[*] contains "b"', True),
    ('tags[0:2] contains "c"', False),
    ('tags[0:2] not contains "c"', True),
    ("containers[*].name exists", True),
    ("containers[2].name not exists", True),
    # an element without the field only fails itself (upstream fails the whole [*])
    ('containers[*].image = "busybox"', True),
    # missing fields: every comparison is false, not forms included
    ('missing = "x"', False),
    ('missing != "x"', False),
    ("missing > 1", False),
    ('missing not contains "x"', False),
    ('missing not in ("x")', False),
    ('missing not like "x"', False),
    ('missing not regex "x"', False),
    ("missing = true", False),
    ("missing", False),
    ('not missing = "x"', True),
    ('missing.deeper[*].x = "y"', False),
    # and / or: one precedence, left to right
    ('reason = "Other" or reason = "BackOff" and count > 10', False),
    ('reason = "Other" or (reason = "BackOff" and count > 10)', False),
    ('count > 10 and reason = "Other" or type = "Warning"', True),
    ('type = "Warning" or count > 10 and reason = "Other"', False),
    ('(type = "Warning" or count > 10) and reason = "Other"', False),
    ('type = "Warning" or (count > 10 and reason = "Other")', True),
    # not takes the rest of the chain
    ('not reason = "Other" and count > 10', True),
    ('(not reason = "Other") and count > 10', False),
    ('! reason = "BackOff" or type = "Warning"', False),
    ('type = "Warning" and not count > 10 or reason = "BackOff"', False),
    ('not not reason = "BackOff"', True),
    # whitespace and quoting
    ('reason="BackOff"and count>3', True),
    ('\treason\n=\r\n"BackOff"', True),
    ('message contains "Back-off restarting"', True),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_condition_table(text: str, expected: bool) -> None:
    """Each condition evaluates over the event as kube-events' engine does."""
    assert compile_condition(text)(EVENT) is expected


def test_audit_paths_fold_case() -> None:
    """With case-insensitive paths, User.Username finds user.username, and back."""
    audit = {"user": {"username": "bob"}, "ObjectRef": {"Resource": "pods"}}
    folded = compile_condition(
        'User.Username = "bob" and objectRef.resource = "pods"', case_insensitive_paths=True
    )
    assert folded(audit)
    assert not compile_condition('User.Username = "bob"')(audit)


def test_string_literals_are_not_unescaped() -> None:
    """A string keeps its backslashes, as upstream only trims the quotes."""
    assert compile_condition(r'message = "a\"b"')({"message": 'a\\"b'})
    assert compile_condition(r'message = "a\\"')({"message": "a\\\\"})
    assert compile_condition(r'message regex "a\.b"')({"message": "a.b"})
    assert not compile_condition(r'message regex "a\.b"')({"message": "axb"})


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty"),
        ('reason = "x" and', 16, "expected a field name"),
        ('reason = "x" reason', 13, "expected the end"),
        ('reason "x"', 7, "expected the end"),
        ("reason = ", 9, "expected a string or a number"),
        ('(reason = "x"', 13, "expected ')'"),
        ('reason = "x")', 12, "expected the end"),
        ("reason = 'x'", 9, "unexpected character"),
        ('reason in "x"', 10, "expected '('"),
        ("reason in ()", 11, "expected a number or a string"),
        ("reason like 3", 12, "expected a string"),
        ("reason > true", 9, "expected a string or a number"),
        ('reason regex "("', 13, "bad regular expression"),
        ('reason regex "a(?=b)"', 13, "bad regular expression"),
        ('tags[*] = "x"', 0, "contains or not contains"),
        ("tags[*].x", 0, "needs an operator"),
        ('a[3:1].b = "x"', 0, "starts after its end"),
        ('and = "x"', 0, "expected a field name"),
        ('reason  not  contains "x"', 8, "expected the end"),
        ('reason = "x" && count > 1', 13, "unexpected character"),
        ('reason = "abc', 9, "no closing quote"),
        ('not involvedObject.kind = "Pod"', 0, "write '!involvedObject.kind ...' or"),
        ("not existsFlag = true", 0, "'not exists' is read as one operator"),
        ('reason = "a\\"', 9, "no closing quote"),
        ('reason = "' + "\\\\" * 5000, 9, "no closing quote"),
    ],
)
def test_condition_errors(text: str, position: int, fragment: str) -> None:
    """A broken condition is refused with its position and a message."""
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert caught.value.position == position, str(caught.value)
    assert fragment in caught.value.message


def test_deep_nesting_is_refused() -> None:
    """A condition nested past the depth limit is refused, not a stack overflow."""
    with pytest.raises(ConditionError, match="nested"):
        compile_condition("(" * 500 + 'a = "b"' + ")" * 500)


def test_long_chains_and_many_nots_compile() -> None:
    """Thousands of and/or terms, and many parenthesised nots, compile and evaluate."""
    many = " or ".join(f'reason = "R{i}"' for i in range(5000))
    condition = compile_condition(many + ' and type = "Warning"')
    assert condition({"reason": "R4999", "type": "Warning"})
    assert not condition({"reason": "R4999", "type": "Normal"})
    assert condition.equalities["reason"] == frozenset(f"R{i}" for i in range(5000))
    spread = " and ".join(f'(not reason = "R{i}")' for i in range(300))
    assert compile_condition(spread)({"reason": "other"})
    with pytest.raises(ConditionError, match="nested"):
        compile_condition("not " * 150 + 'reason = "x"')


def test_mixed_and_or_positions() -> None:
    """Each chain mixing and/or without parentheses is reported once, at the switch."""
    assert mixed_and_or('a = "1" and b = "2"') == []
    assert mixed_and_or('a = "1" or b = "2" and c = "3"') == [19]
    assert mixed_and_or('(a = "1" or b = "2") and c = "3"') == []
    assert mixed_and_or('a = "1" and (b = "2" or c = "3" and d = "4")') == [32]
    assert mixed_and_or('not a = "1" or b = "2" and c = "3"') == [23]


def test_equalities_for_indexing() -> None:
    """Fields compared for equality are exposed, through and/or, for indexing."""
    eq = compile_condition(
        'type = "Warning" and (reason = "A" or reason in ("B", "C")) and count > 3'
    ).equalities
    assert eq == {"type": frozenset({"Warning"}), "reason": frozenset({"A", "B", "C"})}
    assert compile_condition('reason = "A" or type = "B"').equalities == {}
    assert compile_condition('not reason = "A"').equalities == {}
    assert compile_condition("count = 3").equalities == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        (5.0, "5"),
        (2.5, "2.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (True, "true"),
        ({"b": 1, "a": "x"}, "map[a:x b:1]"),
        (["a", 1], "[a 1]"),
    ],
)
def test_go_sprint(value: Any, text: str) -> None:
    """Values print as Go's fmt.Sprint prints the float64-flattened event."""
    assert go_sprint(value) == text


FRAGMENTS = [
    "reason",
    "count",
    "containers[*].name",
    "tags[0:2]",
    "a.b.",
    "x-y",
    " = ",
    " == ",
    " != ",
    " > ",
    " <= ",
    " contains ",
    " not contains ",
    " in ",
    " not in ",
    " like ",
    " regex ",
    " exists",
    " not exists",
    " and ",
    " or ",
    "not ",
    "!",
    "(",
    ")",
    ",",
    '"BackOff"',
    '"Back*"',
    '"(["',
    "3",
    "-1.5",
    "true",
    "FALSE",
    '"',
    "\\",
    "[",
    "]",
    ":",
    "*",
    "  ",
    "\t",
    "é",
]


def test_random_conditions_fail_cleanly() -> None:
    """Random token soup either compiles and evaluates to a bool, or is a ConditionError."""
    rng = random.Random(7)
    compiled = 0
    for _ in range(3000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(1, 12)))
        try:
            condition = compile_condition(text)
        except ConditionError as err:
            assert 0 <= err.position <= len(text)
            continue
        compiled += 1
        assert condition(EVENT) in (True, False)
        assert condition({}) in (True, False)
        mixed_and_or(text)
    assert compiled > 30


LEAVES = [
    'reason = "BackOff"',
    "count > 3",
    "ready",
    "ready = false",
    'message contains "fail"',
    'reason in ("A", "BackOff")',
    'reason not like "B*"',
    'reason regex "^B"',
    "missing exists",
    'containers[*].name = "app"',
    "containers[0:2].ports[*].hostPort >= 0",
    'tags[*] contains "b"',
    "reason > 3",
    'involvedObject.kind != "Node"',
]


def _grammar(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice(LEAVES)
    if roll < 0.5:
        inner = _grammar(rng, depth + 1)
        # "not in..." would lex as the operator "not in" (test_not_before_a_keyword_prefix).
        spellings = (
            ["!", "! "]
            if re.match(r"(in|contains|like|regex|exists)", inner)
            else ["not ", "!", "! "]
        )
        return rng.choice(spellings) + inner
    if roll < 0.65:
        return "(" + _grammar(rng, depth + 1) + ")"
    return _grammar(rng, depth + 1) + rng.choice([" and ", " or "]) + _grammar(rng, depth + 1)


def test_generated_conditions_compile() -> None:
    """Every condition the grammar allows compiles, and evaluates to a bool."""
    rng = random.Random(11)
    for _ in range(1500):
        text = _grammar(rng, 0)
        condition = compile_condition(text)
        assert condition(EVENT) in (True, False), text
        assert condition({}) in (True, False), text


def test_evaluation_does_not_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled condition runs without the lexer or parser: it is closures only."""
    from daemon.eventrules import condition as module

    compiled = compile_condition('type = "Warning" and (reason like "Back*" or count > 10)')

    def refuse(*args: object) -> None:
        raise AssertionError("parsed during evaluation")

    monkeypatch.setattr(module, "_tokens", refuse)
    monkeypatch.setattr(module, "_Parser", refuse)
    assert compiled(EVENT)
    assert not compiled({**EVENT, "type": "Normal"})
