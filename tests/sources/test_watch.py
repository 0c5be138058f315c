"""The API-server watch against a stand-in that speaks list and watch (chunked JSON
lines, bookmarks, 410 Gone): resume, re-list, backoff, credentials."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.alert import Alert
from daemon.clock import NS_PER_SECOND, FixedClock
from daemon.gocompat.timestamp import parse_rfc3339
from daemon.metrics import REGISTRY
from daemon.sources.intake import EventIntake
from daemon.sources.rulesets import RuleFiles
from daemon.sources.watch import (
    ApiServer,
    EventWatch,
    WatchConfigError,
    in_cluster,
    last_seen,
    load_kubeconfig,
    watch_backoff,
)
from tests.sources.kube_apiserver import TOKEN, FakeApiServer

NOW = "2024-03-05T10:20:00Z"
RULES = """
apiVersion: events.kubesphere.io/v1alpha1
kind: Rule
metadata:
  name: watch
  namespace: kubesphere-logging-system
  labels: {kubesphere.io/rule-scope: cluster}
spec:
  rules:
    - {name: PodBackOff, type: alert, enable: true, condition: 'reason = "BackOff"'}
"""


def event(uid: str, pod: str, count: int = 1, last: str = "2024-03-05T10:19:00Z") -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": f"{pod}.17b9", "namespace": "shop", "uid": uid},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": "shop"},
        "reason": "BackOff",
        "type": "Warning",
        "count": count,
        "lastTimestamp": last,
    }


class Puts:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def __call__(self, alerts: Sequence[Alert], now: int) -> None:
        self.alerts.extend(alerts)

    def pods(self) -> list[str]:
        return [a.labels["pod"] for a in self.alerts]


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await trio.sleep(0.02)
    raise AssertionError("condition not reached")


def restarts(reason: str) -> float:
    return REGISTRY.get_sample_value("tocsin_event_watch_restarts_total", {"reason": reason}) or 0.0


async def watching(tmp_path: Path, server: FakeApiServer, body: Callable[..., Any]) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    clock = FixedClock(parse_rfc3339(NOW))
    intake = EventIntake(
        RuleFiles(events=[str(tmp_path / "rules.yaml")]).load(),
        clock,
        default_resolve_after=15 * 60 * NS_PER_SECOND,
    )
    watch = EventWatch(
        ApiServer(server.url, token=TOKEN),
        intake,
        clock,
        resolve_window=15 * 60 * NS_PER_SECOND,
        first_backoff=0.05,
    )
    puts = Puts()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(intake.run, puts)
            await nursery.start(watch.run, puts)
            await body(puts, watch)
            nursery.cancel_scope.cancel()


async def test_lists_fresh_events_then_watches_and_resumes(tmp_path: Path) -> None:
    """Listed: the recent event fires, the hour-old one does not; watched: a new event
    fires; after the stream ends and after a bookmark, the watch resumes from the last
    resourceVersion, never re-listing."""
    with FakeApiServer() as server:
        server.put(event("u1", "web-0"))
        server.put(event("u2", "old-0", last="2024-03-05T09:00:00Z"))

        async def body(puts: Puts, watch: EventWatch) -> None:
            await until(lambda: len(server.watches()) == 1)
            assert puts.pods() == ["web-0"]
            assert server.watches()[0]["resourceVersion"] == "102"
            assert server.watches()[0]["allowWatchBookmarks"] == "true"
            server.put(event("u3", "web-1"))
            await until(lambda: puts.pods() == ["web-0", "web-1"])
            server.end_watches()
            await until(lambda: len(server.watches()) == 2)
            assert server.watches()[1]["resourceVersion"] == "103"
            server.put(event("u9", "other", last="2024-03-05T10:19:30Z") | {"reason": "Pulled"})
            server.bookmark()
            await until(lambda: watch.resource_version == "104")
            server.end_watches()
            await until(lambda: len(server.watches()) == 3)
            assert server.watches()[2]["resourceVersion"] == "104"
            assert len(server.lists()) == 1

        await watching(tmp_path, server, body)


async def test_a_count_bump_refires_and_a_repeat_does_not(tmp_path: Path) -> None:
    """MODIFIED with a higher count is a recurrence (the alert is put again); a MODIFIED
    that changes nothing the resolver looks at is not."""
    with FakeApiServer() as server:

        async def body(puts: Puts, watch: EventWatch) -> None:
            await until(lambda: len(server.watches()) == 1)
            server.put(event("u1", "web-0", count=1))
            await until(lambda: len(puts.alerts) == 1)
            server.put(event("u1", "web-0", count=2))
            await until(lambda: len(puts.alerts) == 2)
            version = server.put(event("u1", "web-0", count=2))
            await until(lambda: watch.resource_version == version)
            assert len(puts.alerts) == 2

        await watching(tmp_path, server, body)


@pytest.mark.parametrize("gone_status", [False, True], ids=["error-line", "http-410"])
async def test_gone_relists_without_refiring_seen_events(tmp_path: Path, gone_status: bool) -> None:
    """A compacted resourceVersion (410 as an ERROR line, or as the answer) makes the
    client list again; events it saw do not fire again, one that came meanwhile does."""
    with FakeApiServer(gone_status=gone_status) as server:
        server.put(event("u1", "web-0"))
        before = restarts("gone")

        async def body(puts: Puts, watch: EventWatch) -> None:
            await until(lambda: len(server.watches()) == 1)
            server.compact()
            server.put(event("u2", "web-1"))
            server.compact()
            server.end_watches()
            await until(lambda: len(server.lists()) == 2 and len(server.watches()) >= 3)
            assert puts.pods() == ["web-0", "web-1"]
            assert restarts("gone") == before + 1

        await watching(tmp_path, server, body)


async def test_failures_back_off_and_recover(tmp_path: Path) -> None:
    """Three 500s in a row are retried after a backoff, counted, and then the list and
    watch go on as normal."""
    with FakeApiServer() as server:
        server.put(event("u1", "web-0"))
        server.fail_next(3)
        before = restarts("error")

        async def body(puts: Puts, watch: EventWatch) -> None:
            await until(lambda: len(server.watches()) == 1)
            assert puts.pods() == ["web-0"]
            assert restarts("error") == before + 3

        await watching(tmp_path, server, body)


def test_watch_backoff_doubles_to_its_cap() -> None:
    """800 ms doubling, at most 30 s, as client-go's reflector."""
    assert [watch_backoff(n) for n in (1, 2, 3)] == [0.8, 1.6, 3.2]
    assert watch_backoff(50) == 30.0


