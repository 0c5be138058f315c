"""Event alerts stay firing while the event recurs and resolve ``resolve_after`` after
the last occurrence: the pure book, then the actor on trio's virtual clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import trio
import trio.testing

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, TrioClock
from daemon.sources.resolve import SEEN_TTL, Occurrence, ResolveBook, event_identity
from daemon.sources.resolve_actor import ResolveActor

S = NS_PER_SECOND
T0 = 1_767_225_600 * S
LABELS = {"alertname": "PodBackOff", "alerttype": "event", "pod": "web-0", "namespace": "shop"}


def occ(count: int = 1, resolve_after: int = 300 * S, identity: str | None = "uid-1") -> Occurrence:
    return Occurrence(dict(LABELS), {"message": f"seen {count}"}, resolve_after, identity, (count,))


def test_first_occurrence_fires_until_resolve_after() -> None:
    """A new event puts its alert with startsAt now and endsAt now + resolve_after."""
    book = ResolveBook()
    (alert,) = book.occur([occ()], T0)
    assert (alert.starts_at, alert.ends_at) == (T0, T0 + 300 * S)
    assert alert.labels == LABELS
    assert book.next_deadline() == T0 + 300 * S


def test_count_bump_extends_and_keeps_start() -> None:
    """A count bump is a recurrence: endsAt moves on, startsAt stays, annotations update."""
    book = ResolveBook()
    book.occur([occ(1)], T0)
    (alert,) = book.occur([occ(2)], T0 + 200 * S)
    assert (alert.starts_at, alert.ends_at) == (T0, T0 + 500 * S)
    assert alert.annotations == {"message": "seen 2"}


def test_unchanged_copy_of_an_event_is_not_a_recurrence() -> None:
    """A re-listed event with the same count puts nothing and does not extend the alert."""
    book = ResolveBook()
    book.occur([occ(1)], T0)
    assert book.occur([occ(1)], T0 + 200 * S) == []
    assert book.next_deadline() == T0 + 300 * S


def test_a_new_event_for_the_same_alert_extends_it() -> None:
    """Another event (new identity) matching the same alert labels is a recurrence."""
    book = ResolveBook()
    book.occur([occ(identity="uid-1")], T0)
    (alert,) = book.occur([occ(identity="uid-2")], T0 + 100 * S)
    assert alert.ends_at == T0 + 400 * S


def test_due_resolves_at_ends_at_and_forgets() -> None:
    """At endsAt the alert is returned resolved at that time; a later event starts anew."""
    book = ResolveBook()
    book.occur([occ(1)], T0)
    assert book.due(T0 + 299 * S) == []
    (resolved,) = book.due(T0 + 300 * S)
    assert resolved.resolved(T0 + 300 * S) and resolved.ends_at == T0 + 300 * S
    assert book.next_deadline() is None
    (again,) = book.occur([occ(2)], T0 + 400 * S)
    assert again.starts_at == T0 + 400 * S


def test_shorter_resolve_after_never_shortens_a_firing_alert() -> None:
    """A recurrence with a shorter resolve_after keeps the later endsAt already promised."""
    book = ResolveBook()
    book.occur([occ(1, 600 * S)], T0)
    (alert,) = book.occur([occ(2, 60 * S)], T0 + 10 * S)
    assert alert.ends_at == T0 + 600 * S


def test_events_without_identity_always_occur() -> None:
    """Audit events have no identity: each one is an occurrence."""
    book = ResolveBook()
    assert len(book.occur([occ(identity=None)], T0)) == 1
    assert len(book.occur([occ(identity=None)], T0 + S)) == 1


def test_seen_identities_are_bounded() -> None:
    """At most ``max_seen`` identities are remembered; the oldest go first."""
    book = ResolveBook(max_seen=3)
    book.occur([occ(identity=f"u{i}") for i in range(5)], T0)
    assert list(book.seen) == ["u2", "u3", "u4"]


def test_event_identity_uses_uid_then_namespace_name() -> None:
    """Identity is metadata.uid, else namespace/name; version is count and times."""
    ident, version = event_identity(
        {"metadata": {"uid": "u", "name": "n"}, "count": 3, "lastTimestamp": "t"}
    )
    assert ident == "u" and version[:2] == (3, "t")
    assert event_identity({"metadata": {"namespace": "a", "name": "n"}})[0] == "a/n"
    assert event_identity({})[0] is None


class Recorder:
    def __init__(self) -> None:
        self.puts: list[tuple[float, list[Alert]]] = []

    def __call__(self, alerts: Sequence[Alert], now: int) -> None:
        self.puts.append((trio.current_time(), list(alerts)))


@contextlib.asynccontextmanager
async def running_actor(seconds: float) -> AsyncIterator[tuple[ResolveActor, Recorder]]:
    """A resolve actor on trio's clock, its puts recorded; cancelled at the end."""
    put = Recorder()
    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            actor = ResolveActor(TrioClock(T0))
            await nursery.start(actor.run, put)
            yield actor, put
            nursery.cancel_scope.cancel()


async def test_actor_resolves_after_the_last_occurrence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """On virtual time: fired at 0, bumped at 200 s, re-put resolved at exactly 500 s."""
    async with running_actor(3600) as (actor, put):
        start = trio.current_time()
        assert await actor.occur([occ(1)]) == 1
        await trio.sleep(200)
        assert await actor.occur([occ(2)]) == 1
        assert await actor.occur([occ(2)]) == 0
        await trio.sleep(299)
        assert len(put.puts) == 2
        await trio.sleep(2)
        assert len(put.puts) == 3
        at, (resolved,) = put.puts[2]
        assert at - start == 500
        assert resolved.ends_at == T0 + 500 * S and resolved.starts_at == T0


async def test_actor_keeps_firing_while_the_event_recurs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An event bumped every 4 minutes with resolve_after 5 minutes never resolves."""
    async with running_actor(36_000) as (actor, put):
        start = trio.current_time()
        for count in range(1, 30):
            await actor.occur([occ(count)])
            await trio.sleep(240)
        # One put per occurrence, each firing, all of one spell: no resolve between.
        assert len(put.puts) == 29
        for at, (alert,) in put.puts:
            assert alert.starts_at == T0
            assert not alert.resolved(T0 + int((at - start) * S))
        await trio.sleep(61)
        at, (last,) = put.puts[-1]
        assert len(put.puts) == 30 and at - start == 28 * 240 + 300
        assert last.ends_at == T0 + (28 * 240 + 300) * S


def test_expired_identities_are_forgotten() -> None:
    """An identity not seen for SEEN_TTL is forgotten: the same event later is new again."""
    book = ResolveBook()
    book.occur([occ(1, identity="old")], T0)
    book.occur([occ(1, identity="new")], T0 + SEEN_TTL)
    book.occur([occ(1, identity="other")], T0 + SEEN_TTL + 1)
    assert list(book.seen) == ["new", "other"]
