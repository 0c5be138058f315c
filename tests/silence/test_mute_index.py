"""The live-silence index answers ``mutes`` exactly as a brute-force scan would."""

from __future__ import annotations

import itertools
from unittest import mock

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import daemon.silence.index as index_module
from daemon.alert import Alert, fingerprint
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
            if data.draw(st.booleans()):
                labels = data.draw(labelsets)
                assert store.mutes(labels, fingerprint(labels), now) == brute_force(
                    store, labels, now
                ), (labels, now)
            else:
                # A flush's batch (at the horizon: new alerts in one pass), repeats too.
                batch = data.draw(st.lists(labelsets, min_size=1, max_size=4))
                alerts = [Alert(lb, {}, T0, T0 + S, "", T0, False, fingerprint(lb)) for lb in batch]
                assert store.mutes_many(alerts, now) == [
                    brute_force(store, lb, now) for lb in batch
                ], (batch, now)


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
@given(
    st.lists(st.lists(matchers, min_size=1, max_size=3), max_size=25),
    st.booleans(),
    st.sampled_from([1, 2, 3, index_module.CHUNK]),
)
def test_hits_are_exactly_the_keys_that_match(
    groups: list[list[Matcher]], use_set: bool, chunk: int
) -> None:
    """``hits`` names exactly the silences with a key on the name matching the value,
    through RE2 sets and through the alternation fallback alike, and with a name's keys
    over several chunks (one range filter in front of them all)."""
    index = MuteIndex(use_set=use_set)
    with mock.patch.object(index_module, "CHUNK", chunk):
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


def test_a_value_outside_every_range_skips_the_chunks() -> None:
    """A value no regex key on its name can match (by their possible-match ranges) is
    answered by one range filter over all the name's chunks, without a chunk's call; a
    value inside some range still goes to every chunk and finds its key, and a key with
    no range (``.*``) opens the filter to every value."""
    index = MuteIndex()
    for k in range(600):
        m = Matcher.create(MatchType.REGEXP, "instance", f"db-{k}-.*")
        index.add(Silence(f"s{k}", (m,), T0, T0 + S))
    assert len(index._chunks["instance"]) == 3
    calls: list[str] = []
    real = index_module._Chunk.matched

    def counted(chunk: index_module._Chunk, value: str, out: list[str]) -> None:
        calls.append(value)
        real(chunk, value, out)

    with mock.patch.object(index_module._Chunk, "matched", counted):
        assert index.hits("instance", "host-1.example.org") == frozenset()
        assert calls == []
        assert index.hits("instance", "db-517-x") == {"s517"}
        assert calls == ["db-517-x"] * 3
        index.add(
            Silence("any", (Matcher.create(MatchType.REGEXP, "instance", "h.*"),), T0, T0 + S)
        )
        assert index.hits("instance", "host-1.example.org") == {"any"}
        assert index.hits("instance", "zzz") == frozenset()
        calls.clear()
        index.add(Silence("all", (Matcher.create(MatchType.REGEXP, "instance", ".+"),), T0, T0 + S))
        assert index.hits("instance", "zzz") == {"all"}
        assert calls == ["zzz"] * 3


#: Keys on two names only: silences crowd into few groups, whose names hit apart.
key_matchers = st.builds(
    lambda t, n, v, p: Matcher.create(t, n, p if t is MatchType.REGEXP else v),
    st.sampled_from([MatchType.EQUAL, MatchType.REGEXP]),
    st.sampled_from(NAMES[:2]),
    st.sampled_from(VALUES),
    st.sampled_from(PATTERNS),
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(st.lists(matchers, min_size=1, max_size=3), max_size=25),
        st.lists(st.lists(key_matchers, min_size=2, max_size=2), max_size=25),
    ),
    st.lists(
        st.one_of(
            labelsets,
            st.fixed_dictionaries({n: st.sampled_from(VALUES) for n in NAMES[:2]}),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
    st.integers(min_value=1, max_value=4),
)
def test_c_candidates_equal_the_python_definition(
    groups: list[list[Matcher]], queries: list[dict[str, str]], use_set: bool, cache_size: int
) -> None:
    """The C loop (``daemon._speedups.mute_candidates``) gives what ``candidates_python``
    gives, query after query on one index, including when a lookup clears a name's
    cache (and the entries taken from it) in the middle of a call."""
    if index_module._mute_candidates is None:
        pytest.skip("daemon/_speedups was not built")
    c_index = MuteIndex(use_set=use_set)
    py_index = MuteIndex(use_set=use_set)
    add_then_remove_every_third(c_index, groups)
    add_then_remove_every_third(py_index, groups)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_module, "HITS_PER_NAME", cache_size)
        for labels in queries:
            assert c_index.candidates(labels) == py_index.candidates_python(labels), labels
            assert c_index.candidates(labels) == py_index.candidates_python(labels), labels
        assert c_index.candidates_many(queries) == [
            py_index.candidates_python(labels) for labels in queries
        ]


