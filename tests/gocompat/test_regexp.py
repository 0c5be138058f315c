"""Go's regexp syntax and meaning (Go's checker, RE2 to match), checked against the real amtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.load import load_config_file
from daemon.dispatch.route import RouteNode
from daemon.gocompat.regexp import (
    GoRegexError,
    anchored_set,
    check,
    compile_anchored,
    compile_go,
)
from daemon.matcher import Matcher, MatcherError, MatchType
from daemon.silence.model import Silence
from daemon.silence.state import Silences

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"

#: Valid Go patterns whose meaning differs from (or is unknown to) Python's re.
PATTERNS = [
    "(?i)critical",
    "a(?i)b|c",
    "(?i:warn)ing",
    "x(?i)y(?-i)z",
    r"\d+",
    r"\w+",
    r"\s",
    r"\D\W",
    r"[[:alpha:]]+",
    r"[[:^digit:]x]+",
    r"[\d\s]+",
    r"\x{41}\x42\101",
    r"a{,3}",
    r"a{2}",
    r"a{2,}b",
    r"a{01}",
    r"\Qa.b\E+",
    "^host$",
    "(?m)^a$",
    "(?s)a.b",
    "a.b",
    r"\pL+",
    r"\p{Lu}\p{Ll}+",
    r"[\p{N}]+",
    r"\PL",
    "(?U)a+",
    r"\bword\b.*",
    "^*a",
    "[]a]+",
    "[a-]+",
    r"\.\-\_",
    "(?i)straße",
    "(?i)k",
    "é|(?i)é",
    "a)|(b",
    "",
]
TEXTS = [
    "critical",
    "CRITICAL",
    "Critical",
    "ab",
    "aB",
    "Ab",
    "c",
    "C",
    "warning",
    "WARNing",
    "WARNING",
    "xYz",
    "xyZ",
    "123",
    "١٢٣",
    "abc_1",
    "héllo",
    " ",
    "\n",
    "\u00a0",
    "ABA",
    "a{,3}",
    "aa",
    "aaab",
    "a{01}",
    "a.bbb",
    "host",
    "host\n",
    "a\nb",
    "a\n",
    "axb",
    "Über",
    "ÜBER",
    "x9",
    "a",
    "word here",
    "]a]",
    "a-",
    ".-_",
    "STRASSE",
    "STRAßE",
    "\u212a",
    "É",
    "é",
    "xa",
    "bx",
    "",
]
#: Patterns Go refuses, with what Go says (checked against amtool below).
BAD = [
    "(",
    ")",
    "[a",
    "a**",
    "*",
    "a|*",
    "(?=x)",
    "(?<n>x)",
    r"a\Z",
    r"(a)\1",
    "a{1001}",
    "a{3,2}",
    r"\x{zz}",
    r"\xg1",
    "[z-a]",
    "[[:foo:]]",
    r"\p{Foo1}",
    "(?P<a-b>x)",
    "(?i",
    "(?x)a",
    r"\C",
    r"[\b]",
    r"\Qab",
    "x\\",
]


def matches(pattern: str, text: str) -> bool:
    """tocsin's verdict for an Alertmanager regex matcher ``l=~pattern``."""
    return Matcher.create(MatchType.REGEXP, "l", pattern).matches(text)


def test_inline_flags_anywhere_apply_to_the_end_of_their_group() -> None:
    """``(?i)`` inside a group lasts across ``|`` to the group's end, as Go's parser keeps it."""
    assert matches("(?i)critical", "CRITICAL")
    assert matches("a(?i)b|c", "C") and not matches("a(?i)b|c", "Ab")
    assert matches("(?i:warn)ing", "WARNing") and not matches("(?i:warn)ing", "WARNING")
    assert matches("x(?i)y(?-i)z", "xYz") and not matches("x(?i)y(?-i)z", "xyZ")


def test_perl_classes_and_word_boundaries_are_ascii() -> None:
    """``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII in Go, Unicode in Python by default."""
    assert matches(r"\d+", "123") and not matches(r"\d+", "١٢٣")
    assert not matches(r"\w+", "héllo")
    assert not matches(r"\s", "\u00a0")
    assert not matches(r"\bé", "é") and matches(r"\ba\b", "a")


