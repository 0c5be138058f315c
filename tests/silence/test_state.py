"""The pure silence store: validation, states, the update rule, expiry, queries, muting, GC."""

from __future__ import annotations

import itertools

import pytest

from daemon.alert import fingerprint
from daemon.clock import NS_PER_SECOND, ZERO_TIME
from daemon.matcher import Matcher, MatchType, parse_matcher
from daemon.silence.model import Silence, SilenceState
from daemon.silence.state import (
    SilenceError,
    SilenceNotFound,
    Silences,
    can_update,
    validate_silence,
)

S = NS_PER_SECOND
T0 = 1_767_225_600 * S


def m(text: str) -> Matcher:
    return parse_matcher(text)


def sil(*matchers: str, start: int = T0, end: int = T0 + 3600 * S, sid: str = "") -> Silence:
    return Silence(sid, tuple(m(x) for x in matchers), start, end, created_by="me", comment="c")


def store(retention: int = 10 * S) -> Silences:
    counter = itertools.count()
    return Silences(retention=retention, new_id=lambda: f"id-{next(counter):03d}")


def mutes(st: Silences, labels: dict[str, str], now: int) -> list[str]:
    return st.mutes(labels, fingerprint(labels), now)


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        ((), "at least one matcher required"),
        (
            (Matcher.create(MatchType.EQUAL, "a-b", "x"),),
            'invalid label matcher 0: invalid label name "a-b"',
        ),
        (
            (Matcher.create(MatchType.EQUAL, "", "x"),),
            'invalid label matcher 0: invalid label name ""',
        ),
        (
            (m('a="x"'), Matcher(MatchType.REGEXP, "b", "(")),
            'invalid label matcher 1: invalid regular expression "(": '
            "error parsing regexp: missing closing ): `(`",
        ),
        ((m('a=""'),), "at least one matcher must not match the empty string"),
        ((m('a=~".*"'), m('b=~"x|"')), "at least one matcher must not match the empty string"),
    ],
)
def test_validation_messages(matchers: tuple[Matcher, ...], message: str) -> None:
    """Each invalid silence is rejected with Alertmanager 0.25's prefixed message."""
    st = store()
    with pytest.raises(SilenceError) as info:
        st.set(Silence("", matchers, T0, T0 + S), T0)
    assert str(info.value) == "silence invalid: " + message
    assert len(st) == 0


def test_negative_matchers_count_as_not_matching_empty() -> None:
    """``!=`` and ``!~`` matchers satisfy the not-empty rule even if they match ``""``."""
    assert validate_silence(sil('a!=""', sid="x")) is None
    assert validate_silence(sil('a!~"y"', sid="x")) is None


def test_zero_times_and_order_are_checked() -> None:
    """Zero start/end and an end before the start are invalid."""
    base = sil('a="b"', sid="x")
    base = Silence(base.id, base.matchers, T0, T0 + S, updated_at=T0)
    assert validate_silence(Silence("x", base.matchers, ZERO_TIME, T0, updated_at=T0)) == (
        "invalid zero start timestamp"
    )
    assert validate_silence(Silence("x", base.matchers, T0, ZERO_TIME, updated_at=T0)) == (
        "invalid zero end timestamp"
    )
    assert validate_silence(Silence("x", base.matchers, T0, T0 - 1, updated_at=T0)) == (
        "end time must not be before start time"
    )
    assert validate_silence(base) is None


# --- states ----------------------------------------------------------------------------


def test_internal_and_display_states_differ_at_ends_at() -> None:
    """At exactly endsAt a silence is still active internally but shown as expired."""
    s = sil('a="b"', start=T0, end=T0 + 10 * S)
    assert s.state(T0 - 1) is SilenceState.PENDING
    assert s.state(T0) is SilenceState.ACTIVE
    assert s.state(T0 + 10 * S) is SilenceState.ACTIVE
    assert s.display_state(T0 + 10 * S) is SilenceState.EXPIRED
    assert s.state(T0 + 10 * S + 1) is SilenceState.EXPIRED
    assert s.display_state(T0 - 1) is SilenceState.PENDING


