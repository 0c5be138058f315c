"""Query parameters, their errors, the SQL they select and the cursor (pure)."""

from __future__ import annotations

import pytest

from daemon.history.query import (
    DEFAULT_LIMIT,
    Cursor,
    HistoryQuery,
    QueryError,
    any_alert_matches,
    parse_query,
    prefilter_sql,
    select_sql,
)
from daemon.history.record import Outcome, Status
from daemon.matcher import parse_matcher
from tests.history.conftest import T0


def args(**values: str | list[str]) -> HistoryQuery:
    def getlist(name: str) -> list[str]:
        v = values.get(name)
        if v is None:
            return []
        return v if isinstance(v, list) else [v]

    return parse_query(getlist)


def test_defaults() -> None:
    """No parameters is every row, newest first, DEFAULT_LIMIT at a time."""
    assert args() == HistoryQuery(limit=DEFAULT_LIMIT)


def test_every_parameter_parses() -> None:
    """Each documented parameter lands in its field."""
    cursor = Cursor(T0, 7).encode()
    q = args(
        receiver="team-a",
        integration="slack[2]",
        status="resolved",
        outcome="failed",
        **{"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00+01:00"},
        limit="1000",
        cursor=cursor,
        filter=['severity=~"crit|warn"', "team=a"],
        tenant="t1",
    )
    assert q.receiver == "team-a"
    assert (q.integration, q.integration_index) == ("slack", 2)
    assert (q.status, q.outcome) == (Status.RESOLVED, Outcome.FAILED)
    assert q.since == q.until == T0
    assert q.limit == 1000
    assert q.cursor == Cursor(T0, 7)
    assert [str(m) for m in q.matchers] == ['severity=~"crit|warn"', 'team="a"']
    assert q.tenant == "t1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "pending"}, "invalid status 'pending': want firing|resolved"),
        ({"outcome": "ok"}, "invalid outcome 'ok': want sent|failed|suppressed"),
        ({"limit": "0"}, "invalid limit '0': want an integer from 1 to 1000"),
        ({"limit": "1001"}, "invalid limit '1001': want an integer from 1 to 1000"),
        ({"limit": "-5"}, "invalid limit '-5': want an integer from 1 to 1000"),
        ({"from": "yesterday"}, 'invalid from: parsing time "yesterday" as RFC 3339 failed'),
        ({"to": "2026-02-30T00:00:00Z"}, "invalid to: parsing time"),
        (
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "invalid time range: from is after to",
        ),
        ({"cursor": "not a cursor!"}, "invalid cursor"),
        ({"cursor": "MTIz"}, "invalid cursor"),
        ({"filter": "a=~("}, "invalid filter: "),
        ({"filter": "{a=b}"}, "invalid filter: bad matcher format"),
    ],
)
def test_bad_parameters_say_what_is_wrong(params: dict[str, str], message: str) -> None:
    """A bad parameter raises QueryError whose message names the parameter and the fix."""
    with pytest.raises(QueryError) as info:
        args(**params)
    assert str(info.value).startswith(message)


def test_cursor_round_trips_and_is_opaque() -> None:
    """A cursor encodes to URL-safe text without padding and decodes to the same position."""
    c = Cursor(T0, 123456)
    text = c.encode()
    assert "=" not in text and str(T0) not in text
    assert Cursor.decode(text) == c


def test_sql_has_a_clause_per_filter() -> None:
    """Each filter adds one parameterised clause; the order is newest first."""
    sql, params = select_sql(
        HistoryQuery(
            receiver="r",
            integration="webhook",
            integration_index=1,
            status=Status.FIRING,
            outcome=Outcome.SENT,
            since=1,
            until=2,
            cursor=Cursor(5, 6),
            tenant="t",
        )
    )
    assert sql.endswith(" ORDER BY time DESC, id DESC")
    assert params == ["t", "r", "webhook", 1, "firing", "sent", 1, 2, 5, 5, 6]
    assert "?" not in select_sql(HistoryQuery())[0]


def test_prefilter_needles() -> None:
    """Equality needs "name":"value", a regex that cannot match empty needs the label, the rest nothing."""
    sql, params = prefilter_sql(
        [
            parse_matcher('a="x\\"y"'),
            parse_matcher('b=~"c.+"'),
            parse_matcher("c!=d"),
            parse_matcher('d=""'),
            parse_matcher('e=~".*"'),
        ]
    )
    assert sql == "instr(body, ?) > 0 AND instr(body, ?) > 0"
    assert params == ['"a":"x\\"y"', '"b":']
    assert prefilter_sql([parse_matcher("c!=d")]) == ("1", [])


def test_label_filter_needs_one_alert_to_match_all_matchers() -> None:
    """Matchers apply to each alert's labels as a whole, not across alerts."""
    ms = [parse_matcher("a=1"), parse_matcher("b=2")]
    assert any_alert_matches(ms, [{"a": "1"}, {"a": "1", "b": "2"}])
    assert not any_alert_matches(ms, [{"a": "1"}, {"b": "2"}])
    assert any_alert_matches([parse_matcher('c=""')], [{"a": "1"}])
