"""A stand-in Kubernetes API server for core/v1 Events: list and watch, nothing else.

No API server can run on these machines, so the watch client is tested against this. It
speaks the real protocol as far as the client sees it:

* ``GET /api/v1/events?limit=N[&continue=T]``: an ``EventList`` page with
  ``metadata.resourceVersion`` and ``metadata.continue``;
* ``GET /api/v1/events?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=S``:
  HTTP/1.1 chunked ``application/json`` with one ``{"type", "object"}`` line a chunk;
  every change after RV first, then changes as they happen, ``BOOKMARK`` lines when asked,
  until ``timeoutSeconds`` or :meth:`FakeApiServer.end_watches`;
* a resourceVersion older than the last :meth:`FakeApiServer.compact` gets what a real API
  server sends: 200 and one ``ERROR`` line whose Status has ``code: 410`` (reason
  ``Expired``); with ``gone_status=True`` it answers HTTP 410 instead (older servers);
* a bearer token is required (401 otherwise).

A thread-served HTTP server, so both trio tests and a real tocsin process can use it.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "stand-in-token"


class FakeApiServer:
    def __init__(self, *, gone_status: bool = False) -> None:
        self.lock = threading.Condition()
        self.version = 100
        #: (resourceVersion, type, object), oldest first.
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.compacted = 0
        self.generation = 0  # bumped by end_watches
        self.bookmarks = 0
        self.gone_status = gone_status
        #: Every request: (path, query as dict of first values).
        self.requests: list[dict[str, str]] = []
        self.failures_left = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end_watches()
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(5)

    # --- what tests do ------------------------------------------------------------------

    def put(self, event: dict[str, Any], kind: str = "") -> str:
        """Store ``event`` (ADDED if new, MODIFIED otherwise); its new resourceVersion."""
        with self.lock:
            self.version += 1
            obj = copy.deepcopy(event)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            uid = obj["metadata"]["uid"]
            kind = kind or ("MODIFIED" if uid in self.objects else "ADDED")
            if kind == "DELETED":
                self.objects.pop(uid, None)
            else:
                self.objects[uid] = obj
            self.history.append((self.version, kind, obj))
            self.lock.notify_all()
            return str(self.version)

    def compact(self) -> None:
        """Forget history: any resourceVersion up to now is too old to watch from."""
        with self.lock:
            self.compacted = self.version
            self.history.clear()

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion on every open watch."""
        with self.lock:
            self.bookmarks += 1
            self.lock.notify_all()

    def end_watches(self) -> None:
        """End every open watch stream, as the server's timeout would."""
        with self.lock:
            self.generation += 1
            self.lock.notify_all()

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` requests with 500."""
        with self.lock:
            self.failures_left = count

    def watches(self) -> list[dict[str, str]]:
        with self.lock:
            return [q for q in self.requests if q.get("watch")]

    def lists(self) -> list[dict[str, str]]:
        with self.lock:
            return [q for q in self.requests if not q.get("watch")]

    # --- serving ------------------------------------------------------------------------

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append(query)
            fail = self.failures_left > 0
            if fail:
                self.failures_left -= 1
        if fail:
            return self._json(h, 500, {"kind": "Status", "code": 500, "message": "boom"})
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json(h, 401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
        if parts.path != "/api/v1/events":
            return self._json(h, 404, {"kind": "Status", "code": 404})
        if query.get("watch") in ("1", "true"):
            return self._watch(h, query)
        return self._list(h, query)

    def _json(self, h: http.server.BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _list(self, h: http.server.BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        limit = int(query.get("limit", "0") or 0)
        start = int(query.get("continue", "0") or 0)
        with self.lock:
            items = sorted(
                self.objects.values(), key=lambda o: int(o["metadata"]["resourceVersion"])
            )
            version = str(self.version)
        page = items[start : start + limit] if limit else items[start:]
        more = bool(limit) and start + limit < len(items)
        meta: dict[str, Any] = {"resourceVersion": version}
        if more:
            meta["continue"] = str(start + limit)
        self._json(
            h, 200, {"kind": "EventList", "apiVersion": "v1", "metadata": meta, "items": page}
        )

    def _chunk(self, h: http.server.BaseHTTPRequestHandler, line: dict[str, Any]) -> None:
        data = json.dumps(line).encode() + b"\n"
        h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        h.wfile.flush()

    def _watch(self, h: http.server.BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        since = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + int(query.get("timeoutSeconds", "300"))
        bookmarks_allowed = query.get("allowWatchBookmarks") == "true"
        with self.lock:
            too_old = since < self.compacted
        if too_old and self.gone_status:
            return self._json(h, 410, {"kind": "Status", "code": 410, "reason": "Expired"})
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            if too_old:
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self.compacted + 1})",
                    "reason": "Expired",
                    "code": 410,
                }
                self._chunk(h, {"type": "ERROR", "object": status})
                return
            with self.lock:
                generation, bookmarks = self.generation, self.bookmarks
            sent = since
            while True:
                with self.lock:
                    self.lock.wait_for(
                        lambda b=bookmarks, s=sent: (
                            self.generation != generation
                            or self.bookmarks != b
                            or bool(self.history and self.history[-1][0] > s)
                        ),
                        timeout=max(0.0, deadline - time.monotonic()),
                    )
                    pending = [(v, k, o) for v, k, o in self.history if v > sent]
                    ended = self.generation != generation or time.monotonic() >= deadline
                    mark = self.bookmarks != bookmarks
                    bookmarks = self.bookmarks
                    version = self.version
                for v, kind, obj in pending:
                    self._chunk(h, {"type": kind, "object": obj})
                    sent = v
                if mark and bookmarks_allowed:
                    bookmark = {
                        "kind": "Event",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(version)},
                    }
                    self._chunk(h, {"type": "BOOKMARK", "object": bookmark})
                    sent = max(sent, version)
                if ended:
                    return
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            try:
                h.wfile.write(b"0\r\n\r\n")
                h.wfile.flush()
            except OSError:
                pass