def test_c_candidates_pass_on_a_lookup_error_and_check_their_arguments() -> None:
    speedups = pytest.importorskip("daemon._speedups")
    group = frozenset(["instance"])
    groups = {group: {"s1"}}

    def failing(name: str, value: str) -> object:
        raise KeyError(value)

    with pytest.raises(KeyError, match="host-1"):
        speedups.mute_candidates(set(), groups, {}, {"instance": "host-1"}, failing, {}, {})
    with pytest.raises(TypeError, match="an entry must be"):
        speedups.mute_candidates(
            set(), groups, {}, {"instance": "h"}, lambda n, v: ("x", {}), {}, {}
        )
    with pytest.raises(TypeError, match="expected"):
        speedups.mute_candidates([], groups, {}, {}, failing, {}, {})
    with pytest.raises(TypeError, match="expected"):
        speedups.mute_candidates(set(), groups, {}, {}, failing, [], {})
    with pytest.raises(TypeError, match="7 arguments"):
        speedups.mute_candidates(set(), groups, {})
    # An absent or empty label rules the group out before any lookup.
    assert speedups.mute_candidates({"k"}, groups, {}, {"instance": ""}, failing, {}, {}) == {"k"}
    assert speedups.mute_candidates({"k"}, groups, {}, {"job": "x"}, failing, {}, {}) == {"k"}
    # Malformed quick entries are refused, not read past their ends.
    for bad in ((b"a",), [[], []], ([b"a"], [])):
        with pytest.raises(TypeError):
            speedups.mute_candidates(
                set(), groups, {}, {"instance": "h"}, failing, {}, {"instance": bad}
            )
    with pytest.raises(TypeError, match="bytes"):
        speedups.mute_candidates(
            set(), groups, {}, {"instance": "h"}, failing, {}, {"instance": (["a"], ["b"])}
        )


def test_c_candidates_answer_a_surely_missed_value_without_a_lookup() -> None:
    """A value that no literal key names and that the name's range filter excludes (a
    new ``instance`` per alert against ``db-.*`` keys) is answered by the C loop alone;
    a value a literal key names, one inside a range, and one the C side cannot encode as
    the filter does (a lone surrogate) still go to ``_lookup``."""
    if index_module._mute_candidates is None:
        pytest.skip("daemon/_speedups was not built")
    index = MuteIndex()
    for k in range(20):
        index.add(
            Silence(
                f"r{k}", (Matcher.create(MatchType.REGEXP, "instance", f"db-{k}-.*"),), T0, T0 + S
            )
        )
    index.add(Silence("eq", (Matcher.create(MatchType.EQUAL, "instance", "host-eq"),), T0, T0 + S))
    index.add(Silence("job", (Matcher.create(MatchType.EQUAL, "job", "node"),), T0, T0 + S))
    looked_up: list[tuple[str, str]] = []
    real = MuteIndex._lookup

    def counting(self: MuteIndex, name: str, value: str) -> object:
        looked_up.append((name, value))
        return real(self, name, value)

    with mock.patch.object(MuteIndex, "_lookup", counting):
        # The first look-ups of each name build its filter (and what the C loop reads).
        assert index.candidates({"instance": "host-0", "job": "web"}) == set()
        assert looked_up == [("instance", "host-0"), ("job", "web")]
        looked_up.clear()
        for i in range(1, 50):
            labels = {"instance": f"host-{i}", "job": f"batch-{i}"}
            assert index.candidates(labels) == set()
        assert looked_up == []
        assert index.candidates({"instance": "host-eq"}) == {"eq"}
        assert index.candidates({"instance": "db-3-x"}) == {"r3"}
        assert index.candidates({"instance": "db-\udc80"}) == set()
        assert [v for _, v in looked_up] == ["host-eq", "db-3-x", "db-\udc80"]
        # A change of a key on the name drops what the C loop reads with the cache.
        looked_up.clear()
        index.add(
            Silence("h", (Matcher.create(MatchType.REGEXP, "instance", "host-.*"),), T0, T0 + S)
        )
        assert index.candidates({"instance": "host-1"}) == {"h"}
        assert looked_up == [("instance", "host-1")]


def test_a_name_without_hits_rules_its_group_out_before_any_intersection() -> None:
    """``alertname=~"Bench.*"`` hits every silence of the issue-15 kind; when the group's
    other name (``instance``) hits nothing, no per-group set is built for the wide one."""
    for candidates in ("candidates", "candidates_python"):
        index = MuteIndex()
        for k in range(50):
            ms = (
                Matcher.create(MatchType.REGEXP, "alertname", "Bench.*"),
                Matcher.create(MatchType.REGEXP, "instance", f"db-{k}-.*"),
            )
            index.add(Silence(f"s{k}", ms, T0, T0 + S))
        labels = {"alertname": "Bench7", "instance": "host-7"}
        assert getattr(index, candidates)(labels) == set()
        assert len(index.hits("alertname", "Bench7")) == 50
        assert index._hits["alertname"]["Bench7"][1] == {}, candidates
        labels = {"alertname": "Bench7", "instance": "db-7-x"}
        assert getattr(index, candidates)(labels) == {"s7"}


def test_a_group_needs_one_silence_hit_on_every_name() -> None:
    """Two silences of one group each hit on one name only: neither is a candidate."""
    for candidates in ("candidates", "candidates_python"):
        index = MuteIndex()
        for sid, name_value, instance in (("s1", "a.*", "x.*"), ("s2", "b.*", "y.*")):
            ms = (
                Matcher.create(MatchType.REGEXP, "alertname", name_value),
                Matcher.create(MatchType.REGEXP, "instance", instance),
            )
            index.add(Silence(sid, ms, T0, T0 + S))
        check = getattr(index, candidates)
        assert check({"alertname": "a1", "instance": "y1"}) == set(), candidates
        assert check({"alertname": "a1", "instance": "x1"}) == {"s1"}, candidates
        assert check({"alertname": "b1", "instance": "y1"}) == {"s2"}, candidates