# --- create / update / expire -----------------------------------------------------------


def test_new_silence_gets_id_clamped_start_and_updated_at() -> None:
    """Without an ID a silence gets a new ID, startsAt clamped to now and updatedAt now."""
    st = store()
    sid = st.set(sil('a="b"', start=T0 - 100 * S), T0)
    got = st.get(sid)
    assert got is not None
    assert (sid, got.starts_at, got.updated_at) == ("id-000", T0, T0)
    assert st.expires_at(sid) == got.ends_at + 10 * S


def test_default_ids_are_uuid4() -> None:
    """The default ID generator makes lower-case canonical UUIDv4 strings."""
    import re

    sid = Silences().set(sil('a="b"'), T0)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", sid)


def test_unknown_id_is_not_found() -> None:
    """Posting an ID the store does not know raises SilenceNotFound."""
    with pytest.raises(SilenceNotFound, match="silence not found"):
        store().set(sil('a="b"', sid="nope"), T0)


def test_active_update_same_second_keeps_id() -> None:
    """An active silence with same matchers, same start second, future end updates in place."""
    st = store()
    sid = st.set(sil('a="b"'), T0)
    now = T0 + 5 * S
    new = sil('a="b"', start=T0 + 999_000_000, end=T0 + 7200 * S, sid=sid)
    assert st.set(new, now) == sid
    got = st.get(sid)
    assert got is not None
    assert (got.starts_at, got.ends_at, got.updated_at) == (T0 + 999_000_000, T0 + 7200 * S, now)
    assert len(st) == 1


def test_active_update_changed_start_second_replaces() -> None:
    """Changing an active silence's start second makes a new ID and expires the old one."""
    st = store()
    sid = st.set(sil('a="b"'), T0)
    now = T0 + 5 * S
    new_id = st.set(sil('a="b"', start=T0 + S, sid=sid), now)
    assert new_id != sid
    old = st.get(sid)
    new = st.get(new_id)
    assert old is not None and new is not None
    assert old.ends_at == now and old.state(now + 1) is SilenceState.EXPIRED
    assert new.starts_at == now  # clamped


def test_changed_matchers_replace() -> None:
    """Different matchers (even only their order) always make a new ID."""
    st = store()
    sid = st.set(sil('a="b"', 'c="d"'), T0)
    assert st.set(sil('c="d"', 'a="b"', sid=sid), T0 + S) != sid


def test_pending_update_rules() -> None:
    """A pending silence keeps its ID unless the new start is in the past."""
    st = store()
    sid = st.set(sil('a="b"', start=T0 + 100 * S, end=T0 + 200 * S), T0)
    assert st.set(sil('a="b"', start=T0 + 50 * S, end=T0 + 300 * S, sid=sid), T0 + S) == sid
    replaced = st.set(sil('a="b"', start=T0, end=T0 + 300 * S, sid=sid), T0 + 2 * S)
    assert replaced != sid
    old = st.get(sid)
    assert old is not None
    assert (old.starts_at, old.ends_at) == (T0 + 2 * S, T0 + 2 * S)


def test_expired_silence_is_never_updated() -> None:
    """Posting over an expired silence makes a new ID and leaves the old one as it was."""
    st = store(retention=3600 * S)
    sid = st.set(sil('a="b"', end=T0 + 10 * S), T0)
    before = st.get(sid)
    now = T0 + 20 * S
    new_id = st.set(sil('a="b"', end=T0 + 100 * S, sid=sid), now)
    assert new_id != sid
    assert st.get(sid) == before


def test_active_update_with_end_in_past_replaces() -> None:
    """can_update refuses an active silence whose new end is before now."""
    old = Silence("x", (m('a="b"'),), T0, T0 + 100 * S, updated_at=T0)
    new = Silence("x", (m('a="b"'),), T0, T0 + 10 * S)
    assert not can_update(old, new, T0 + 20 * S)
    assert can_update(old, new, T0 + 10 * S)


