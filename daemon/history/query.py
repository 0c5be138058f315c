"""History queries: parameters, the SQL they become, and the paging cursor. Pure.

Semantics (what ``GET /api/v1/history`` documents):

* Results are newest first, ordered by ``(time, id)`` descending; ``id`` breaks ties
  between records of the same nanosecond.
* ``cursor`` is the position after the last row a page examined. The next page
  continues strictly below it, so rows inserted meanwhile never shift, repeat or
  hide the rows of later pages: a newer row is above every cursor, and a late row
  (a record stamped before the cursor, written after) shows once, in its place.
* ``receiver`` and ``integration`` are exact names (``integration`` may also be
  ``name[index]``, e.g. ``webhook[1]``); ``from`` and ``to`` are RFC 3339 and both
  inclusive.
* ``filter`` takes label matchers in the ``/api/v2/alerts`` syntax (one matcher per
  value, repeatable). A row matches when **any one of its alerts' label sets**
  matches all matchers. Group labels are not matched separately: they are a subset
  of every alert's labels, so a matcher on a group label finds its rows through
  the alerts.
* The label filter runs in two steps. SQLite first narrows the rows that pass the
  other filters with a substring test on the stored JSON (:func:`prefilter_sql`: a
  necessary condition, never a sufficient one), over at most :data:`SCAN_WINDOW`
  rows per page. Python then checks the candidates exactly, at most
  :data:`CHECK_BUDGET` of them per page. A selective filter may therefore answer
  fewer than ``limit`` items with a ``next_cursor`` to continue from; only a
  missing ``next_cursor`` means the end.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

from daemon.gocompat.timestamp import TimestampError, parse_rfc3339
from daemon.history.codec import COLUMNS, label_needle
from daemon.history.record import Outcome, Status
from daemon.matcher import Matcher, MatcherError, MatchType, parse_matcher

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Rows SQLite's prefilter may examine for one page of a label-filtered query.
SCAN_WINDOW = 20_000
#: Candidate rows Python may decode and check for one page (JSON decoding is the cost).
CHECK_BUDGET = 2_500

# ASCII digits, bounded: int() refuses strings over 4300 digits (a 500), and \d would
# take other scripts' digits.
_INTEGRATION_WITH_INDEX = re.compile(r"(.+)\[([0-9]{1,9})\]")
_CURSOR = re.compile(r"(-?[0-9]{1,19}):([0-9]{1,19})")


_E = TypeVar("_E", Status, Outcome)


class QueryError(ValueError):
    """A bad query parameter; the message is the 400 answer's ``error``."""


@attrs.frozen
class Cursor:
    """A position in the newest-first order: the ``(time, id)`` of the last row examined."""

    time: int
    id: int

    def encode(self) -> str:
        """Opaque to clients: URL-safe base64 without padding."""
        raw = f"{self.time}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            raise QueryError("invalid cursor") from None
        m = _CURSOR.fullmatch(raw)
        if m is None:
            raise QueryError("invalid cursor")
        return cls(int(m.group(1)), int(m.group(2)))


@attrs.frozen
class HistoryQuery:
    """One page request. None means "no filter" for every filter field."""

    receiver: str | None = None
    integration: str | None = None
    integration_index: int | None = None
    status: Status | None = None
    outcome: Outcome | None = None
    #: Inclusive bounds, Unix ns.
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None
    matchers: tuple[Matcher, ...] = ()
    tenant: str | None = None


def _last(getlist: Callable[[str], list[str]], name: str) -> str | None:
    values = getlist(name)
    return values[-1] if values else None


def _enum_param(kind: type[_E], name: str, value: str | None) -> _E | None:
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = "|".join(m.value for m in kind)
        raise QueryError(f"invalid {name} {value!r}: want {allowed}") from None


