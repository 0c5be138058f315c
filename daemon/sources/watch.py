"""``--events.kubeconfig`` / ``--events.watch``: core/v1 Events straight from the API server.

httpx on trio against the Kubernetes API (the issue allows it: lightkube's async watch
retries with ``asyncio.sleep``, which fails under trio). The protocol is Kubernetes'
list-then-watch, as client-go's reflector runs it:

1. **List** ``GET /api/v1/events?limit=500`` page by page (``continue``); the list's
   ``metadata.resourceVersion`` is where the watch starts. Listed events go through the
   rules like posted ones, except events last seen longer ago than
   ``--events.resolve-after``: their alert would have resolved already, so a restart
   does not fire alerts for old history (kube-events' exporter does).
2. **Watch** ``GET /api/v1/events?watch=1&resourceVersion=RV&allowWatchBookmarks=true
   &timeoutSeconds=N``: a chunked stream of ``{"type": ..., "object": ...}`` lines.
   ``ADDED``/``MODIFIED`` events go through the rules; ``DELETED`` only moves the
   resourceVersion on; ``BOOKMARK`` carries nothing but a newer resourceVersion. When the
   stream ends (the server's timeout), the watch resumes from the last resourceVersion.
3. **410 Gone** (an ``ERROR`` line with code 410, or a 410 answer): the resourceVersion
   is too old (etcd compacted it), so list again. Events seen before are recognised by
   uid and count (:mod:`daemon.sources.resolve`) and do not fire again.
4. **Errors** (connection, 5xx, a broken line): retry after an exponential backoff
   (:func:`watch_backoff`), reset by the first good answer.

Credentials: a kubeconfig's current context (server, CA, client certificate, bearer
token or token file, basic auth), or the pod's service account (``KUBERNETES_SERVICE_HOST``
and ``/var/run/secrets/kubernetes.io/serviceaccount``). Token files are re-read for every
request: bound service-account tokens rotate.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import httpx
import structlog
import trio
import yaml

from daemon.clock import Clock
from daemon.gocompat.timestamp import TimestampError, parse_rfc3339
from daemon.sources import Put
from daemon.sources import metrics as sm
from daemon.sources.intake import EventIntake
from daemon.sources.kubeevents import DecodeError, kube_events_of

log = structlog.get_logger("tocsin.sources")

T = TypeVar("T")

#: Seconds the API server keeps one watch open (client-go picks 5-10 minutes).
WATCH_SECONDS = 300
#: Events per list page.
LIST_PAGE = 500
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FIRST_BACKOFF = 0.8
MAX_BACKOFF = 30.0


class WatchConfigError(Exception):
    """Credentials that cannot be used; the text names the file and the problem."""


class Gone(Exception):
    """The API server no longer has the resourceVersion asked for (410)."""


def watch_backoff(failures: int, first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait after ``failures`` failures in a row (client-go's 800 ms doubling
    to 30 s)."""
    return float(min(first * 2 ** (failures - 1), cap))


def last_seen(event: Mapping[str, Any]) -> int | None:
    """When the event last happened (Unix ns), from the fields that say so, or None."""
    series = event.get("series")
    candidates = (
        series.get("lastObservedTime") if isinstance(series, dict) else None,
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
    )
    for value in candidates:
        if isinstance(value, str) and value:
            try:
                return parse_rfc3339(value)
            except TimestampError:
                continue
    return None


@attrs.frozen
class ApiServer:
    """Where the API server is and how to authenticate to it."""

    server: str
    verify: ssl.SSLContext | bool = True
    token: str = ""
    token_file: str = ""
    basic_auth: tuple[str, str] | None = None

    def headers(self) -> dict[str, str]:
        """Request headers; reads the token file each time (tokens rotate)."""
        token = self.token
        if self.token_file:
            token = Path(self.token_file).read_text().strip()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.basic_auth is not None:
            raw = f"{self.basic_auth[0]}:{self.basic_auth[1]}".encode()
            return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}
        return {}


