"""Decoding a POST /api/v2/alerts body as go-swagger does, before any handler code runs.

Alertmanager answers a bad body at three levels, and the first level that fails wins
for the whole body (spec §1.1, observed against 0.25):

1. JSON syntax anywhere → 400 ``parsing alerts body from "" failed, because <Go error>``.
2. Decoding, item by item: a wrong JSON type or an unparsable date-time → the same 400.
   Inside an item the generated ``UnmarshalJSON`` decodes the ``startsAt``/``endsAt``/
   ``annotations`` part first and the ``labels``/``generatorURL`` part second; date-time
   and URI fields fail at once, map fields remember their first error and go on.
3. Schema validation, item by item → 422: ``<i>.labels in body is required`` (602),
   ``<i>.generatorURL in body must be of type uri: "<v>"`` (601).

Only then does the handler see the alerts. Pure: no I/O, no trio. The happy path
touches each field once; the error texts are worked out on a slow path.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Generator
from typing import Any, TypeVar, cast

from daemon.clock import NS_PER_SECOND, ZERO_TIME
from daemon.gocompat.strconv import go_quote

T = TypeVar("T")

#: labels, annotations, startsAt, endsAt, generatorURL (times are ZERO_TIME when absent).
RawAlert = tuple[dict[str, str], dict[str, str], int, int, str]

_PREFIX = 'parsing alerts body from "" failed, because '
_OWN_FIELDS = ("annotations", "startsAt", "endsAt")
_ALERT_FIELDS = ("labels", "generatorURL")
_FIELDS = frozenset(_OWN_FIELDS + _ALERT_FIELDS)
_FOLDED = {f.lower(): f for f in _FIELDS}
_OWN_STRUCT = (
    'struct { Annotations models.LabelSet "json:\\"annotations,omitempty\\""; '
    'EndsAt strfmt.DateTime "json:\\"endsAt,omitempty\\""; '
    'StartsAt strfmt.DateTime "json:\\"startsAt,omitempty\\"" }'
)


class BodyError(Exception):
    """A framework-level rejection: HTTP status, go-openapi code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def go_kind(value: Any) -> str:
    """The JSON kind Go's decoder names in a type error (``object``, ``array``, ...)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def type_error(value: Any, field: str, go_type: str) -> str:
    """Go's ``json: cannot unmarshal`` error for ``value`` in a struct field."""
    return f"json: cannot unmarshal {go_kind(value)} into Go struct field {field} of type {go_type}"


# --- JSON syntax errors in Go's words ------------------------------------------------


class _ConstantError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _ConstantError(name)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def _quote_char(ch: str) -> str:
    # Go reports the offending byte; for multi-byte characters that is the first byte.
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    byte = ch.encode("utf-8", "replace")[:1].decode("latin-1")
    return "'" + go_quote(byte)[1:-1] + "'"


def _innermost_container(text: str, pos: int) -> str:
    """``[`` or ``{``: the container open at ``pos`` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _syntax_message(text: str, exc: json.JSONDecodeError) -> str:
    pos = exc.pos
    if pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    ch = text[pos]
    msg = exc.msg
    if msg.startswith("Expecting property name"):
        return f"invalid character {_quote_char(ch)} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {_quote_char(ch)} after object key"
    if msg.startswith("Expecting ','"):
        where = (
            "after array element"
            if _innermost_container(text, pos) == "["
            else "after object key:value pair"
        )
        return f"invalid character {_quote_char(ch)} {where}"
    if msg.startswith("Invalid control character"):
        return f"invalid character {_quote_char(ch)} in string literal"
    if msg.startswith("Invalid \\u"):
        return "invalid character in \\u hexadecimal character escape"
    if msg.startswith("Invalid \\escape"):
        nxt = text[pos + 1] if pos + 1 < len(text) else ""
        return f"invalid character {_quote_char(nxt)} in string escape code"
    return f"invalid character {_quote_char(ch)} looking for beginning of value"


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (JSON ``\\ud800``) by U+FFFD, as Go's decoder does."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


#: Between top-level array items: optional whitespace, then ``,`` or ``]``.
_NEXT_ITEM = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: Items decoded between two yields of :func:`decode_json_steps` (a few ms of work).
STEP_ITEMS = 256
#: Go's encoding/json refuses nesting deeper than 10000 with this text. Python's decoder
#: recurses once per level and stops at the interpreter's recursion limit (1000 frames,
#: so about 900 levels under a request handler); deeper bodies get a 400 with Go's words
#: instead of a RecursionError and a 500. No valid alert or silence nests deeper than 4.
DEPTH_ERROR = "exceeded max depth"

#: A computation that yields (None) at safe points so a trio shell can let other tasks
#: run between slices; it returns its result through StopIteration.
Steps = Generator[None, None, T]


def run_steps(steps: Steps[T]) -> T:
    """Run ``steps`` to the end in one go (for callers that need no checkpoints)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(T, done.value)