def _time_param(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_rfc3339(value)
    except TimestampError as exc:
        raise QueryError(f"invalid {name}: {exc}") from None


def _limit_param(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or len(value) > 6:
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise QueryError(f"invalid limit {shown!r}: want an integer from 1 to {MAX_LIMIT}")
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"invalid limit {value!r}: want an integer from 1 to {MAX_LIMIT}")
    return limit


def parse_query(getlist: Callable[[str], list[str]]) -> HistoryQuery:
    """Parse query arguments (``getlist(name)`` gives every value); raises QueryError.

    The last value of a repeated parameter counts, except ``filter``, whose values
    all apply.
    """
    integration = _last(getlist, "integration") or None
    index: int | None = None
    if integration is not None:
        m = _INTEGRATION_WITH_INDEX.fullmatch(integration)
        if m is not None:
            integration, index = m.group(1), int(m.group(2))
    try:
        matchers = tuple(parse_matcher(v) for v in getlist("filter"))
    except MatcherError as exc:
        raise QueryError(f"invalid filter: {exc}") from None
    since = _time_param("from", _last(getlist, "from"))
    until = _time_param("to", _last(getlist, "to"))
    if since is not None and until is not None and since > until:
        raise QueryError("invalid time range: from is after to")
    cursor_text = _last(getlist, "cursor")
    return HistoryQuery(
        receiver=_last(getlist, "receiver") or None,
        integration=integration,
        integration_index=index,
        status=_enum_param(Status, "status", _last(getlist, "status")),
        outcome=_enum_param(Outcome, "outcome", _last(getlist, "outcome")),
        since=since,
        until=until,
        limit=_limit_param(_last(getlist, "limit")),
        cursor=Cursor.decode(cursor_text) if cursor_text else None,
        matchers=matchers,
        tenant=_last(getlist, "tenant"),
    )


def select_sql(query: HistoryQuery, columns: str = COLUMNS) -> tuple[str, list[object]]:
    """The SELECT of ``columns`` for ``query`` (without a LIMIT) and its parameters, newest first.

    The label matchers are not part of it (see :func:`prefilter_sql`).
    """
    where: list[str] = []
    params: list[object] = []

    def add(clause: str, *values: object) -> None:
        where.append(clause)
        params.extend(values)

    if query.tenant is not None:
        add("tenant = ?", query.tenant)
    if query.receiver is not None:
        add("receiver = ?", query.receiver)
    if query.integration is not None:
        add("integration = ?", query.integration)
    if query.integration_index is not None:
        add("integration_index = ?", query.integration_index)
    if query.status is not None:
        add("status = ?", query.status.value)
    if query.outcome is not None:
        add("outcome = ?", query.outcome.value)
    if query.since is not None:
        add("time >= ?", query.since)
    if query.until is not None:
        add("time <= ?", query.until)
    if query.cursor is not None:
        # Spelled out rather than as a row value: SQLite turns this into an index range.
        add(
            "(time < ? OR (time = ? AND id < ?))",
            query.cursor.time,
            query.cursor.time,
            query.cursor.id,
        )
    sql = f"SELECT {columns} FROM history"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY time DESC, id DESC", params


def prefilter_sql(matchers: Sequence[Matcher]) -> tuple[str, list[object]]:
    """A SQL boolean over ``body`` that every row the matchers accept satisfies.

    ``name="value"`` (value not empty) needs the text ``"name":"value"``; a regex that
    cannot match the empty string needs the label, ``"name":``. Matchers that an
    absent label satisfies (``!=``, ``!~``, ``=""``, ``=~".*"``) give no condition.
    """
    clauses: list[str] = []
    params: list[object] = []
    for m in matchers:
        if m.matches_empty():
            continue
        needle = label_needle(m.name, m.value if m.type is MatchType.EQUAL else None)
        clauses.append("instr(body, ?) > 0")
        params.append(needle)
    return (" AND ".join(clauses) if clauses else "1"), params


def any_alert_matches(matchers: Sequence[Matcher], alerts: Sequence[dict[str, str]]) -> bool:
    """The label filter: some alert's labels match every matcher."""
    return any(all(m.matches(labels.get(m.name, "")) for m in matchers) for labels in alerts)


__all__ = [
    "CHECK_BUDGET",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SCAN_WINDOW",
    "Cursor",
    "HistoryQuery",
    "QueryError",
    "any_alert_matches",
    "parse_query",
    "prefilter_sql",
    "select_sql",
]