def _named(items: Any, name: str, what: str, path: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            found: dict[str, Any] = item[what]
            return found
    raise WatchConfigError(f"{path}: no {what} named {name!r}")


def _tls_context(
    cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path, path: str
) -> ssl.SSLContext | bool:
    if cluster.get("insecure-skip-tls-verify") is True:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context()
        try:
            if cluster.get("certificate-authority-data"):
                ctx.load_verify_locations(
                    cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
                )
            elif cluster.get("certificate-authority"):
                ctx.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise WatchConfigError(f"{path}: certificate-authority: {exc}") from None
    cert, key = user.get("client-certificate"), user.get("client-key")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    try:
        if cert and key:
            ctx.load_cert_chain(str(base / cert), str(base / key))
        elif cert_data and key_data:
            # ssl loads a chain from files only: a private temporary directory, removed
            # as soon as the context holds the key.
            with tempfile.TemporaryDirectory(prefix="tocsin-kube-") as tmp:
                cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert_path.write_bytes(base64.b64decode(cert_data))
                key_path.write_bytes(base64.b64decode(key_data))
                ctx.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise WatchConfigError(f"{path}: client certificate: {exc}") from None
    return ctx


def load_kubeconfig(path: str) -> ApiServer:
    """The current context of a kubeconfig file (blocking).

    Raises:
        WatchConfigError: unreadable, no current context, or an auth method tocsin does
            not run (``exec`` and ``auth-provider`` plugins).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WatchConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise WatchConfigError(f"{path}: not a kubeconfig (want a YAML map)")
    current = data.get("current-context")
    if not isinstance(current, str) or not current:
        raise WatchConfigError(f"{path}: current-context is not set")
    context = _named(data.get("contexts"), current, "context", path)
    cluster = _named(data.get("clusters"), str(context.get("cluster")), "cluster", path)
    user_name = context.get("user")
    user = _named(data.get("users"), str(user_name), "user", path) if user_name else {}
    for plugin in ("exec", "auth-provider"):
        if plugin in user:
            raise WatchConfigError(
                f"{path}: user {user_name!r} authenticates with {plugin}, which tocsin does "
                "not run; use a token, token file or client certificate"
            )
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise WatchConfigError(f"{path}: cluster {context.get('cluster')!r} has no http(s) server")
    base = Path(path).resolve().parent
    verify = _tls_context(cluster, user, base, path) if server.startswith("https://") else True
    token_file = user.get("tokenFile") or ""
    basic = None
    if user.get("username") is not None and user.get("password") is not None:
        basic = (str(user["username"]), str(user["password"]))
    return ApiServer(
        server=server.rstrip("/"),
        verify=verify,
        token=str(user.get("token") or ""),
        token_file=str(base / token_file) if token_file else "",
        basic_auth=basic,
    )


def in_cluster(environ: Mapping[str, str] | None = None, root: Path = SERVICE_ACCOUNT) -> ApiServer:
    """The pod's service account, as client-go's ``InClusterConfig`` finds it (blocking)."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise WatchConfigError(
            "--events.watch without --events.kubeconfig needs to run in a pod "
            "(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)"
        )
    token = root / "token"
    if not token.is_file():
        raise WatchConfigError(f"{token}: no service-account token")
    ctx = ssl.create_default_context()
    try:
        ctx.load_verify_locations(cafile=str(root / "ca.crt"))
    except (OSError, ssl.SSLError) as exc:
        raise WatchConfigError(f"{root / 'ca.crt'}: {exc}") from None
    host = f"[{host}]" if ":" in host else host
    return ApiServer(server=f"https://{host}:{port}", verify=ctx, token_file=str(token))


async def _run_sliced(steps: Generator[None, None, T]) -> T:
    """Run ``steps`` to its end with a trio checkpoint at every yield; its result.

    Cancellation: stops between two slices; the generator is closed.
    """
    try:
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: T = done.value
                return result
            await trio.lowlevel.checkpoint()
    finally:
        steps.close()


