"""The notification log: log, query, merge (gossip) and GC rules."""

from __future__ import annotations

import xxhash

from daemon.alert import labels_hash_bytes
from daemon.nflog.state import DEFAULT_RETENTION, Entry, Nflog, ReceiverKey, alert_hash, state_key

S = 1_000_000_000
H = 3600 * S
RECV = ReceiverKey("wh", "webhook", 0)
GK = '{}:{alertname="A1"}'
T0 = 1_700_000_000 * S


def entry(ts: int, expires_at: int, firing: tuple[int, ...] = (1,)) -> Entry:
    return Entry(GK, RECV, ts, firing, (), expires_at)


def test_alert_hash_is_xxhash64_seed0_over_label_bytes() -> None:
    """The dedup hash is xxHash64 (seed 0) of the sorted name/0xFF/value/0xFF stream."""
    labels = {"b": "2", "alertname": "A"}
    assert labels_hash_bytes(labels) == b"alertname\xffA\xffb\xff2\xff"
    assert alert_hash(labels) == xxhash.xxh64_intdigest(b"alertname\xffA\xffb\xff2\xff")
    assert alert_hash({}) == 0xEF46DB3751D8E999


def test_state_key_format() -> None:
    """Entries are keyed ``<groupKey>:<receiver>/<integration>/<idx>``."""
    assert state_key(GK, RECV) == '{}:{alertname="A1"}:wh/webhook/0'


def test_log_then_query() -> None:
    """A logged send is returned by a query for the same group and integration only."""
    log = Nflog()
    log.log(RECV, GK, [1, 2], [3], now=T0)
    got = log.query(GK, RECV)
    assert got == Entry(GK, RECV, T0, (1, 2), (3,), T0 + DEFAULT_RETENTION)
    assert log.query(GK, ReceiverKey("wh", "webhook", 1)) is None
    assert log.query("{}:{}", RECV) is None


def test_log_expiry_shorter_than_retention_wins() -> None:
    """expires_at is now+expiry when 0 < expiry < retention, else now+retention."""
    log = Nflog(retention=10 * H)
    assert log.log(RECV, GK, [1], [], now=T0, expiry=2 * H).expires_at == T0 + 2 * H  # type: ignore[union-attr]
    assert log.log(RECV, GK, [1], [], now=T0, expiry=20 * H).expires_at == T0 + 10 * H  # type: ignore[union-attr]
    assert log.log(RECV, GK, [1], [], now=T0, expiry=0).expires_at == T0 + 10 * H  # type: ignore[union-attr]


def test_log_ignored_when_existing_entry_is_newer() -> None:
    """A write older than the stored entry is dropped; an equal timestamp overwrites."""
    log = Nflog()
    log.log(RECV, GK, [1], [], now=T0)
    assert log.log(RECV, GK, [2], [], now=T0 - 1) is None
    assert log.query(GK, RECV).firing_alerts == (1,)  # type: ignore[union-attr]
    assert log.log(RECV, GK, [3], [], now=T0) is not None
    assert log.query(GK, RECV).firing_alerts == (3,)  # type: ignore[union-attr]


def test_merge_absent_and_strictly_newer_only() -> None:
    """Merge adds absent keys and replaces only with a strictly newer timestamp."""
    log = Nflog()
    assert log.merge(entry(T0, T0 + H), now=T0)
    assert not log.merge(entry(T0, T0 + 2 * H, firing=(9,)), now=T0)
    assert log.query(GK, RECV).firing_alerts == (1,)  # type: ignore[union-attr]
    assert not log.merge(entry(T0 - S, T0 + H, firing=(9,)), now=T0)
    assert log.merge(entry(T0 + S, T0 + H, firing=(9,)), now=T0)
    assert log.query(GK, RECV).firing_alerts == (9,)  # type: ignore[union-attr]


def test_merge_ignores_expired_entries() -> None:
    """An entry whose expires_at is before now is never merged; at now it still is."""
    log = Nflog()
    assert not log.merge(entry(T0 - 2 * H, T0 - 1), now=T0)
    assert log.entries == {}
    assert log.merge(entry(T0 - 2 * H, T0), now=T0)


def test_gc_deletes_expired_inclusive() -> None:
    """GC deletes entries with expires_at <= now and keeps later ones."""
    log = Nflog()
    log.log(RECV, GK, [1], [], now=T0, expiry=H)
    other = ReceiverKey("wh", "webhook", 1)
    log.log(other, GK, [1], [], now=T0, expiry=2 * H)
    assert log.gc(T0 + H - 1) == 0
    assert log.gc(T0 + H) == 1
    assert log.query(GK, RECV) is None
    assert log.query(GK, other) is not None