def test_invalid_replacement_changes_nothing() -> None:
    """Unlike upstream (which expires the old silence first), a rejected update keeps it."""
    st = store()
    sid = st.set(sil('a="b"'), T0)
    version = st.version
    with pytest.raises(SilenceError):
        st.set(sil('a=""', sid=sid), T0 + S)
    old = st.get(sid)
    assert old is not None and old.ends_at == T0 + 3600 * S and st.version == version
    assert len(st) == 1


def test_expire_semantics() -> None:
    """Expire: active ends now, pending starts and ends now, expired is untouched."""
    st = store(retention=3600 * S)
    active = st.set(sil('a="1"'), T0)
    pending = st.set(sil('a="2"', start=T0 + 100 * S, end=T0 + 200 * S), T0)
    now = T0 + 10 * S
    st.expire(active, now)
    st.expire(pending, now)
    a, p = st.get(active), st.get(pending)
    assert a is not None and p is not None
    assert (a.starts_at, a.ends_at, a.updated_at) == (T0, now, now)
    assert (p.starts_at, p.ends_at, p.updated_at) == (now, now, now)
    version = st.version
    st.expire(active, now + S)
    assert st.get(active) == a and st.version == version
    with pytest.raises(SilenceNotFound):
        st.expire("nope", now)


# --- queries ------------------------------------------------------------------------------


def test_query_sorts_by_state_then_time() -> None:
    """Active by endsAt ascending, pending by startsAt, expired by endsAt descending."""
    st = store(retention=3600 * S)
    ids = {
        "a2": st.set(sil('x="1"', end=T0 + 500 * S), T0),
        "a1": st.set(sil('x="2"', end=T0 + 400 * S), T0),
        "p2": st.set(sil('x="3"', start=T0 + 300 * S, end=T0 + 900 * S), T0),
        "p1": st.set(sil('x="4"', start=T0 + 200 * S, end=T0 + 900 * S), T0),
        "e1": st.set(sil('x="5"', end=T0 + 10 * S), T0),
        "e2": st.set(sil('x="6"', end=T0 + 20 * S), T0),
    }
    order = [s.id for s in st.query([], T0 + 30 * S)]
    names = {v: k for k, v in ids.items()}
    assert [names[i] for i in order] == ["a1", "a2", "p1", "p2", "e2", "e1"]


def test_query_filters_are_syntactic() -> None:
    """A filter selects silences holding an identical matcher, not ones it would match."""
    st = store()
    regex = st.set(sil('alertname=~"A.*"', 'team="x"'), T0)
    negated = st.set(sil('alertname!~"A.*"'), T0)
    assert [s.id for s in st.query([m('alertname=~"A.*"')], T0)] == [regex]
    assert [s.id for s in st.query([m('alertname!~"A.*"')], T0)] == [negated]
    assert st.query([m('alertname="Abc"')], T0) == []
    assert [s.id for s in st.query([m('alertname=~"A.*"'), m('team="x"')], T0)] == [regex]
    assert st.query([m('alertname=~"A.*"'), m('team="y"')], T0) == []


# --- muting ---------------------------------------------------------------------------------


def test_matching_is_anchored_and_missing_reads_empty() -> None:
    """Regexes are fully anchored; a missing label reads as "" for every operator."""
    st = store()
    sid = st.set(sil('job=~"api"', 'env!="prod"'), T0)
    assert mutes(st, {"job": "api"}, T0) == [sid]
    assert mutes(st, {"job": "api2"}, T0) == []
    assert mutes(st, {"job": "xapi"}, T0) == []
    assert mutes(st, {"job": "api", "env": "prod"}, T0) == []
    neg = st.set(sil('team!~"ops"'), T0)
    assert mutes(st, {"other": "x"}, T0) == [neg]


def test_only_active_silences_mute_and_ids_are_sorted() -> None:
    """Pending silences do not mute; several active ones are reported in ID order."""
    st = store()
    b = st.set(sil('a="x"'), T0)
    c = st.set(sil('a=~"x|y"'), T0)
    st.set(sil('a="x"', start=T0 + 100 * S), T0)
    assert mutes(st, {"a": "x"}, T0) == sorted([b, c])
    # The pending one mutes once it starts.
    assert mutes(st, {"a": "x"}, T0 + 100 * S) == sorted([b, c, "id-002"])


