"""API v2 silence endpoints (spec §1.8-1.10), as Alertmanager 0.25 answers them.

Decoding a POST body follows go-swagger's generated ``PostableSilence``: the ``id``
part is decoded first, then the ``silence`` part. Within a part a wrong JSON type is
remembered and reported once the part is done (Go's ``json`` keeps the first type
error), while an unparsable date-time fails at once. Schema checks (422) come next,
in the generated order ``comment, createdBy, endsAt, matchers, startsAt``; the first
failure wins. Only then does the handler check times and call the store.

Handler errors are JSON strings; framework errors are ``{"code","message"}``.
"""

from __future__ import annotations

import json
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import attrs
from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from daemon.api.app import (
    ApiHandler,
    _empty_ok,
    _media_type_error,
    request_body,
    served_directly,
)
from daemon.api.backend import ApiBackend
from daemon.api.encoding import RawJson, body, framework_error, go_json
from daemon.api.postable import BodyError, decode_json, go_kind, parse_datetime, type_error
from daemon.gocompat.strconv import go_quote
from daemon.gocompat.timestamp import format_millis
from daemon.matcher import Matcher, MatcherError, MatchType, matcher_json, parse_filter
from daemon.persist import DurableState, JournalFull
from daemon.silence import codec as silencepb
from daemon.silence import recurring, windows
from daemon.silence.model import Silence, SilenceState
from daemon.silence.state import Plan, SilenceError, SilenceNotFound, Silences


class SilenceBackend(ApiBackend, Protocol):
    """An API backend that also holds the silence store."""

    @property
    def silences(self) -> Silences: ...


_PREFIX = 'parsing silence body from "" failed, because '
_ALERTS_PREFIX = 'parsing alerts body from "" failed, because '
_ID_STRUCT = 'struct { ID string "json:\\"id,omitempty\\"" }'
_SILENCE_FIELDS = ("comment", "createdBy", "endsAt", "matchers", "startsAt")
_MATCHER_FIELDS = ("name", "value", "isRegex", "isEqual")
# go-openapi's strfmt UUID: hex groups 8-4-4-4-12, each hyphen optional, any case.
_UUID = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE
)