class EventWatch:
    """Lists and watches core/v1 Events and hands them to the intake (see module doc).

    Cancellation: stops wherever it waits; nothing half-applied (each event or list page
    is applied whole by the intake).
    Error handling: every failure is logged, counted (``tocsin_event_watch_restarts_total``)
    and retried after a backoff; nothing here stops the daemon.
    """

    name = "kubernetes-watch"

    def __init__(
        self,
        api: ApiServer,
        intake: EventIntake,
        clock: Clock,
        *,
        resolve_window: int,
        watch_seconds: int = WATCH_SECONDS,
        first_backoff: float = FIRST_BACKOFF,
    ) -> None:
        self.api = api
        self.intake = intake
        self.clock = clock
        self.resolve_window = resolve_window
        self.watch_seconds = watch_seconds
        self.first_backoff = first_backoff
        #: The resourceVersion the next watch starts from; None means list first.
        self.resource_version: str | None = None

    async def run(
        self, put: Put, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Watch until cancelled (``put`` is unused: the intake puts through its actor)."""
        timeout = httpx.Timeout(10.0, read=self.watch_seconds + 30.0)
        async with httpx.AsyncClient(verify=self.api.verify, timeout=timeout) as client:
            task_status.started()
            failures = 0
            while True:
                try:
                    if self.resource_version is None:
                        self.resource_version = await self._list(client)
                        failures = 0
                    if await self._watch(client):
                        failures = 0
                    sm.watch_restarts.labels("closed").inc()
                except Gone:
                    sm.watch_restarts.labels("gone").inc()
                    log.info("event_watch.gone", resource_version=self.resource_version)
                    self.resource_version = None
                except (httpx.HTTPError, OSError, ValueError, DecodeError) as exc:
                    failures += 1
                    sm.watch_restarts.labels("error").inc()
                    delay = watch_backoff(failures, self.first_backoff)
                    log.warning(
                        "event_watch.failed",
                        server=self.api.server,
                        err=f"{type(exc).__name__}: {exc}",
                        retry_in=delay,
                    )
                    await trio.sleep(delay)

    async def _headers(self) -> dict[str, str]:
        # A token file is read in a thread: it is a file read on every request.
        return await trio.to_thread.run_sync(self.api.headers)

    def _check(self, response: httpx.Response) -> None:
        if response.status_code == 410:
            raise Gone()
        if response.status_code != 200:
            raise ValueError(f"{response.request.url.path}: status {response.status_code}")

    async def _list(self, client: httpx.AsyncClient) -> str:
        """List every event page by page; apply the fresh ones; the list's resourceVersion."""
        params: dict[str, str | int] = {"limit": LIST_PAGE}
        while True:
            response = await client.get(
                f"{self.api.server}/api/v1/events", params=params, headers=await self._headers()
            )
            if response.status_code == 410 and "continue" in params:
                # The continue token expired mid-list: start the list over.
                params = {"limit": LIST_PAGE}
                continue
            self._check(response)
            body = response.json()
            meta = body.get("metadata") if isinstance(body, dict) else None
            if not isinstance(meta, dict) or not isinstance(meta.get("resourceVersion"), str):
                raise ValueError("list answer has no metadata.resourceVersion")
            events = kube_events_of(body)
            horizon = self.clock.now() - self.resolve_window
            fresh = [e for e in events if (last_seen(e) or horizon) >= horizon]
            sm.watch_events.labels("LISTED").inc(len(events))
            await self._apply(fresh)
            token = meta.get("continue")
            if not token:
                return str(meta["resourceVersion"])
            params = {"limit": LIST_PAGE, "continue": str(token)}

    async def _watch(self, client: httpx.AsyncClient) -> bool:
        """One watch request, to its end; True if the server answered it."""
        params: dict[str, str | int] = {
            "watch": 1,
            "resourceVersion": self.resource_version or "",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.watch_seconds,
        }
        async with client.stream(
            "GET", f"{self.api.server}/api/v1/events", params=params, headers=await self._headers()
        ) as response:
            self._check(response)
            # The stream is read to its end even after an ERROR line (the server ends it
            # there): leaving httpx's body iterators half-read makes trio finalize them
            # unexhausted. A line that cannot be used is logged and skipped.
            ended_by: Exception | None = None
            async for line in response.aiter_lines():
                if line.strip() and ended_by is None:
                    ended_by = await self._on_line(line)
        if ended_by is not None:
            raise ended_by
        return True

    async def _on_line(self, line: str) -> Exception | None:
        """Apply one watch line; the error that ends this watch, if it says so."""
        try:
            message = json.loads(line)
        except ValueError as exc:
            self._skip(f"watch line is not JSON: {exc}")
            return None
        kind = message.get("type") if isinstance(message, dict) else None
        obj = message.get("object") if isinstance(message, dict) else None
        if not isinstance(kind, str) or not isinstance(obj, dict):
            self._skip("watch line has no type and object")
            return None
        sm.watch_events.labels(kind).inc()
        if kind == "ERROR":
            if obj.get("code") == 410:
                return Gone()
            return ValueError(f"watch error: {obj.get('message') or obj}")
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind in ("ADDED", "MODIFIED"):
            try:
                events = kube_events_of(obj)
            except DecodeError as exc:
                # Skipped, and the resourceVersion moves past it: it would never decode.
                self._skip(f"watch object is not an Event: {exc.problem}")
            else:
                await self._apply(events)
        if isinstance(version, str) and version:
            self.resource_version = version
        return None

    def _skip(self, problem: str) -> None:
        sm.watch_events.labels("INVALID").inc()
        log.warning("event_watch.bad_line", server=self.api.server, err=problem)

    async def _apply(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        sm.bodies_received.labels("events").inc()
        evaluation = await _run_sliced(self.intake.evaluate_steps("events", events))
        await self.intake.apply(evaluation)


__all__ = [
    "ApiServer",
    "EventWatch",
    "WatchConfigError",
    "in_cluster",
    "last_seen",
    "load_kubeconfig",
    "watch_backoff",
]