def decode_json(body: bytes) -> Any:
    """Decode the first JSON value of ``body`` as Go's ``json.Decoder`` would.

    Trailing data after the value is ignored (Go reads one value from the stream).
    Error handling: :class:`BodyError` 422 for an empty body, 400 for bad syntax or
    nesting too deep to decode (:data:`DEPTH_ERROR`).
    """
    text = body.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        raise BodyError(422, 602, "alerts in body is required")
    try:
        doc, _ = _decoder.raw_decode(text, start)
        if "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None:
            doc = _scrub(doc)
    except json.JSONDecodeError as exc:
        raise BodyError(400, 400, _PREFIX + _syntax_message(text, exc)) from None
    except _ConstantError as exc:
        where = "in numeric literal" if f"-{exc}" in text else "looking for beginning of value"
        raise BodyError(
            400, 400, _PREFIX + f"invalid character {_quote_char(str(exc)[0])} {where}"
        ) from None
    except RecursionError:
        raise BodyError(400, 400, _PREFIX + DEPTH_ERROR) from None
    return doc


def decode_json_steps(body: bytes) -> Steps[Any]:
    """:func:`decode_json`, yielding every :data:`STEP_ITEMS` items of a top-level array.

    A 32 MiB array of alerts is then decoded in slices of a few milliseconds each, not
    in one call that holds the GIL for a third of a second. Anything but a well-formed
    array (an error anywhere, another top-level value) is decoded again in one go by
    :func:`decode_json`, which stays the one reference for results and error texts.
    """
    text = body.decode("utf-8", "replace")
    pos = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        return decode_json(body)
    items: list[Any] = []
    try:
        pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        if not text.startswith("]", pos):
            while True:
                for _ in range(STEP_ITEMS):
                    item, pos = _decoder.raw_decode(text, pos)
                    items.append(item)
                    sep = _NEXT_ITEM.match(text, pos)
                    if sep is None:
                        return decode_json(body)
                    pos = sep.end()
                    if sep[1] == "]":
                        break
                else:
                    yield
                    continue
                break
    except (ValueError, RecursionError):  # JSONDecodeError and _ConstantError included
        return decode_json(body)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None:
        try:
            items = _scrub(items)
        except RecursionError:
            raise BodyError(400, 400, _PREFIX + DEPTH_ERROR) from None
    return items


# --- date-times as go-openapi's strfmt.DateTime parses them ---------------------------

# RFC 3339 (any fraction) with Z or ±hh:mm; ±hhmm only with 3 or 6 fraction digits;
# no zone at all (read as UTC, like Go's time.Parse); minutes-only forms; and the
# space-separated "universal sortable" form.
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"|[ ]+(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?)"
    r"(Z|[+-]\d{2}:?\d{2})?"
)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SORTABLE = "2006-01-02 15:04:05"