@attrs.frozen
class PostedSilence:
    """A decoded, schema-valid postableSilence."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    created_by: str
    comment: str

    def to_silence(self) -> Silence:
        return Silence(
            id=self.id,
            matchers=self.matchers,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            created_by=self.created_by,
            comment=self.comment,
        )


def _fold(item: Mapping[str, Any], names: Sequence[str]) -> list[tuple[str, Any]]:
    """Keys matched to field names as Go does (exact, else case-insensitive), in order."""
    folded = {n.lower(): n for n in names}
    out = []
    for key, value in item.items():
        name = key if key in names else folded.get(key.lower())
        if name is not None:
            out.append((name, value))
    return out


def _make_matcher(name: str, value: str, is_regex: bool, is_equal: bool) -> Matcher:
    if is_regex:
        kind = MatchType.REGEXP if is_equal else MatchType.NOT_REGEXP
    else:
        kind = MatchType.EQUAL if is_equal else MatchType.NOT_EQUAL
    try:
        return Matcher.create(kind, name, value)
    except MatcherError:
        # Left uncompiled: the store's validation rejects it with Alertmanager's message
        # (before anything changes; upstream expires the old silence first).
        return Matcher(kind, name, value)


def _decode_matchers(value: Any, saved: list[str]) -> list[dict[str, Any] | None] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        saved.append(type_error(value, "Silence.matchers", "models.Matchers"))
        return None
    out: list[dict[str, Any] | None] = []
    for item in value:
        if item is None:
            out.append(None)
            continue
        if not isinstance(item, dict):
            saved.append(type_error(item, "Silence.matchers", "models.Matcher"))
            out.append({})
            continue
        fields: dict[str, Any] = {}
        for name, v in _fold(item, _MATCHER_FIELDS):
            want: type = bool if name in ("isRegex", "isEqual") else str
            if v is None:
                fields.pop(name, None)
            elif isinstance(v, want):
                fields[name] = v
            else:
                go_type = "bool" if want is bool else "string"
                saved.append(type_error(v, f"Matcher.matchers.{name}", go_type))
        out.append(fields)
    return out


def parse_silence(data: bytes) -> PostedSilence:
    """The posted silence of a request body, or :class:`BodyError` as go-swagger reports it."""
    if not data.strip(b" \t\r\n"):
        raise BodyError(422, 602, "silence in body is required")
    try:
        doc = decode_json(data)
    except BodyError as exc:
        raise BodyError(
            exc.status, exc.code, exc.message.replace(_ALERTS_PREFIX, _PREFIX, 1)
        ) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BodyError(
            400,
            400,
            _PREFIX + f"json: cannot unmarshal {go_kind(doc)} into Go value of type {_ID_STRUCT}",
        )
    saved: list[str] = []
    silence_id = ""
    for _, value in _fold(doc, ("id",)):
        if value is None:
            silence_id = ""
        elif isinstance(value, str):
            silence_id = value
        else:
            saved.append(type_error(value, ".id", "string"))
    if saved:
        raise BodyError(400, 400, _PREFIX + saved[0])
    fields: dict[str, Any] = {}
    for name, value in _fold(doc, _SILENCE_FIELDS):
        if name in ("startsAt", "endsAt"):
            if value is None:
                fields.pop(name, None)
                continue
            if not isinstance(value, str):
                raise BodyError(400, 400, _PREFIX + type_error(value, f"Silence.{name}", "string"))
            try:
                fields[name] = parse_datetime(value)
            except ValueError as exc:
                raise BodyError(400, 400, _PREFIX + str(exc)) from None
        elif name == "matchers":
            fields[name] = _decode_matchers(value, saved)
        elif value is None:
            fields.pop(name, None)
        elif isinstance(value, str):
            fields[name] = value
        else:
            saved.append(type_error(value, f"Silence.{name}", "string"))
    if saved:
        raise BodyError(400, 400, _PREFIX + saved[0])
    for name in _SILENCE_FIELDS:
        if fields.get(name) is None:
            raise BodyError(422, 602, f"{name} in body is required")
        if name == "matchers":
            items: list[dict[str, Any] | None] = fields[name]
            if not items:
                raise BodyError(422, 612, "matchers in body should have at least 1 items")
            for i, item in enumerate(items):
                if item is None:
                    # Alertmanager 0.25 drops the connection here; we refuse it cleanly.
                    raise BodyError(422, 602, f"matchers.{i} in body is required")
                for required in ("isRegex", "name", "value"):
                    if required not in item:
                        raise BodyError(422, 602, f"matchers.{i}.{required} in body is required")
    raw_matchers: list[dict[str, Any]] = fields["matchers"]
    return PostedSilence(
        id=silence_id,
        matchers=tuple(
            _make_matcher(m["name"], m["value"], m["isRegex"], m.get("isEqual", True))
            for m in raw_matchers
        ),
        starts_at=fields["startsAt"],
        ends_at=fields["endsAt"],
        created_by=fields["createdBy"],
        comment=fields["comment"],
    )


# --- encoding --------------------------------------------------------------------------


def gettable_silence(s: Silence, now: int) -> dict[str, Any]:
    """The ``gettableSilence`` object, keys in Alertmanager's order (then tocsin's
    ``recurrence`` on a recurring silence's window)."""
    out = {
        "id": s.id,
        "status": {"state": s.display_state(now).value},
        "updatedAt": format_millis(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": format_millis(s.ends_at),
        "matchers": [matcher_json(m) for m in s.matchers],
        "startsAt": format_millis(s.starts_at),
    }
    if s.recurrence is not None:
        out["recurrence"] = recurring.spec_json(s.recurrence)
    return out


#: Per store, each listed silence's encoded JSON: id -> (the record, its shown state, text).
#: A silence is immutable and its text only changes with its shown state, so a GET at 1k
#: silences joins stored texts instead of formatting 3k timestamps and 1k objects.
#: Keyed by ``id(store)`` (stores are unhashable); the entry goes when its store does.
_Listed = dict[str, tuple[Silence, SilenceState, str]]
_listed: dict[int, tuple[weakref.ref[Silences], _Listed]] = {}


def _listed_for(store: Silences) -> _Listed:
    entry = _listed.get(id(store))
    if entry is not None and entry[0]() is store:
        return entry[1]
    key = id(store)
    cache: _Listed = {}
    _listed[key] = (weakref.ref(store, lambda _: _listed.pop(key, None)), cache)
    return cache


def _listing(store: Silences, found: Sequence[Silence], now: int) -> RawJson:
    """The JSON array of ``found`` as GET /silences shows them at ``now``."""
    cache = _listed_for(store)
    parts = []
    for s in found:
        state = s.display_state(now)
        hit = cache.get(s.id)
        if hit is not None and hit[0] is s and hit[1] is state:
            parts.append(hit[2])
            continue
        text = go_json(gettable_silence(s, now))
        cache[s.id] = (s, state, text)
        parts.append(text)
    if len(cache) > 2 * len(store) + 64:
        # Silences deleted by GC: keep only what the store still holds.
        for sid in [sid for sid, (s, _, _) in cache.items() if store.get(sid) is not s]:
            del cache[sid]
    return RawJson("[" + ",".join(parts) + "]")


# --- handlers --------------------------------------------------------------------------


def _json(status: int, payload: bytes) -> Response:
    return Response(payload, status=status, content_type="application/json")


def _handler_error(status: int, message: str) -> Response:
    return _json(status, body(message))


def _no_body(status: int) -> Response:
    resp = Response(b"", status=status)
    del resp.headers["Content-Type"]
    return resp


def _store(backend: ApiBackend) -> Silences:
    return cast(SilenceBackend, backend).silences


async def _commit(backend: ApiBackend, plan: Plan) -> None:
    """Journal ``plan`` (fsync) and only then apply it, so a failed write changes nothing.

    Error handling: :class:`JournalFull` or ``OSError`` from the journal; nothing is
    live, gossiped or on disk then.
    """
    store = _store(backend)
    # The instance backend journals; a backend without ``silence_state`` is in memory.
    durable: DurableState | None = getattr(backend, "silence_state", None)
    if durable is None or not plan.records:
        store.apply(plan)
        return
    records = [silencepb.encode_mesh_silence(s, exp) for s, exp in plan.records]
    await durable.commit(records, lambda: store.apply(plan, records))


def _write_failed(what: str, exc: OSError) -> Response:
    """500 when the disk refused the write, 503 while the journal queue is full."""
    if isinstance(exc, JournalFull):
        return _handler_error(503, f"Failed to {what}: {exc}; retry later")
    return _handler_error(500, f"Failed to {what}: write to disk failed: {exc}")


def _bad_uuid(params: Mapping[str, str]) -> Response | None:
    raw = params.get("silenceID", "")
    if _UUID.fullmatch(raw) is None:
        message = f"silenceID in path must be of type uuid: {go_quote(raw)}"
        return _json(422, framework_error(601, message))
    return None


def request_filters() -> list[Matcher]:
    """The request's ``filter`` parameters; raises :class:`MatcherError` (a 400)."""
    return [parse_filter(text) for text in request.args.getlist("filter")]


async def get_silences(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """GET /api/v2/silences (spec §1.8): syntactic filters, API sort order."""
    try:
        filters = request_filters()
    except MatcherError as exc:
        return _handler_error(400, str(exc))
    now = backend.clock.now()
    store = _store(backend)
    return _json(200, body(_listing(store, store.query(filters, now), now)))


async def accept_silences(
    backend: ApiBackend,
    content_type: str | None,
    read_body: Callable[[], Awaitable[bytes]],
    max_body_bytes: int | None,
) -> Response:
    """The work of :func:`post_silences`, apart from the framework: ``read_body``
    returns the whole body or raises ``RequestEntityTooLarge`` past ``max_body_bytes``."""
    error = _media_type_error(content_type)
    if error is not None:
        return error
    try:
        raw = await read_body()
    except RequestEntityTooLarge:
        message = f"request body too large (limit {max_body_bytes} bytes)"
        return _json(413, framework_error(413, message))
    # A JSON escape could spell the key another way; then the body is decoded to look.
    if b'"recurrence"' in raw or b"\\u" in raw:
        answer = await post_recurring(backend, raw)
        if answer is not None:
            return answer
    try:
        posted = parse_silence(raw)
    except BodyError as exc:
        return _json(exc.status, framework_error(exc.code, exc.message))
    if posted.starts_at >= posted.ends_at:
        return _handler_error(400, "Failed to create silence: start time must be before end time")
    now = backend.clock.now()
    if posted.ends_at < now:
        return _handler_error(400, "Failed to create silence: end time can't be in the past")
    silence = posted.to_silence()
    prev = _store(backend).get(posted.id) if posted.id else None
    if prev is not None and prev.recurrence is not None:
        # An edited window stays part of its recurring silence (clients do not send it).
        silence = attrs.evolve(silence, recurrence=prev.recurrence)
    try:
        plan = _store(backend).plan_set(silence, now)
    except SilenceNotFound as exc:
        return _handler_error(404, str(exc))
    except SilenceError as exc:
        return _handler_error(400, str(exc))
    return await _commit_created(backend, plan, {"silenceID": plan.silence_id})


@served_directly(accept_silences)
async def post_silences(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """POST /api/v2/silences (spec §1.9): create, update in place, or replace."""
    return await accept_silences(
        backend, request.headers.get("Content-Type"), request_body, request.max_content_length
    )


async def _commit_created(backend: ApiBackend, plan: Plan, answer: dict[str, str]) -> Response:
    """Commit a create or update plan; 200 with ``answer``, or the write's failure."""
    try:
        await _commit(backend, plan)
    except OSError as exc:
        return _write_failed("create silence", exc)
    return _json(200, body(answer))


async def post_recurring(backend: ApiBackend, data: bytes) -> Response | None:
    """POST /api/v2/silences with tocsin's ``recurrence``: a new recurring silence.

    ``startsAt`` (default now) is when it begins and ``endsAt`` (optional) when it ends;
    its windows are written as silences (:mod:`daemon.silence.windows`). The answer's
    ``silenceID`` is the first window's; ``recurrenceID`` names the recurring silence.
    None when the body has no top-level ``recurrence``: the ordinary path answers it.
    """
    try:
        doc = decode_json(data)
    except BodyError:
        doc = None
    if not isinstance(doc, dict) or "recurrence" not in doc:
        return None
    now = backend.clock.now()
    try:
        rec = recurring.parse_posted(doc.pop("recurrence"))
    except recurring.ScheduleError as exc:
        return _handler_error(400, f"Failed to create silence: {exc}")
    if doc.get("id"):
        return _handler_error(
            400, "Failed to create silence: a recurring silence is always new; leave out id"
        )
    until_given = doc.get("endsAt") is not None
    doc["startsAt"] = doc.get("startsAt") or format_millis(now)
    doc["endsAt"] = doc.get("endsAt") or format_millis(now)  # only read when given
    try:
        posted = parse_silence(json.dumps(doc).encode())
    except BodyError as exc:
        return _json(exc.status, framework_error(exc.code, exc.message))
    since = max(posted.starts_at, now)
    until = posted.ends_at if until_given else None
    if until is not None and until <= since:
        return _handler_error(
            400, "Failed to create silence: end time must be after start time and now"
        )
    spec = recurring.RecurrenceSpec(
        str(uuid.uuid4()), rec.schedule, rec.duration, rec.time_zone, since, until
    )
    try:
        spec.check()
        plan = windows.plan_new(_store(backend), posted.to_silence(), spec, now)
    except recurring.ScheduleError as exc:
        return _handler_error(400, f"Failed to create silence: {exc}")
    except SilenceError as exc:
        return _handler_error(400, str(exc))
    return await _commit_created(
        backend, plan, {"silenceID": plan.silence_id, "recurrenceID": spec.id}
    )


async def get_silence(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """GET /api/v2/silence/{silenceID} (spec §1.10): 404 with an empty body if unknown."""
    bad = _bad_uuid(params)
    if bad is not None:
        return bad
    found = _store(backend).get(params["silenceID"])
    if found is None:
        return _no_body(404)
    return _json(200, body(gettable_silence(found, backend.clock.now())))


async def delete_silence(backend: ApiBackend, params: Mapping[str, str]) -> Response:
    """DELETE /api/v2/silence/{silenceID}: expire; unknown IDs answer 500 as in 0.25."""
    bad = _bad_uuid(params)
    if bad is not None:
        return bad
    store = _store(backend)
    found = store.get(params["silenceID"])
    try:
        if found is not None and found.recurrence is not None:
            # Expiring any window of a recurring silence ends the recurring silence.
            plan = windows.plan_end(store, found.recurrence.id, backend.clock.now())
        else:
            plan = store.plan_expire(params["silenceID"], backend.clock.now())
    except SilenceNotFound as exc:
        return _handler_error(500, str(exc))
    try:
        await _commit(backend, plan)
    except OSError as exc:
        return _write_failed("expire silence", exc)
    return _empty_ok()


def silence_routes() -> dict[str, dict[str, ApiHandler]]:
    """Paths to merge into :func:`daemon.api.app.default_api_routes` (``Allow`` order)."""
    return {
        "silences": {"POST": post_silences, "GET": get_silences},
        "silence/{silenceID}": {"DELETE": delete_silence, "GET": get_silence},
    }