def test_dollar_and_end_of_text() -> None:
    """Go's ``$`` is the end of text (Python's also matches before a final newline)."""
    assert not matches("^host$", "host\n")
    assert matches("(?m)^a$", "a\nb") is False  # anchored as a whole: ^(?:…)$
    assert compile_go("(?m)^a$").search("x\na\nb")
    assert not compile_go("a$").search("a\n")


def test_go_only_syntax() -> None:
    """``\\x{…}``, octal, ``\\Q…\\E``, POSIX and Unicode classes, ``(?U)``, literal braces."""
    assert matches(r"\x{41}\x42\101", "ABA")
    assert matches(r"\Qa.b\E+", "a.bbb")
    assert matches(r"[[:alpha:]]+", "abc") and not matches(r"[[:alpha:]]+", "x9")
    assert matches(r"\pL+", "Über") and matches(r"\p{Lu}\p{Ll}+", "Über")
    assert matches("a{,3}", "a{,3}") and not matches("a{,3}", "aa")
    assert matches("a{01}", "a{01}")
    assert compile_go("(?U)a+").replace_all("aaa", "x") == "xxx"
    assert compile_go("a+").replace_all("aaa", "x") == "x"


def test_unicode_case_folding() -> None:
    """``(?i)`` folds Unicode (Kelvin sign, accented letters), not only ASCII."""
    assert matches("(?i)k", "\u212a")
    assert matches("(?i)über", "ÜBER")


def test_errors_read_like_go() -> None:
    """Refused patterns raise Go's message, naming the expression Go names."""
    with pytest.raises(GoRegexError) as info:
        check("a**")
    assert str(info.value) == "error parsing regexp: invalid nested repetition operator: `**`"
    with pytest.raises(MatcherError) as matcher_info:
        Matcher.create(MatchType.REGEXP, "l", "[a")
    assert str(matcher_info.value) == "error parsing regexp: missing closing ]: `[a)$`"


def test_unbalanced_pattern_is_read_inside_the_anchors() -> None:
    """``a)|(b`` is valid only inside ``^(?:…)$``; Go then matches a prefix or a suffix."""
    assert matches("a)|(b", "ax") and matches("a)|(b", "xb") and not matches("a)|(b", "x")
    # match_re wraps once more (Alertmanager 0.25): only "a" and "b" themselves.
    assert matches("^(?:a)|(b)$", "a") and not matches("^(?:a)|(b)$", "ab")


def test_silence_index_reads_go_syntax() -> None:
    """A silence on ``a{,3}`` mutes the literal value, not ``a``, ``aa`` or ``aaa``."""
    silences = Silences()
    matcher = Matcher.create(MatchType.REGEXP, "l", "a{,3}")
    silence = Silence(
        id="", matchers=(matcher,), starts_at=0, ends_at=2**62, created_by="t", comment="c"
    )
    sid = silences.set(silence, now=1)
    assert silences.mutes({"l": "a{,3}"}, fingerprint=1, now=2) == [sid]
    assert silences.mutes({"l": "aa"}, fingerprint=2, now=2) == []


def _route_config(patterns: list[str]) -> str:
    """Two routes per pattern: ``m<i>`` with ``matchers``, ``r<i>`` with ``match_re``."""
    routes = []
    for i, p in enumerate(patterns):
        quoted = p.replace("\\", "\\\\").replace('"', '\\"')
        matcher = json.dumps('l=~"' + quoted + '"')
        routes.append(
            f"    - receiver: m{i}\n      continue: true\n"
            f"      matchers: [{matcher}]\n"
            f"    - receiver: r{i}\n      continue: true\n"
            f"      match_re: {{l: {json.dumps(p)}}}\n"
        )
    receivers = "".join(f"  - name: m{i}\n  - name: r{i}\n" for i in range(len(patterns)))
    return (
        f"route:\n  receiver: none\n  routes:\n{''.join(routes)}"
        f"receivers:\n  - name: none\n{receivers}"
    )


