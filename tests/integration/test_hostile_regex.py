"""Hostile regexes against a real tocsin (and a real Alertmanager 0.25 peer): the daemon
stays up and keeps notifying on time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cluster.protowire import ProtoWriter, write_delimited
from daemon.gocompat.pbtimestamp import encode_timestamp
from daemon.matcher import Matcher, MatchType
from daemon.silence import codec as silencepb
from daemon.silence.model import Silence
from tests.integration.processes import (
    WebhookSink,
    run_tocsin,
)
from tests.integration.processes import wait_for as wait_until
from tests.integration.test_cluster import (
    CONFIG,
    create_silence,
    has_silence,
    settled,
    tocsin_and_alertmanager,
)

LONG = 5000
#: Values Python's backtracking re needed minutes to hours for (129 ms at 22 characters,
#: doubling per character); RE2 answers in microseconds.
HOSTILE_LABELS = {"alertname": "Control", "instance": "x" * LONG, "victim": "a" * LONG}


def _matcher(name: str, value: str, *, regex: bool = True, equal: bool = True) -> dict[str, Any]:
    return {"name": name, "value": value, "isRegex": regex, "isEqual": equal}


#: Silences that run a backtracking bomb against the alert's long values and still do
#: not mute it (the bomb comes first, a failing matcher after).
BOMBS = [
    [_matcher("instance", "(x+x+)+y")],
    [_matcher("victim", "([a-z]+)*[0-9]", equal=False), _matcher("instance", "nomatch.*")],
]


def notified_within(sink: WebhookSink, name: str, seconds: float) -> float:
    """Seconds until a webhook for alert ``name`` arrives (AssertionError past ``seconds``)."""
    start = time.monotonic()
    while (left := seconds - (time.monotonic() - start)) > 0:
        request = sink.next(timeout=left)
        names = [a["labels"]["alertname"] for a in request.json()["alerts"]]
        if name in names:
            return time.monotonic() - start
    raise AssertionError(f"{name} not notified within {seconds} s")


def test_hostile_silences_do_not_stall_notifications(tmp_path: Path) -> None:
    """With backtracking-bomb silences present, an alert with 5,000-character values is
    notified within group_wait plus a few seconds and the API keeps answering."""
    with WebhookSink() as sink, run_tocsin(tmp_path, CONFIG.format(url=sink.url)) as proc:
        for matchers in BOMBS:
            create_silence(proc, matchers=matchers)
        started = time.monotonic()
        assert proc.post_alerts([{"labels": HOSTILE_LABELS}]).status_code == 200
        assert time.monotonic() - started < 2
        # group_wait is 1 s; Python's re would still be backtracking for hours.
        notified_within(sink, "Control", 10)
        with proc.api() as client:
            alerts = client.get("/api/v2/alerts").json()
        assert [a["status"]["state"] for a in alerts] == ["active"]


def _raw_record(sid: str, pattern: str) -> bytes:
    """A delimited MeshSilence with a regex matcher nobody validated."""
    matcher = ProtoWriter().varint(1, 1).string(2, "alertname").string(3, pattern).getvalue()
    t0 = 1_700_000_000 * 10**9
    body = (
        ProtoWriter()
        .string(1, sid)
        .bytes_field(2, matcher)
        .bytes_field(3, encode_timestamp(t0))
        .bytes_field(4, encode_timestamp(4_000_000_000 * 10**9))
        .bytes_field(5, encode_timestamp(t0))
        .getvalue()
    )
    mesh = ProtoWriter().bytes_field(1, body).bytes_field(2, encode_timestamp(5 * 10**18))
    return write_delimited(mesh.getvalue())


def test_data_directory_with_a_refused_silence_starts(tmp_path: Path) -> None:
    """A snapshot holding a silence nested 1,200 deep loads the rest, logs the bad record,
    and the daemon serves (Python's re crash-looped on it)."""
    data = tmp_path / "tocsin-data"
    data.mkdir()
    good = Silence(
        id="good",
        matchers=(Matcher.create(MatchType.REGEXP, "alertname", "(" * 600 + "Good" + ")" * 600),),
        starts_at=1_700_000_000 * 10**9,
        ends_at=4_000_000_000 * 10**9,
        updated_at=1_700_000_000 * 10**9,
        created_by="t",
        comment="c",
    )
    deep = _raw_record("deep", "(" * 1200 + "a" + ")" * 1200)
    (data / "silences").write_bytes(deep + silencepb.encode_delimited(good, 5 * 10**18))
    with WebhookSink() as sink, run_tocsin(tmp_path, CONFIG.format(url=sink.url)) as proc:
        with proc.api() as client:
            ids = [s["id"] for s in client.get("/api/v2/silences").json()]
        assert ids == ["good"]
        assert any(e.get("event") == "state.corrupt" for e in proc.log_lines)
        assert (
            proc.post_alerts(
                [{"labels": {"alertname": "Good"}}, {"labels": {"alertname": "Other"}}]
            ).status_code
            == 200
        )
        notified_within(sink, "Other", 10)


@pytest.mark.alertmanager
def test_alertmanager_peer_gossips_deeply_nested_silence(tmp_path: Path) -> None:
    """Alertmanager 0.25 gossips silences nested 900 groups deep and a backtracking bomb;
    the tocsin node stays up, applies them, and keeps notifying on time."""
    with WebhookSink() as sink, tocsin_and_alertmanager(tmp_path, sink) as (ours, theirs):
        wait_until(lambda: settled([ours, theirs], 2), timeout=30)
        deep = create_silence(
            theirs, matchers=[_matcher("alertname", "(" * 900 + "Muted" + ")" * 900)]
        )
        bombs = [create_silence(theirs, matchers=m) for m in BOMBS]
        wait_until(lambda: all(has_silence(ours, s) for s in [deep, *bombs]), timeout=15)
        assert ours.proc.poll() is None
        batch = [{"labels": HOSTILE_LABELS}, {"labels": {"alertname": "Muted"}}]
        assert ours.post_alerts(batch).status_code == 200
        notified_within(sink, "Control", 10)
        with ours.api() as client:
            states = {
                a["labels"]["alertname"]: a["status"]["state"]
                for a in client.get("/api/v2/alerts").json()
            }
        assert states == {"Control": "active", "Muted": "suppressed"}
        assert ours.proc.poll() is None
