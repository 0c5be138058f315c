"""The history table: its schema and the record <-> row codec. Pure (no connection here).

One row per :class:`~daemon.history.record.HistoryRecord`. The columns are what queries
filter and sort on; the alerts and group labels, which only the label ``filter`` reads,
travel as one compact JSON ``body``.

Invariants:

* ``id`` is SQLite's rowid, so it grows with insertion order; ``(time, id)`` is unique
  and is the sort key (newest first) and the cursor position.
* Each index ends in ``time`` and, implicitly, the rowid: every filtered listing walks
  one index backwards and stops at ``LIMIT``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from daemon.history.record import (
    HistoryAlert,
    HistoryRecord,
    IntegrationRef,
    NotifyReason,
    Outcome,
    Status,
)
from daemon.notify.gojson import plain_string_map

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    receiver TEXT NOT NULL,
    integration TEXT NOT NULL,
    integration_index INTEGER NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    repeat_interval INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_time ON history (time);
CREATE INDEX IF NOT EXISTS history_by_receiver ON history (receiver, time);
CREATE INDEX IF NOT EXISTS history_by_tenant ON history (tenant, time);
"""

#: The columns a query selects, in :func:`row_to_record`'s order (``id`` first).
COLUMNS = (
    "id, time, tenant, receiver, integration, integration_index, group_key, reason,"
    " outcome, error, attempts, duration, repeat_interval, body"
)

INSERT = (
    "INSERT INTO history (time, tenant, receiver, integration, integration_index, group_key,"
    " status, reason, outcome, error, attempts, duration, repeat_interval, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Keys sorted here, in the writer thread, so the stored JSON and the API answers are
# stable without sorting a copy of every alert's labels on the event loop.
_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, sort_keys=True
)

Row = tuple[Any, ...]


def encode_body(rec: HistoryRecord) -> str:
    """The ``body`` column of ``rec``: the definition, one encoder call."""
    return _encoder.encode(
        {
            "g": rec.group_labels,
            "a": [[a.fingerprint, a.labels, a.status.value] for a in rec.alerts],
        }
    )


def _labels_json(labels: Mapping[str, str]) -> str:
    # Go's JSON of a map whose strings need no escaping is the same text as this
    # encoder's (keys sorted by code point, strings verbatim); the C writer builds it
    # without the encoder's walk. Anything else takes the encoder.
    if type(labels) is dict:
        plain = plain_string_map(labels)
        if plain is not None:
            return plain
    return _encoder.encode(labels)


def _fast_body(rec: HistoryRecord) -> str:
    """:func:`encode_body`'s text, built map by map.

    The body is encoded in the history writer's thread, but holding the interpreter
    lock, so its time was the event loop's lost (6% of the daemon's samples under
    issue 15's ingest, two thirds of it the encoder). Same text; a test checks it
    against :func:`encode_body`.
    """
    alerts = ",".join(
        [
            f'[{_encoder.encode(a.fingerprint)},{_labels_json(a.labels)},"{a.status.value}"]'
            for a in rec.alerts
        ]
    )
    return f'{{"a":[{alerts}],"g":{_labels_json(rec.group_labels)}}}'


def record_to_row(rec: HistoryRecord) -> Row:
    """The parameters of :data:`INSERT` for ``rec``."""
    body = _fast_body(rec)
    return (
        rec.time,
        rec.tenant,
        rec.receiver,
        rec.integration.name,
        rec.integration.index,
        rec.group_key,
        rec.status.value,
        rec.reason.value if rec.reason is not None else None,
        rec.outcome.value,
        rec.error,
        rec.attempts,
        rec.duration,
        rec.repeat_interval,
        body,
    )


def label_needle(name: str, value: str | None = None) -> str:
    """Text that ``body`` holds whenever an alert has label ``name`` (``= value``).

    The body is this encoder's text (:func:`encode_body`), so a label ``name="value"``
    is always there as ``"name":"value"`` (and never by accident: quotes inside values
    are escaped).
    """
    key = _encoder.encode(name) + ":"
    return key if value is None else key + _encoder.encode(value)


def body_alert_labels(body: str) -> list[dict[str, str]]:
    """The alerts' label sets out of a stored ``body`` (what the label filter reads)."""
    return [a[1] for a in json.loads(body)["a"]]


def row_to_record(row: Row) -> HistoryRecord:
    """A record back from a row selected with :data:`COLUMNS`."""
    (
        _id,
        time,
        tenant,
        receiver,
        integration,
        index,
        group_key,
        reason,
        outcome,
        error,
        attempts,
        duration,
        repeat_interval,
        body,
    ) = row
    data = json.loads(body)
    return HistoryRecord(
        time=time,
        tenant=tenant,
        receiver=receiver,
        integration=IntegrationRef(integration, index),
        group_key=group_key,
        group_labels=data["g"],
        alerts=[HistoryAlert(fp, labels, Status(status)) for fp, labels, status in data["a"]],
        reason=NotifyReason(reason) if reason is not None else None,
        outcome=Outcome(outcome),
        error=error,
        attempts=attempts,
        duration=duration,
        repeat_interval=repeat_interval,
    )