def test_last_seen_prefers_series_then_last_timestamp() -> None:
    """The newest field that says when the event happened wins; none gives None."""
    assert last_seen({"lastTimestamp": "2024-03-05T10:00:00Z"}) == parse_rfc3339(
        "2024-03-05T10:00:00Z"
    )
    series = {"series": {"lastObservedTime": "2024-03-05T11:00:00.5Z"}, "lastTimestamp": None}
    assert last_seen(series) == parse_rfc3339("2024-03-05T11:00:00.5Z")
    assert last_seen({"eventTime": None}) is None


KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: prod
contexts:
  - name: prod
    context: {cluster: prod, user: watcher}
clusters:
  - name: prod
    cluster: {server: 'http://127.0.0.1:6443'}
users:
  - name: watcher
    user: {tokenFile: token}
"""


def test_kubeconfig_token_file_is_relative_and_reread(tmp_path: Path) -> None:
    """tokenFile resolves next to the kubeconfig and is read again for each request."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    (tmp_path / "token").write_text("one\n")
    api = load_kubeconfig(str(path))
    assert api.server == "http://127.0.0.1:6443"
    assert api.headers() == {"Authorization": "Bearer one"}
    (tmp_path / "token").write_text("two\n")
    assert api.headers() == {"Authorization": "Bearer two"}


def test_kubeconfig_basic_auth_and_insecure_tls(tmp_path: Path) -> None:
    """username/password give Basic auth; insecure-skip-tls-verify turns checks off."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        KUBECONFIG.replace("http://", "https://")
        .replace("{server:", "{insecure-skip-tls-verify: true, server:")
        .replace("{tokenFile: token}", "{username: u, password: p}")
    )
    api = load_kubeconfig(str(path))
    assert api.headers() == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    assert not isinstance(api.verify, bool) and api.verify.check_hostname is False


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("current-context: prod", "current-context: dev"), "no context named 'dev'"),
        (("{tokenFile: token}", "{exec: {command: aws}}"), "authenticates with exec"),
        (("http://127.0.0.1:6443", "ftp://x"), "has no http(s) server"),
        (("current-context: prod", "current-context: ''"), "current-context is not set"),
    ],
)
def test_bad_kubeconfigs_name_file_and_problem(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    """A kubeconfig tocsin cannot use is refused at start, naming the file and why."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace(*change))
    with pytest.raises(WatchConfigError) as caught:
        load_kubeconfig(str(path))
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_in_cluster_needs_the_service_environment(tmp_path: Path) -> None:
    """--events.watch outside a pod is a clear error; inside, the service account's
    token file and the service address are used."""
    with pytest.raises(WatchConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster({}, tmp_path)
    with pytest.raises(WatchConfigError, match="no service-account token"):
        in_cluster(
            {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path
        )


async def test_an_object_that_is_not_an_event_is_skipped_and_counted(tmp_path: Path) -> None:
    """A watched object without involvedObject is logged, counted as INVALID, and the
    resourceVersion moves past it; the next event still fires."""
    with FakeApiServer() as server:
        labels = {"type": "INVALID"}
        before = REGISTRY.get_sample_value("tocsin_event_watch_events_total", labels) or 0.0

        async def body(puts: Puts, watch: EventWatch) -> None:
            await until(lambda: len(server.watches()) == 1)
            broken = event("u1", "web-0")
            del broken["involvedObject"]
            version = server.put(broken)
            await until(lambda: watch.resource_version == version)
            server.put(event("u2", "web-1"))
            await until(lambda: puts.pods() == ["web-1"])
            assert (
                REGISTRY.get_sample_value("tocsin_event_watch_events_total", labels) == before + 1
            )

        await watching(tmp_path, server, body)