def test_new_silence_mutes_at_once() -> None:
    """A silence added after a cached negative answer mutes on the very next query."""
    st = store()
    labels = {"alertname": "Disk", "host": "h1"}
    assert mutes(st, labels, T0) == []
    assert mutes(st, labels, T0) == []
    sid = st.set(sil('host=~"h.*"'), T0)
    assert mutes(st, labels, T0) == [sid]


def test_a_written_silence_joins_the_index_at_its_write() -> None:
    """A silence that starts at its write is live in the index before any query (so the
    first flush after a burst of writes does not index them all); a query behind the
    write does not see it active, one at the write does, and a write stamped behind the
    horizon leaves the horizon where it is."""
    st = store()
    labels = {"alertname": "Disk", "host": "h1"}
    assert mutes(st, labels, T0 + 10 * S) == []
    sid = st.set(sil('host=~"h.*"'), T0 + 20 * S)
    assert sid in st._live
    assert st._horizon == T0 + 20 * S
    assert mutes(st, labels, T0 + 15 * S) == []
    assert mutes(st, labels, T0 + 20 * S) == [sid]
    late = st.set(sil('host="h1"'), T0 + 5 * S)
    assert st._horizon == T0 + 20 * S
    assert late in st._live
    assert mutes(st, labels, T0 + 21 * S) == sorted([sid, late])


def test_no_live_silence_answers_none_and_later_changes_still_mute() -> None:
    """With only expired and pending silences nothing mutes (the no-live-silence fast
    path); the pending one mutes once it starts, a new one at once, and an alert whose
    marks were cached while a silence was live is unmuted after that silence expires."""
    st = store(retention=3600 * S)
    labels = {"a": "x"}
    held = st.set(sil('a="x"'), T0)
    assert mutes(st, labels, T0) == [held]
    st.expire(held, T0 + 1 * S)
    pending = st.set(sil('a="x"', start=T0 + 50 * S), T0 + 2 * S)
    for now in (T0 + 2 * S, T0 + 3 * S, T0 + 49 * S):
        assert mutes(st, labels, now) == []
        assert mutes(st, {"a": "other"}, now) == []
    # The pending silence starts: found though no marks were cached meanwhile.
    assert mutes(st, labels, T0 + 50 * S) == [pending]
    assert mutes(st, {"a": "other"}, T0 + 50 * S) == []
    fresh = st.set(sil('a="other"'), T0 + 51 * S)
    assert mutes(st, {"a": "other"}, T0 + 51 * S) == [fresh]


def test_query_behind_the_horizon_sees_a_silence_that_ended_since() -> None:
    """With nothing live, a query behind the horizon still finds a silence that was
    active at its time and ended after it; one at a time after that end finds none."""
    st = store(retention=3600 * S)
    labels = {"a": "x"}
    sid = st.set(sil('a="x"'), T0)
    st.expire(sid, T0 + 5 * S)
    assert mutes(st, labels, T0 + 10 * S) == []  # moves the horizon past the end
    assert mutes(st, {"a": "y"}, T0 + 3 * S) == []
    assert mutes(st, labels, T0 + 3 * S) == [sid]
    assert mutes(st, labels, T0 + 7 * S) == []


def test_silence_stops_muting_at_ends_at_without_writes() -> None:
    """A cached active silence stops muting just after endsAt, and a pending one starts."""
    st = store(retention=3600 * S)
    labels = {"a": "x"}
    ending = st.set(sil('a="x"', end=T0 + 10 * S), T0)
    starting = st.set(sil('a=~"x"', start=T0 + 20 * S, end=T0 + 30 * S), T0)
    version = st.version
    assert mutes(st, labels, T0) == [ending]
    assert mutes(st, labels, T0 + 10 * S) == [ending]
    assert mutes(st, labels, T0 + 10 * S + 1) == []
    assert mutes(st, labels, T0 + 20 * S) == [starting]
    assert mutes(st, labels, T0 + 31 * S) == []
    assert st.version == version


