"""The regex-literal index of the silence store narrows candidates without losing any."""

from __future__ import annotations

import itertools

from daemon.matcher import Matcher, MatchType
from daemon.silence.model import Silence
from daemon.silence.state import SilenceError, Silences, _regex_literals

NOW = 1_700_000_000 * 1_000_000_000
HOUR = 3600 * 1_000_000_000

PATTERNS = [
    "Bench(1|23)",
    "Bench1",
    "warning|critical",
    "(?i:b)ench1",
    "a[bc]d",
    "x|",
    "Bench.*",
    "Bench1?",
    "(Bench)(1|2)",
    "foo\\.bar",
]
VALUES = ["", "Bench1", "Bench2", "Bench23", "bench1", "BENCH1", "abd", "acd", "x", "foo.bar"]


def test_literals_of_small_alternations():
    """Finite alternations expand to their strings; wildcards, flags and empty values do not."""
    assert _regex_literals("Bench(1|23)") == {"Bench1", "Bench23"}
    assert _regex_literals("a[bc]d") == {"abd", "acd"}
    assert _regex_literals("host-.*") is None
    assert _regex_literals("(?i)abc") is None
    assert _regex_literals("(?i:a)bc") is None
    assert _regex_literals("x|") is None
    assert _regex_literals("[0-9]") == set("0123456789")
    assert _regex_literals("[0-9a-z]") is None  # 36 strings: too many keys


def test_mutes_agrees_with_a_linear_scan():
    """Every silence/label combination mutes exactly as matching each silence directly."""
    store = Silences()
    silences = []
    for k, (a, b) in enumerate(itertools.product(PATTERNS, ["", "warning|critical", "Bench.*"])):
        matchers = [Matcher.create(MatchType.REGEXP, "alertname", a)]
        if b:
            matchers.append(Matcher.create(MatchType.REGEXP, "severity", b))
        s = Silence(
            id="",
            matchers=tuple(matchers),
            starts_at=NOW - HOUR,
            ends_at=NOW + HOUR,
            comment=str(k),
        )
        try:
            sid = store.set(s, NOW)
        except SilenceError:
            continue  # every matcher matches "": Alertmanager refuses it too
        silences.append(store.get(sid))
    fp = 0
    for name, severity in itertools.product(VALUES, ["", "warning", "critical", "Bench9"]):
        labels = {"alertname": name, "severity": severity} if name else {"severity": severity}
        fp += 1
        want = sorted(s.id for s in silences if s is not None and s.matches(labels))
        assert store.mutes(labels, fp, NOW) == want, labels


def test_expiring_an_indexed_silence_unmutes():
    """A silence indexed under several literal values leaves every bucket when it ends."""
    store = Silences()
    m = Matcher.create(MatchType.REGEXP, "alertname", "Bench(1|23)")
    sid = store.set(Silence(id="", matchers=(m,), starts_at=NOW - HOUR, ends_at=NOW + HOUR), NOW)
    assert store.mutes({"alertname": "Bench23"}, 1, NOW) == [sid]
    store.expire(sid, NOW)
    assert store.mutes({"alertname": "Bench23"}, 2, NOW + 1) == []
    assert store.mutes({"alertname": "Bench1"}, 3, NOW + 1) == []
