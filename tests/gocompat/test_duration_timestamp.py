"""RFC 3339 and duration round trips in Alertmanager's forms."""

import pytest

from daemon.clock import NS_PER_SECOND as S
from daemon.clock import ZERO_TIME
from daemon.gocompat.duration import (
    DurationError,
    format_duration,
    parse_duration,
    parse_go_duration,
)
from daemon.gocompat.timestamp import TimestampError, format_millis, format_nano, parse_rfc3339


def test_parse_keeps_nanoseconds_and_offsets() -> None:
    """Fractions up to nine digits survive and offsets are applied."""
    t = parse_rfc3339("2026-11-23T19:23:54.045778732Z")
    assert format_nano(t) == "2026-11-23T19:23:54.045778732Z"
    assert format_millis(t) == "2026-11-23T19:23:54.045Z"
    assert parse_rfc3339("2026-11-23T20:23:54+01:00") == parse_rfc3339("2026-11-23T19:23:54Z")


def test_nano_format_trims_zeros_and_zero_time() -> None:
    """Go's RFC3339Nano trims trailing zeros; the zero time prints as year 1."""
    assert format_nano(parse_rfc3339("2020-01-01T00:00:00.500Z")) == "2020-01-01T00:00:00.5Z"
    assert format_nano(parse_rfc3339("2020-01-01T00:00:00Z")) == "2020-01-01T00:00:00Z"
    assert format_nano(ZERO_TIME) == "0001-01-01T00:00:00Z"
    assert parse_rfc3339("0001-01-01T00:00:00Z") == ZERO_TIME


@pytest.mark.parametrize("bad", ["2020-13-01T00:00:00Z", "2020-02-30T00:00:00Z", "yesterday", ""])
def test_bad_timestamps_raise(bad: str) -> None:
    """Impossible dates and junk are errors, not silently wrapped."""
    with pytest.raises(TimestampError):
        parse_rfc3339(bad)


def test_prometheus_durations() -> None:
    """Prometheus durations parse and print like model.Duration."""
    assert parse_duration("1h30m") == 5400 * S
    assert parse_duration("1d") == 86400 * S
    assert format_duration(parse_duration("90d")) == "90d"
    assert format_duration(parse_duration("2w")) == "2w"
    assert format_duration(4 * 3600 * S) == "4h"
    assert format_duration(0) == "0s"
    with pytest.raises(DurationError, match='not a valid duration string: "5x"'):
        parse_duration("5x")


def test_go_durations() -> None:
    """Go durations as kingpin flags take them."""
    assert parse_go_duration("1m0s") == 60 * S
    assert parse_go_duration("1.5h") == 5400 * S
    with pytest.raises(DurationError):
        parse_go_duration("1x")