def test_expire_and_update_invalidate_the_cache() -> None:
    """Expiring or changing a silence changes the next answer for cached fingerprints."""
    st = store(retention=3600 * S)
    labels = {"a": "x"}
    sid = st.set(sil('a="x"'), T0)
    assert mutes(st, labels, T0 + S) == [sid]
    st.expire(sid, T0 + 2 * S)
    assert mutes(st, labels, T0 + 3 * S) == []
    other = st.set(sil('a!="x"'), T0 + 3 * S)
    assert mutes(st, labels, T0 + 3 * S) == []
    assert mutes(st, {"a": "y"}, T0 + 3 * S) == [other]


def test_clock_going_back_rechecks() -> None:
    """A query earlier than the cached computation is recomputed, not served from cache."""
    st = store()
    sid = st.set(sil('a="x"', start=T0 + 10 * S), T0)
    assert mutes(st, {"a": "x"}, T0 + 20 * S) == [sid]
    assert mutes(st, {"a": "x"}, T0 + 5 * S) == []


def test_many_writes_fall_back_to_full_scan() -> None:
    """After more writes than the change log patches, answers are still exact."""
    st = store()
    labels = {"a": "x", "n": "7"}
    assert mutes(st, labels, T0) == []
    ids = [st.set(sil(f'n="{i}"'), T0) for i in range(200)]
    assert mutes(st, labels, T0) == [ids[7]]


def test_cache_agrees_with_brute_force() -> None:
    """Across writes and time steps, cached answers equal a direct evaluation."""
    st = store(retention=50 * S)
    label_sets = [{"a": str(i % 5), "b": str(i % 3)} for i in range(15)]
    for step in range(60):
        now = T0 + step * S
        if step % 4 == 0:
            st.set(sil(f'a="{step % 5}"', start=now + (step % 3) * S, end=now + 7 * S), now)
        if step % 7 == 0:
            st.set(sil(f'b=~"{step % 3}|9"', end=now + 3 * S), now)
        if step % 11 == 0 and len(st):
            st.expire(sorted(s.id for s in st)[0], now)
        if step % 13 == 0:
            st.gc(now)
        for labels in label_sets:
            want = sorted(
                s.id for s in st if s.state(now) is SilenceState.ACTIVE and s.matches(labels)
            )
            assert mutes(st, labels, now) == want, (step, labels)


# --- GC and merge ------------------------------------------------------------------------------


def test_gc_deletes_at_ends_at_plus_retention() -> None:
    """GC removes a silence once endsAt + retention is reached, not before."""
    st = store(retention=100 * S)
    sid = st.set(sil('a="x"', end=T0 + 10 * S), T0)
    assert st.gc(T0 + 110 * S - 1) == 0
    assert st.get(sid) is not None
    assert st.gc(T0 + 110 * S) == 1
    assert st.get(sid) is None


def test_merge_rules() -> None:
    """Merge takes absent or strictly newer records and ignores expired ones."""
    st = store()
    s1 = Silence("x", (m('a="b"'),), T0, T0 + 10 * S, updated_at=T0, comment="one")
    assert st.merge(s1, T0 + 100 * S, T0)
    same = Silence("x", (m('a="b"'),), T0, T0 + 10 * S, updated_at=T0, comment="two")
    assert not st.merge(same, T0 + 100 * S, T0)
    newer = Silence("x", (m('a="b"'),), T0, T0 + 10 * S, updated_at=T0 + 1, comment="three")
    assert st.merge(newer, T0 + 100 * S, T0)
    got = st.get("x")
    assert got is not None and got.comment == "three"
    gone = Silence("y", (m('a="b"'),), T0, T0 + 10 * S, updated_at=T0)
    assert not st.merge(gone, T0 - 1, T0)
    assert st.get("y") is None


