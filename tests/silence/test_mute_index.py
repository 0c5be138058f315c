"""The live-silence index answers ``mutes`` exactly as a brute-force scan would."""

from __future__ import annotations

import itertools

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.alert import fingerprint
from daemon.clock import NS_PER_SECOND
from daemon.matcher import Matcher, MatchType
from daemon.silence.index import MuteIndex
from daemon.silence.model import Silence
from daemon.silence.state import Silences

S = NS_PER_SECOND
T0 = 1_767_225_600 * S
NAMES = ["alertname", "instance", "job", "team"]
VALUES = ["", "x", "xy", "y", "web", "db-1", "db-12", "Bench1", "a)", "(b", "x\n", "é1", "db-1)$"]
PATTERNS = [
    "x.*",
    "x|y",
    "",
    ".*",
    "db-.*",
    "(db|web)",
    "x?",
    "[xy]",
    ".+",
    "db-1\\d?",
    "(?i)WEB",
    ".*1",
    "a)|(b",
    "\\Qdb-\\E1",
    "Bench.*",
    "\\Qa)\\E|x",
    "(?m)x$",
    "^x|y$",
    "(?s).1",
    "\\pL1",
    "x\\z",
]

matchers = st.builds(
    lambda t, n, v, p: Matcher.create(
        t, n, p if t in (MatchType.REGEXP, MatchType.NOT_REGEXP) else v
    ),
    st.sampled_from(list(MatchType)),
    st.sampled_from(NAMES),
    st.sampled_from(VALUES),
    st.sampled_from(PATTERNS),
)
labelsets = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), max_size=4)
# Seconds relative to T0: starts and ends around the queried times, some long over.
offsets = st.integers(min_value=-400, max_value=400)


def brute_force(store: Silences, labels: dict[str, str], now: int) -> list[str]:
    """The spec: every stored silence active at ``now`` whose matchers all match."""
    return sorted(s.id for s in store if s.starts_at <= now <= s.ends_at and s.matches(labels))


@st.composite
def silences(draw: st.DrawFn, sid: str) -> Silence:
    start = draw(offsets)
    length = draw(st.integers(min_value=0, max_value=300))
    return Silence(
        sid,
        tuple(draw(st.lists(matchers, min_size=1, max_size=3))),
        T0 + start * S,
        T0 + (start + length) * S,
        updated_at=T0,
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutes_equals_brute_force_under_writes_and_time(data: st.DataObject) -> None:
    """Random silences (merged, so even ones validation refuses), rewrites, expiries and
    GC, queried at times moving forward and now and then back: the same IDs as a scan."""
    store = Silences(retention=100 * S)
    ids = [f"s{k}" for k in range(12)]
    stamp = itertools.count(1)
    now = T0 + data.draw(offsets) * S
    for _ in range(data.draw(st.integers(min_value=1, max_value=40))):
        action = data.draw(st.sampled_from(["put", "put", "expire", "gc", "query", "query"]))
        if action == "put":
            s = data.draw(silences(data.draw(st.sampled_from(ids))))
            prev = store.get(s.id)
            updated = (prev.updated_at if prev is not None else T0) + next(stamp)
            store.merge(attrs.evolve(s, updated_at=updated), s.ends_at + 10**15, now)
        elif action == "expire":
            sid = data.draw(st.sampled_from(ids))
            if store.get(sid) is not None:
                store.expire(sid, now)
        elif action == "gc":
            store.gc(now)
        else:
            # Mostly forward; sometimes a little back (a flush behind an ingest), rarely far.
            step = data.draw(
                st.one_of(
                    st.integers(min_value=0, max_value=120 * S),
                    st.integers(min_value=-5 * S, max_value=0),
                    st.integers(min_value=-1000 * S, max_value=0),
                )
            )
            now += step
            labels = data.draw(labelsets)
            assert store.mutes(labels, fingerprint(labels), now) == brute_force(
                store, labels, now
            ), (labels, now)


def add_then_remove_every_third(index: MuteIndex, groups: list[list[Matcher]]) -> list[Silence]:
    """Index a silence per matcher list, then remove every third; the ones kept."""
    all_silences = [Silence(f"s{k}", tuple(ms), T0, T0 + S) for k, ms in enumerate(groups)]
    for s in all_silences:
        index.add(s)
    for s in all_silences[::3]:
        index.remove(s.id)
    return [s for k, s in enumerate(all_silences) if k % 3]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(matchers, min_size=1, max_size=3), max_size=25), labelsets, st.booleans())