def _matcher_arg(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'l="{escaped}"'


@pytest.mark.alertmanager
def test_matching_agrees_with_alertmanager(tmp_path: Path) -> None:
    """Every pattern and text gets amtool's routing verdict, in matchers and match_re."""
    config = tmp_path / "routes.yml"
    config.write_text(_route_config(PATTERNS))
    root = RouteNode.build(load_config_file(str(config)).route)
    for text in TEXTS:
        out = subprocess.run(
            [AMTOOL, "config", "routes", "test", f"--config.file={config}", _matcher_arg(text)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        theirs = set(out.split(","))
        ours = {node.receiver for node in root.match({"l": text})}
        assert ours == theirs, (text, sorted(ours ^ theirs))


@pytest.mark.alertmanager
@pytest.mark.parametrize("pattern", BAD)
def test_errors_agree_with_alertmanager(tmp_path: Path, pattern: str) -> None:
    """amtool check-config refuses the pattern with the message tocsin gives."""
    config = tmp_path / "bad.yml"
    config.write_text(
        f"route:\n  receiver: x\n  match_re:\n    l: {json.dumps(pattern)}\nreceivers:\n  - name: x\n"
    )
    out = subprocess.run(
        [AMTOOL, "check-config", str(config)], capture_output=True, text=True
    ).stdout
    assert "FAILED: " in out, out
    theirs = out.split("FAILED: ", 1)[1].strip()
    with pytest.raises(MatcherError) as info:
        Matcher.create(MatchType.REGEXP, "l", pattern)
    assert str(info.value) == theirs


def test_unicode_script_classes_work() -> None:
    """``\\p{Greek}`` and ``\\P{Latin}`` read Unicode scripts, as Go's tables do."""
    assert matches(r"\p{Greek}+", "αβγ") and not matches(r"\p{Greek}+", "abc")
    assert matches(r"\P{Latin}+", "αβγ") and not matches(r"\P{Latin}+", "abc")
    assert matches(r"[\p{Han}\p{Hiragana}]+", "日本") and matches(r"\p{^Greek}", "x")


def test_non_ascii_values_match_as_utf8() -> None:
    """Patterns and values with non-ASCII text match rune by rune, not byte by byte."""
    assert matches("h.llo", "héllo") and not matches("h..llo", "héllo")
    assert matches("(?i)ÉTÉ", "été") and matches("[à-ü]{3}", "éüà")
    assert compile_go("é+").replace_all("xééy", "-") == "x-y"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
        ("(a{100}){100}", "error parsing regexp: invalid repeat count: `{100}`"),
        ("((a{10}){10}){11}", "error parsing regexp: invalid repeat count: `{11}`"),
        (r"\p{Klingon}", "error parsing regexp: invalid character class range: `\\p{Klingon}`"),
        (r"\C", "error parsing regexp: invalid escape sequence: `\\C`"),
    ],
)
def test_go_limits_are_refused_with_go_text(pattern: str, message: str) -> None:
    """Counts over 1000, nested counts whose product passes 1000 and unknown classes."""
    with pytest.raises(GoRegexError) as info:
        check(pattern)
    assert str(info.value) == message


def test_nesting_limit_is_gos_tree_height() -> None:
    """998 nested groups pass inside ``^(?:…)$`` (height 1000), 999 do not; no RecursionError."""
    Matcher.create(MatchType.REGEXP, "l", "(" * 998 + "a" + ")" * 998)
    with pytest.raises(MatcherError, match="expression nests too deeply"):
        Matcher.create(MatchType.REGEXP, "l", "(" * 999 + "a" + ")" * 999)
    # Far deeper than Python's stack: refused by the iterative parse, not a crash.
    with pytest.raises(GoRegexError, match="expression nests too deeply"):
        check("(" * 100_000 + "a" + ")" * 100_000)
    with pytest.raises(GoRegexError, match="missing closing"):
        check("(" * 100_000)


def test_600_nested_groups_match() -> None:
    """A pattern nesting 600 groups (Python's re raised RecursionError) compiles and matches."""
    m = Matcher.create(MatchType.REGEXP, "l", "(" * 600 + "ab" + ")" * 600)
    assert m.matches("ab") and not m.matches("abc")


def test_backtracking_bombs_match_in_linear_time() -> None:
    """``(x+x+)+y`` and ``([a-z]+)*[0-9]`` on long values answer at once (RE2, no backtracking)."""
    import time

    bombs = [
        Matcher.create(MatchType.REGEXP, "instance", "(x+x+)+y"),
        Matcher.create(MatchType.NOT_REGEXP, "victim", "([a-z]+)*[0-9]"),
    ]
    start = time.perf_counter()
    for n in (22, 1000, 100_000):
        assert not bombs[0].matches("x" * n)
        assert bombs[1].matches("a" * n)
    # Python's re took 129 ms at 22 characters and doubles per character.
    assert time.perf_counter() - start < 0.5


def test_replace_all_skips_an_empty_match_after_a_match() -> None:
    """``reReplaceAll`` follows Go's ``ReplaceAllString``, not Python's ``re.sub``."""
    assert compile_go("a*").replace_all("baaac", "X") == "XbXcX"
    assert compile_go("").replace_all("héé", "-") == "-h-é-é-"
    # Go reads $01 and $1x as names (none here), ${1} as the group, a lone $ as text.
    assert compile_go("(a)").replace_all("a", "$01|$1x|${1}x|$-") == "||ax|$-"
    assert compile_go("(?P<k>\\w+)=(\\w+)").replace_all("a=1 b=2", "$2:${k}$$") == "1:a$ 2:b$"


def test_literal_values_come_from_gos_parse() -> None:
    """The silence index's literal sets: alternations, small classes, groups; nothing folded."""
    from daemon.gocompat.regexp import anchored_literals, literal_values

    assert literal_values("web|db-[12]") == ("web", "db-1", "db-2")
    assert literal_values("(?:a|b)(c)") == ("ac", "bc")
    assert literal_values("a{,3}") == ("a{,3}",)
    for wide in ("(?i)web", "a+", r"\d", "[^a]", "a.b", "^a$", "(", "x{2}"):
        assert literal_values(wide) is None, wide
    # \Q without \E swallows the wrapper's ")$": not a literal of the anchored pattern.
    assert anchored_literals(r"\Qab") is None


def test_checking_is_linear_in_the_pattern() -> None:
    """A megabyte pattern (Go has no length limit) is checked and compiled in well under
    a second: plain runs are one node, literal sets are joined once, big ones not cached."""
    import time

    start = time.perf_counter()
    m = Matcher.create(MatchType.REGEXP, "l", "a" * 1_000_000)
    hosts = "|".join(f"host-{i}.example.com" for i in range(5_000))
    Matcher.create(MatchType.REGEXP, "l", hosts)
    assert time.perf_counter() - start < 1.5
    assert m.matches("a" * 1_000_000) and not m.matches("a" * 999_999)


#: Prefixes and alternations whose match ranges are narrow, beside the wide ones above.
_RANGED = [
    "db-.*",
    "(db|cache)-1\\..*",
    "host-\\d+",
    "x|y",
    "é1",
    "[a-c]z?",
    "\\x{10FFFF}a",
    "(?i)WEB",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PATTERNS + _RANGED), min_size=1, max_size=8),
    st.lists(
        st.one_of(
            st.sampled_from(TEXTS),
            st.text(
                alphabet=st.sampled_from(list("abcdehostxyzWEBé1-.\u00ff\U0010ffff")), max_size=8
            ),
            st.text(max_size=6),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_anchored_set_names_exactly_the_members_that_match(
    patterns: list[str], texts: list[str]
) -> None:
    """The set, its match-range bisect included, names the members whose own anchored
    regex matches: a text the ranges rule out is matched by none of them."""
    settable = [p for p in dict.fromkeys(patterns) if "\\Q" not in p and _checks(p)]
    members = anchored_set(settable)
    if members is None:
        return
    for text in texts:
        expected = [i for i, p in enumerate(settable) if compile_anchored(p).search(text)]
        assert sorted(members.matches(text)) == expected, (settable, text)


def _checks(pattern: str) -> bool:
    try:
        check(pattern)
    except GoRegexError:
        return False
    return True


def test_a_text_outside_every_range_never_reaches_re2() -> None:
    members = anchored_set([f"db-{k}-.*" for k in range(300)] + ["(db|cache)-7\\..*"])
    assert members is not None

    class Refuses:
        def Match(self, data: bytes) -> list[int]:
            raise AssertionError(f"RE2 asked about {data!r}")

    real, members._set = members._set, Refuses()
    assert members.matches("host-1-7.example.org:9100") == []
    assert members.matches("a") == []
    assert members.matches("zzz") == []
    members._set = real
    assert members.matches("db-17-x") == [17]
    assert members.matches("cache-7.x") == [300]