def test_local_writes_reach_subscribers() -> None:
    """Every local write hands one delimited MeshSilence to each subscriber."""
    sent: list[bytes] = []
    st = store()
    st.subscribe(sent.append)
    sid = st.set(sil('a="b"'), T0)
    st.expire(sid, T0 + S)
    assert len(sent) == 2
    other = store()
    assert other.merge_bytes(sent[0] + sent[1], T0 + S)
    assert other.get(sid) == st.get(sid)


def test_merged_records_reach_subscribers_until_unsubscribed() -> None:
    """A merge that changes the store hands the record on; a stale one does not."""
    st = store()
    sid = st.set(sil('a="b"'), T0)
    record = st.marshal()
    other = store()
    seen: list[bytes] = []
    unsubscribe = other.subscribe(seen.append)
    assert other.merge_bytes(record, T0 + S) == 1
    assert other.merge_bytes(record, T0 + S) == 0  # not newer: nothing stored
    assert seen == [record]
    unsubscribe()
    other.expire(sid, T0 + 2 * S)
    assert seen == [record]


def _queries(st: Silences) -> tuple[float, float]:
    """The store's query count and its duration histogram's count."""
    series = st._series
    count = [s.value for s in series.query_duration._child_samples() if s.name == "_count"]
    return series.queries._value.get(), count[0]


def test_mutes_many_answers_each_alert_as_mutes_does_and_counts_each_query() -> None:
    from daemon.alert import Alert

    a, b = store(), store()
    for st in (a, b):
        st.set(sil('job=~"db|web"', "severity=page"), T0)
        st.set(sil('instance=~"h-[12]"'), T0)
    labelsets = [
        {"job": "db", "severity": "page", "instance": "h-3"},
        {"job": "web", "severity": "low", "instance": "h-1"},
        {"job": "x", "instance": "h-9"},
        {"job": "db", "severity": "page", "instance": "h-2"},
    ]
    alerts = [Alert(lb, {}, T0, T0 + 60 * S, "", T0, False, fingerprint(lb)) for lb in labelsets]
    # Both stores count on the global pipeline's series: read it around each.
    before = _queries(a)
    many = a.mutes_many(alerts, T0 + S)
    assert tuple(x - y for x, y in zip(_queries(a), before, strict=True)) == (4, 4)
    before = _queries(b)
    assert many == [mutes(b, lb, T0 + S) for lb in labelsets]
    assert tuple(x - y for x, y in zip(_queries(b), before, strict=True)) == (4, 4)
    assert [len(ids) for ids in many] == [1, 1, 0, 2]
    # Answers from the per-fingerprint cache are not queries, in a batch as alone.
    before = _queries(a)
    assert a.mutes_many(alerts, T0 + S) == many
    assert _queries(a) == before


def test_a_batch_at_the_horizon_answers_new_cached_and_repeated_alerts_as_one_by_one() -> None:
    """The batch path (silences live, the query at the horizon): new alerts in one pass,
    cached and repeated ones through the per-alert path; same answers, same marks for
    the next query, same query count (a repeat in the batch is a cache hit)."""
    from daemon.alert import Alert

    a, b = store(), store()
    for st in (a, b):
        st.set(sil('job=~"db|web"', "severity=page"), T0)
        st.set(sil('instance=~"h-[12]"'), T0)
        st.set(sil("job=cron", start=T0 + 5 * S), T0)  # pending: starts later
    labelsets = [
        {"job": "db", "severity": "page", "instance": "h-3"},
        {"job": "web", "severity": "low", "instance": "h-1"},
        {"job": "x", "instance": "h-9"},
        {"job": "db", "severity": "page", "instance": "h-2"},
        {"job": "cron"},
    ]
    alerts = [Alert(lb, {}, T0, T0 + 60 * S, "", T0, False, fingerprint(lb)) for lb in labelsets]
    now = T0 + S
    # One alert known already; the batch then repeats the first one.
    assert a.mutes_many(alerts[2:3], now) == [mutes(b, labelsets[2], now)]
    batch = [*alerts, alerts[0]]
    before = _queries(a)
    many = a.mutes_many(batch, now)
    assert tuple(x - y for x, y in zip(_queries(a), before, strict=True)) == (4, 4)
    assert many == [mutes(b, alert.labels, now) for alert in batch]
    assert [len(ids) for ids in many] == [1, 1, 0, 2, 0, 1]
    assert many[0] is not many[-1]  # each answer is its own list
    # The marks the batch left answer later queries as the one-by-one ones do, the
    # pending silence included once it starts.
    later = T0 + 6 * S
    assert a.mutes_many(batch, later) == [mutes(b, alert.labels, later) for alert in batch]
    assert a.mutes_many(alerts[4:], later)[0] != []