def test_index_candidates_hold_every_match(
    groups: list[list[Matcher]], labels: dict[str, str], use_set: bool
) -> None:
    """The index never leaves out a silence whose matchers match the labels (with RE2
    sets and with the alternation fallback)."""
    index = MuteIndex(use_set=use_set)
    kept = add_then_remove_every_third(index, groups)
    found = index.candidates(labels)
    assert {s.id for s in kept if s.matches(labels)} <= found
    assert found <= {s.id for s in kept}


def test_expired_silences_are_never_matched() -> None:
    """Silences over before the query are not even matched against the labels."""
    store = Silences()
    calls = 0

    class Counting(Matcher):
        def matches(self, value: str) -> bool:
            nonlocal calls
            calls += 1
            return super().matches(value)

    def counting(pattern: str) -> Matcher:
        m = Matcher.create(MatchType.REGEXP, "instance", pattern)
        return Counting(m.type, m.name, m.value, _regex=m._regex, _literals=m._literals)

    for k in range(50):
        store.set(Silence("", (counting(f".*-{k}"),), T0, T0 + 10 * S), T0)
    pending = store.set(Silence("", (counting(".+"),), T0 + 100 * S, T0 + 200 * S), T0)
    for k in range(20):
        store.expire(store.set(Silence("", (counting(f"h.*{k}"),), T0, T0 + 10 * S), T0), T0)
    calls = 0
    labels = {"instance": "host-1"}
    assert store.mutes(labels, fingerprint(labels), T0 + 50 * S) == []
    assert calls == 0
    assert store.mutes(labels, fingerprint(labels), T0 + 150 * S) == [pending]


def test_a_matching_regex_among_many_is_found_and_cached_per_value() -> None:
    """With hundreds of regex keys on one name, the one that matches is found; a repeat
    value is answered from the per-value cache."""
    index = MuteIndex()
    for k in range(600):
        m = Matcher.create(MatchType.REGEXP, "instance", f"(db|cache)-{k}\\..*")
        index.add(Silence(f"s{k}", (m,), T0, T0 + S))
    assert index.candidates({"instance": "cache-417.example.org"}) == {"s417"}
    assert index.candidates({"instance": "host-417.example.org"}) == set()
    assert index.hits("instance", "db-5.x") is index.hits("instance", "db-5.x")
    index.remove("s417")
    assert index.candidates({"instance": "cache-417.example.org"}) == set()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(matchers, min_size=1, max_size=3), max_size=25), st.booleans())
def test_hits_are_exactly_the_keys_that_match(groups: list[list[Matcher]], use_set: bool) -> None:
    """``hits`` names exactly the silences with a key on the name matching the value,
    through RE2 sets and through the alternation fallback alike."""
    index = MuteIndex(use_set=use_set)
    kept = add_then_remove_every_third(index, groups)
    for name, value in itertools.product(NAMES, VALUES):
        # A key: a positive matcher that cannot match "" (see the index's docstring).
        expected = {
            s.id
            for s in kept
            for m in s.matchers
            if m.name == name
            and m.type in (MatchType.EQUAL, MatchType.REGEXP)
            and not m.matches("")
            and m.matches(value)
        }
        assert index.hits(name, value) == expected, (name, value)


def test_many_regex_keys_on_one_name_cost_one_set_match_per_value() -> None:
    """Hundreds of regex keys on one name are tried against a new value in one RE2 set
    pass per chunk, not one call per key, and still find the key that matches."""
    index = MuteIndex()
    for k in range(200):
        m = Matcher.create(MatchType.REGEXP, "instance", f"(db|cache)-{k}\\..*")
        index.add(Silence(f"s{k}", (m,), T0, T0 + S))
    chunk = index._chunks["instance"][0]
    assert index.hits("instance", "cache-117.x") == {"s117"}
    assert chunk.set is not None
    assert chunk.loose == []
    assert chunk.parts == []
