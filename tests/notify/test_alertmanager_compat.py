"""The webhook body and nflog hashes tocsin computes equal the real Alertmanager 0.25's."""

from __future__ import annotations

import json
import pathlib

import pytest
import trio

from daemon.alert import Alert
from daemon.clock import ZERO_TIME
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.nflog.state import alert_hash
from daemon.notify.context import NotifyContext
from daemon.notify.receivers.webhook import build_payload
from tests.integration.processes import (
    EXTERNAL_URL,
    open_alertmanager,
    post_as_one_batch,
    start_sink,
)

pytestmark = pytest.mark.alertmanager

CONFIG = """
route:
  receiver: "my.recv+x"
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s  # short, for post_as_one_batch
receivers:
  - name: "my.recv+x"
    webhook_configs:
      - url: "{url}"
        max_alerts: 1
"""


def varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """Top-level protobuf fields: (number, bytes for length-delimited, else the varint)."""
    out: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        if key & 7 == 2:
            size, pos = varint(data, pos)
            out.append((key >> 3, data[pos : pos + size]))
            pos += size
        elif key & 7 == 0:
            value, pos = varint(data, pos)
            out.append((key >> 3, value))
        else:
            raise AssertionError(f"unexpected wire type in {key}")
    return out


def firing_hashes(snapshot: bytes, group: bytes) -> list[int]:
    """firing_alerts (Entry field 6, packed) of the nflog snapshot's entry whose group key
    holds ``group`` (entries are in Go map order)."""
    pos = 0
    while pos < len(snapshot):
        size, pos = varint(snapshot, pos)
        mesh = dict(fields(snapshot[pos : pos + size]))
        pos += size
        entry = mesh[1]
        assert isinstance(entry, bytes)
        parsed = dict(fields(entry))
        group_key = parsed[1]
        assert isinstance(group_key, bytes)
        if group not in group_key:
            continue
        packed = parsed[6]
        assert isinstance(packed, bytes)
        hashes, i = [], 0
        while i < len(packed):
            value, i = varint(packed, i)
            hashes.append(value)
        return hashes
    raise AssertionError(f"no nflog entry for {group!r} in the snapshot")


async def test_payload_equals_alertmanager(tmp_path: pathlib.Path, nursery: trio.Nursery) -> None:
    """Same alerts through the 0.25 binary and tocsin give identical bodies and dedup hashes."""
    sink = await start_sink(nursery)
    posted = [
        {
            "labels": {"alertname": "Q", "i": str(i)},
            "annotations": {"s": '<b>&"x"é', "n": str(i)},
            "startsAt": "2020-01-01T00:00:00.5Z",
            "generatorURL": "http://g/x?a=1&b=2",
        }
        for i in range(2)
    ]
    # max_alerts: 1 with two alerts is still one notification; the clean shutdown at
    # the end writes the nflog snapshot, which holds the dedup hashes.
    async with open_alertmanager(
        tmp_path, CONFIG.format(url=f"{sink.url}/hook"), f"--web.external-url={EXTERNAL_URL}"
    ) as am:
        with trio.fail_after(30):
            await post_as_one_batch(am.client, posted)
            await sink.wait_for(1)
            # Alertmanager logs the nflog entry just after the webhook answered; a second
            # group's notification, which needs a new POST and a new flush, comes later.
            control = [{"labels": {"alertname": "Control"}}]
            assert (await am.client.post("/api/v2/alerts", json=control)).status_code == 200
            await sink.wait_for(2)
    assert firing_hashes((am.storage / "nflog").read_bytes(), b'alertname="Q"') == [
        alert_hash(p["labels"])  # type: ignore[arg-type]
        for p in posted
    ]
    body = sink.requests[0].body
    starts = parse_rfc3339("2020-01-01T00:00:00.5Z")
    alerts = [
        Alert(p["labels"], p["annotations"], starts, ZERO_TIME, "http://g/x?a=1&b=2")  # type: ignore[arg-type]
        for p in posted
    ]
    group_key = json.loads(body)["groupKey"]
    ctx = NotifyContext(group_key, {"alertname": "Q"}, "my.recv+x", 1, "{}", starts + 10**9)
    assert build_payload(ctx, alerts, 1, EXTERNAL_URL, ctx.now) == body