def test_alerts_nothing_mutes_at_one_step_and_time_share_their_marks() -> None:
    """One "nothing matches" marks object per step and query time, not one per alert;
    a write (a new step) or a later time makes another, and the answers stay right."""
    from daemon.alert import Alert

    st = store()
    st.set(sil('job=~"db|web"'), T0)
    labelsets = [{"job": "x", "i": str(k)} for k in range(3)]
    alerts = [Alert(lb, {}, T0, T0 + 60 * S, "", T0, False, fingerprint(lb)) for lb in labelsets]
    assert st.mutes_many(alerts, T0 + S) == [[], [], []]
    marks = [st._marks[a.fingerprint] for a in alerts]
    assert marks[0] is marks[1] is marks[2]
    assert mutes(st, {"job": "y"}, T0 + S) == []
    assert st._marks[fingerprint({"job": "y"})] is marks[0]
    sid = st.set(sil("job=x"), T0 + 2 * S)
    fresh = {"job": "x", "i": "new"}
    assert mutes(st, fresh, T0 + 2 * S) == [sid]
    assert st.mutes_many(alerts, T0 + 2 * S) == [[sid], [sid], [sid]]
    assert mutes(st, {"job": "z"}, T0 + 3 * S) == []
    assert st._marks[fingerprint({"job": "z"})] is not marks[0]


@pytest.mark.parametrize(
    "amounts", [[], [0.0], [1e-7, 0.004, 0.005, 0.0051, 9.0, 11.0, 1e9], [0.3] * 5]
)
def test_observe_many_equals_one_observe_per_amount(amounts: list[float]) -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from daemon import metrics

    registry = CollectorRegistry()
    one = Histogram("one", "h", registry=registry)
    many = Histogram("many", "h", registry=registry)
    for amount in amounts:
        one.observe(amount)
    metrics.observe_many(many, amounts)

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name.removeprefix(name), s.labels, s.value)
            for family in registry.collect()
            if family.name == name
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    got, want = samples("many"), samples("one")
    assert [s[:2] for s in got] == [s[:2] for s in want]
    for (suffix, _, value), (_, _, expected) in zip(got, want, strict=True):
        assert value == pytest.approx(expected, rel=1e-12), suffix


def test_layered_mutes_many_is_each_alerts_own_and_shared_ids_sorted() -> None:
    """A tenant pipeline's matcher (``LayeredSilences``): per alert, its own silences and
    the global ones, merged and sorted, as its ``mutes`` answers."""
    from daemon.alert import Alert
    from daemon.instance import LayeredSilences

    own, shared = store(), Silences(retention=10 * S, new_id=lambda: "global-1")
    own.set(sil("job=db", sid=""), T0)
    shared.set(sil('job=~"db|web"', sid=""), T0)
    layered = LayeredSilences(own, shared)
    labelsets = [{"job": "db"}, {"job": "web"}, {"job": "x"}]
    alerts = [Alert(lb, {}, T0, T0 + 60 * S, "", T0, False, fingerprint(lb)) for lb in labelsets]
    many = layered.mutes_many(alerts, T0 + S)
    assert many == [layered.mutes(lb, fingerprint(lb), T0 + S) for lb in labelsets]
    assert [len(ids) for ids in many] == [2, 1, 0]
    assert many[0] == ["global-1", "id-000"]
