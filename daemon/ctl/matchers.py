"""amtool's reading of matcher and label arguments (Alertmanager 0.25's classic syntax)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from daemon.ctl.errors import CtlError
from daemon.ctl.output import api_time
from daemon.gocompat.timestamp import TimestampError, parse_rfc3339
from daemon.matcher import Matcher, MatcherError, MatchType, parse_matcher


def with_alertname(args: Sequence[str]) -> list[str]:
    """``args`` with ``alertname=`` put before the first one if it is not a matcher.

    amtool's shorthand: ``alert query Disk node=a`` means ``alertname=Disk node=a``.
    """
    out = list(args)
    if out:
        try:
            parse_matcher(out[0])
        except MatcherError:
            out[0] = f"alertname={out[0]}"
    return out


def parse_matcher_args(args: Sequence[str]) -> list[Matcher]:
    """Each argument as one matcher; a bad one is an error that shows the syntax."""
    matchers = []
    for arg in args:
        try:
            matchers.append(parse_matcher(arg))
        except MatcherError as exc:
            raise CtlError(
                str(exc),
                hint="write matchers as name=value, name!=value, name=~regex or name!~regex",
            ) from None
    return matchers


def parse_label_args(args: Sequence[str], what: str = "labels") -> dict[str, str]:
    """``name=value`` arguments as a label set (later ones win, as in amtool)."""
    labels: dict[str, str] = {}
    for matcher in parse_matcher_args(args):
        if matcher.type is not MatchType.EQUAL:
            raise CtlError(f"{what} must be specified as key=value pairs", hint=f"not {matcher}")
        labels[matcher.name] = matcher.value
    return labels


@attrs.frozen
class TimeArg:
    """An RFC 3339 ``--start``/``--end`` value: its instant, and its text for the API.

    amtool sends the time in the offset it was given (``...+02:00``), and Alertmanager
    keeps and returns that offset; so does this, in the API's millisecond form.
    """

    ns: int
    text: str


def parse_time_flag(value: str, flag: str) -> TimeArg:
    try:
        return TimeArg(parse_rfc3339(value), api_time(value))
    except TimestampError as exc:
        raise CtlError(
            f"invalid {flag}: {exc}", hint=f"give {flag} as RFC 3339, e.g. 2006-01-02T15:04:05Z"
        ) from None
