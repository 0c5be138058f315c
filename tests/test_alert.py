"""Alert identity and merge rules (spec §2)."""

from daemon.alert import Alert, fingerprint, format_fingerprint, merge
from daemon.clock import NS_PER_SECOND

S = NS_PER_SECOND


def test_fingerprint_matches_alertmanager() -> None:
    """FNV-1a fingerprints equal the values the real Alertmanager printed."""
    assert format_fingerprint(fingerprint({"alertname": "A3", "team": "b"})) == "70130c860751a4d1"
    assert (
        format_fingerprint(
            fingerprint({"alertname": "A1", "instance": "i1", "severity": "critical"})
        )
        == "e085717d088bfde7"
    )
    assert fingerprint({}) == 14695981039346656037


def _alert(start: int, end: int, updated: int, timeout: bool = False, ann: str = "") -> Alert:
    return Alert({"a": "b"}, {"x": ann}, start, end, "", updated, timeout)


def test_heartbeat_keeps_start_and_extends_end() -> None:
    """A re-post without times keeps startsAt and pushes endsAt out."""
    old = _alert(0, 300 * S, 0, timeout=True)
    new = _alert(100 * S, 400 * S, 100 * S, timeout=True, ann="new")
    got = merge(old, new, now=100 * S)
    assert (got.starts_at, got.ends_at, got.annotations) == (0, 400 * S, {"x": "new"})


def test_non_overlapping_repost_replaces() -> None:
    """A re-post after resolution starts fresh."""
    old = _alert(0, 10 * S, 0)
    new = _alert(20 * S, 320 * S, 20 * S, timeout=True)
    assert merge(old, new, now=20 * S) is new


def test_timeout_end_never_overrides_explicit_later_end() -> None:
    """An explicit later endsAt survives a heartbeat whose endsAt is only a default."""
    old = _alert(0, 1000 * S, 0)
    new = _alert(10 * S, 310 * S, 10 * S, timeout=True)
    assert merge(old, new, now=10 * S).ends_at == 1000 * S
    old_timeout = _alert(0, 1000 * S, 20 * S, timeout=True)
    explicit = _alert(10 * S, 500 * S, 10 * S)
    # old is newer and firing; explicit older end (500) is earlier than 1000 → keep 1000.
    assert merge(old_timeout, explicit, now=20 * S).ends_at == 1000 * S