def _days_in(month: int, year: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS[month - 1]


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_datetime(text: str) -> int:
    """Unix nanoseconds; ``""`` is the Unix epoch (strfmt's quirk). ValueError: Go's text."""
    if text == "":
        return 0
    m = _DATETIME.fullmatch(text)
    if m is not None:
        ns = _datetime_ns(m)
        if ns is not None:
            return ns
    raise ValueError(_sortable_error(text))


def _datetime_ns(m: re.Match[str]) -> int | None:
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    if m[4] is not None:
        hour, minute = int(m[4]), int(m[5])
        second = int(m[6]) if m[6] else 0
        frac = m[7] or ""
        if m[6] is None and m[12] not in (None, "Z"):
            return None
    else:
        hour, minute, second, frac = int(m[8]), int(m[9]), int(m[10]), m[11] or ""
        if m[12] is not None:
            return None
    zone = m[12]
    if zone is not None and zone != "Z" and ":" not in zone and len(frac) not in (3, 6):
        return None
    if not (1 <= month <= 12 and 1 <= day <= _days_in(month, year)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if zone is not None and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        if zone[0] == "-":
            offset = -offset
    nanos = int(frac[:9].ljust(9, "0")) if frac else 0
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * NS_PER_SECOND + nanos


def _sortable_error(value: str) -> str:
    """Go's ``time.Parse`` error for strfmt's last layout, ``2006-01-02 15:04:05``."""
    head = f"parsing time {go_quote(value)} as {go_quote(_SORTABLE)}: cannot parse "

    def bad(rest: str, element: str) -> str:
        return f"{head}{go_quote(rest)} as {go_quote(element)}"

    v = value
    if len(v) < 4 or not v[:4].isdigit():
        return bad(v, "2006")
    year, v = int(v[:4]), v[4:]
    parts: dict[str, int] = {}
    for literal, element, fixed, name, limit in (
        ("-", "01", True, "month", 12),
        ("-", "02", True, "day", 31),
        (" ", "15", False, "hour", 23),
        (":", "04", True, "minute", 59),
        (":", "05", True, "second", 59),
    ):
        if literal == " ":
            if v and v[0] != " ":
                return bad(v, literal)
            v = v.lstrip(" ")
        elif not v.startswith(literal):
            return bad(v, literal)
        else:
            v = v[1:]
        width = 2 if len(v) >= 2 and v[:2].isdigit() else 1
        if not v[:1].isdigit() or (fixed and width != 2):
            return bad(v, element)
        number, v = int(v[:width]), v[width:]
        low = 1 if name == "month" else 0
        if not low <= number <= limit:
            return f"parsing time {go_quote(value)}: {name} out of range"
        parts[name] = number
    if len(v) >= 2 and v[0] in ".," and v[1].isdigit():
        v = v[1:].lstrip("0123456789")
    if v:
        return f"parsing time {go_quote(value)}: extra text: {go_quote(v)}"
    if parts["day"] < 1 or parts["day"] > _days_in(parts["month"], year):
        return f"parsing time {go_quote(value)}: day out of range"
    return f"parsing time {go_quote(value)}: cannot parse"  # pragma: no cover - parses fine


# --- URIs as Go's url.ParseRequestURI accepts them ------------------------------------

_USERINFO_OK = frozenset("-._:~!$&'()*+,;=%@")


_BAD_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")
# Host bytes Go leaves unescaped (url.shouldEscape in host mode); non-ASCII is allowed.
_HOST_CHARS = re.compile(r"[A-Za-z0-9!$&'()*+,;=:\[\]<>\"\-_.~%\x80-\U0010ffff]*")
_HOST_PERCENT = re.compile(r"%[0-7]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unescape_ok(text: str, host: bool) -> bool:
    """Go's ``url.unescape`` succeeds: valid %-escapes, and only host characters in a host."""
    if "%" in text:
        if _BAD_PERCENT.search(text) is not None:
            return False
        # In a host, %-escapes are only for non-ASCII bytes, except %25 (zone IDs).
        if host and any(m.group() + text[m.end()] != "%25" for m in _HOST_PERCENT.finditer(text)):
            return False
    return not host or _HOST_CHARS.fullmatch(text) is not None


def _port_ok(colon_port: str) -> bool:
    if colon_port == "":
        return True
    return colon_port[0] == ":" and all(c in "0123456789" for c in colon_port[1:])


def _host_ok(host: str) -> bool:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0 or not _port_ok(host[end + 1 :]):
            return False
        return _unescape_ok(host[: end + 1], host=False)
    colon = host.rfind(":")
    if colon >= 0 and not _port_ok(host[colon:]):
        return False
    return _unescape_ok(host, host=True)


def is_request_uri(text: str) -> bool:
    """True if Go's ``url.ParseRequestURI`` accepts ``text`` (go-openapi's ``uri`` format)."""
    if not text or _CONTROL.search(text) is not None:
        return False
    scheme = ""
    rest = text
    for i, ch in enumerate(text):
        if ch.isascii() and ch.isalpha():
            continue
        if ch.isascii() and (ch.isdigit() or ch in "+-."):
            if i == 0:
                break
            continue
        if ch == ":":
            if i == 0:
                return False
            scheme, rest = text[:i], text[i + 1 :]
        break
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        return bool(scheme)
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        at = authority.rfind("@")
        if at >= 0:
            if not all(c.isalnum() or c in _USERINFO_OK for c in authority[:at] if c.isascii()):
                return False
            authority = authority[at + 1 :]
        if not _host_ok(authority):
            return False
    return _unescape_ok(rest, host=False)


# --- the body -----------------------------------------------------------------------


def _canonical(item: dict[str, Any]) -> dict[str, Any]:
    """Go matches JSON keys to fields case-insensitively; later keys win."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        field = key if key in _FIELDS else _FOLDED.get(key.lower())
        if field is not None:
            out[field] = value
    return out


def _string_map(value: Any, field: str, saved: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        saved.append(type_error(value, field, "models.LabelSet"))
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if v is None:
            out[k] = ""
        elif isinstance(v, str):
            out[k] = v
        else:
            saved.append(type_error(v, field, "string"))
    return out


def _time_field(value: Any, field: str) -> int:
    if value is None:
        return ZERO_TIME
    if not isinstance(value, str):
        raise BodyError(400, 400, _PREFIX + type_error(value, field, "string"))
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise BodyError(400, 400, _PREFIX + str(exc)) from None


def _decode_item_slow(item: Any) -> tuple[RawAlert, dict[str, Any] | None]:
    """Decode one item with Go's error precedence; the item's fields for validation."""
    if not isinstance(item, dict):
        raise BodyError(
            400,
            400,
            _PREFIX + f"json: cannot unmarshal {go_kind(item)} into Go value of type {_OWN_STRUCT}",
        )
    fields = _canonical(item)
    saved: list[str] = []
    annotations: dict[str, str] = {}
    starts_at = ends_at = ZERO_TIME
    for key, value in fields.items():
        if key == "annotations":
            annotations = _string_map(value, ".annotations", saved)
        elif key == "startsAt":
            starts_at = _time_field(value, ".startsAt")
        elif key == "endsAt":
            ends_at = _time_field(value, ".endsAt")
    if saved:
        raise BodyError(400, 400, _PREFIX + saved[0])
    labels: dict[str, str] = {}
    generator_url = ""
    for key, value in fields.items():
        if key == "labels":
            labels = _string_map(value, "Alert.labels", saved)
        elif key == "generatorURL" and value is not None:
            if not isinstance(value, str):
                raise BodyError(
                    400, 400, _PREFIX + type_error(value, "Alert.generatorURL", "string")
                )
            generator_url = value
    if saved:
        raise BodyError(400, 400, _PREFIX + saved[0])
    return (labels, annotations, starts_at, ends_at, generator_url), fields


def _schema_error(index: int, labels_present: bool, generator_url: str) -> BodyError | None:
    if not labels_present:
        return BodyError(422, 602, f"{index}.labels in body is required")
    if generator_url and not is_request_uri(generator_url):
        return BodyError(
            422, 601, f"{index}.generatorURL in body must be of type uri: {go_quote(generator_url)}"
        )
    return None


def _str_values_python(d: dict[str, Any]) -> bool:
    """True if every value of ``d`` is exactly a ``str``."""
    return all(type(v) is str for v in d.values())


def _str_dict_interned_python(d: dict[str, Any]) -> dict[str, str] | None:
    """The C ``str_dict_interned``'s fallback: :func:`_shared_keys` of ``d`` when every
    value is exactly a ``str``, else None."""
    return _shared_keys(d) if _str_values_python(d) else None


_str_dict_interned: Callable[[dict[str, Any]], dict[str, str] | None]
try:
    # C version from daemon/_speedups.c (optional build): the value check and the
    # interned copy in one pass each, without a comprehension per map.
    from daemon._speedups import str_dict_interned as _str_dict_interned
except ImportError:  # pragma: no cover - depends on the build
    _str_dict_interned = _str_dict_interned_python


def _shared_keys(d: dict[str, str]) -> dict[str, str]:
    """``d`` with interned keys. Items are decoded one at a time (in slices), so the
    decoder's per-document key sharing no longer spans a body: without this, every
    stored alert kept its own copy of "alertname", "instance" ... (about 400 bytes an
    alert at 100k alerts)."""
    intern = sys.intern
    return {intern(k): v for k, v in d.items()}


def parse_alerts(body: bytes) -> list[RawAlert]:
    """The posted alerts of a request body, or :class:`BodyError` as go-swagger reports it."""
    return run_steps(parse_alerts_steps(body))


#: What a postable alert has of a webhook payload's alert (status and fingerprint are
#: derived, not posted: the status is carried by ``endsAt``).
_WEBHOOK_ALERT_FIELDS = ("labels", "annotations", "startsAt", "endsAt", "generatorURL")


def webhook_payload_alerts(alerts: list[Any]) -> list[Any]:
    """Notification Manager's ingest shape: Alertmanager's webhook payload (a JSON
    object), whose ``alerts[]`` are ingested as posted alerts. A firing alert there has
    the zero ``endsAt``, a resolved one its real end, so each keeps its status."""
    return [
        {k: item[k] for k in _WEBHOOK_ALERT_FIELDS if k in item} if isinstance(item, dict) else item
        for item in alerts
    ]


def parse_alerts_steps(body: bytes) -> Steps[list[RawAlert]]:
    """:func:`parse_alerts` in slices of :data:`STEP_ITEMS` alerts (see :data:`Steps`)."""
    doc = yield from decode_json_steps(body)
    if doc is None:
        return []
    if isinstance(doc, dict) and isinstance(doc.get("alerts"), list):
        doc = webhook_payload_alerts(doc["alerts"])
    if not isinstance(doc, list):
        raise BodyError(
            400,
            400,
            _PREFIX + f"json: cannot unmarshal {go_kind(doc)} into Go value of type "
            "models.PostableAlerts",
        )
    out: list[RawAlert] = []
    schema_error: BodyError | None = None
    uri_ok: dict[str, bool] = {}
    times: dict[str, int] = {}
    for index, item in enumerate(doc):
        if index % STEP_ITEMS == STEP_ITEMS - 1:
            yield
        if item is None:
            # Alertmanager 0.25 crashes the request on a null item; reject it as unlabelled.
            schema_error = schema_error or BodyError(
                422, 602, f"{index}.labels in body is required"
            )
            continue
        # Fast path: exact keys and well-typed values, as every real client sends.
        if type(item) is dict and item.keys() <= _FIELDS:
            labels = item.get("labels")
            annotations = item.get("annotations")
            starts = item.get("startsAt")
            ends = item.get("endsAt")
            url = item.get("generatorURL")
            shared_labels = shared_notes = None
            if (
                type(labels) is dict
                and (annotations is None or type(annotations) is dict)
                and (starts is None or type(starts) is str)
                and (ends is None or type(ends) is str)
                and (url is None or type(url) is str)
            ):
                shared_labels = _str_dict_interned(labels)
                shared_notes = _str_dict_interned(annotations) if annotations else {}
            if shared_labels is not None and shared_notes is not None:
                starts_at = ZERO_TIME
                if starts is not None:
                    starts_at = times.get(starts, ZERO_TIME - 1)
                    if starts_at == ZERO_TIME - 1:
                        starts_at = times[starts] = _time_field(starts, ".startsAt")
                ends_at = ZERO_TIME
                if ends is not None:
                    ends_at = times.get(ends, ZERO_TIME - 1)
                    if ends_at == ZERO_TIME - 1:
                        ends_at = times[ends] = _time_field(ends, ".endsAt")
                if url and schema_error is None:
                    ok = uri_ok.get(url)
                    if ok is None:
                        ok = uri_ok[url] = is_request_uri(url)
                    if not ok:
                        schema_error = _schema_error(index, True, url)
                out.append(
                    (
                        shared_labels,
                        shared_notes,
                        starts_at,
                        ends_at,
                        url or "",
                    )
                )
                continue
        raw, fields = _decode_item_slow(item)
        raw = (_shared_keys(raw[0]), _shared_keys(raw[1]), *raw[2:])
        if schema_error is None:
            assert fields is not None
            schema_error = _schema_error(index, fields.get("labels") is not None, raw[4])
        out.append(raw)
    if schema_error is not None:
        raise schema_error
    return out
