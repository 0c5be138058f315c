"""Multi-tenancy end to end on a real tocsin: every endpoint x every identity, fan-out,
tenant silences, global silences, Mimir's config API, restarts and amtool per tenant."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import Proc, WebhookSink, run_tocsin, tocsin_argv, wait_for

TOKENS = {"admin": "admin-secret", "ingest": "ingest-secret", "a": "a-token", "b": "b-token"}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TENANCY = f"""\
admins: [{{name: ops, token_sha256: {sha(TOKENS["admin"])}}}]
ingest: [{{name: prom, token_sha256: {sha(TOKENS["ingest"])}}}]
tenants:
  team-a:
    tokens_sha256: [{sha(TOKENS["a"])}]
    namespaces: ["team-a", "team-a-*", "shared"]
  team-b:
    tokens_sha256: [{sha(TOKENS["b"])}]
    namespaces: ["team-b", "shared"]
"""

GLOBAL_CONFIG = "route: {receiver: global-rcv, group_wait: 1s}\nreceivers: [{name: global-rcv}]\n"

#: identity -> request headers
IDENTITIES: dict[str, dict[str, str]] = {
    "admin": {"Authorization": f"Bearer {TOKENS['admin']}"},
    "ingest": {"Authorization": f"Bearer {TOKENS['ingest']}"},
    "a": {"Authorization": f"Bearer {TOKENS['a']}"},
    "b": {"Authorization": f"Bearer {TOKENS['b']}"},
    "none": {},
    "bad": {"Authorization": "Bearer not-a-token"},
    "mismatch": {"Authorization": f"Bearer {TOKENS['a']}", "X-Scope-OrgID": "team-b"},
}


def tenant_config(receiver: str, url: str = "") -> str:
    hook = f", webhook_configs: [{{url: '{url}', send_resolved: false}}]" if url else ""
    return (
        "alertmanager_config: |\n"
        f"  route: {{receiver: {receiver}, group_by: [alertname], group_wait: 1s, group_interval: 1h}}\n"
        f"  receivers: [{{name: {receiver}{hook}}}]\n"
    )


def silence(comment: str, alertname: str) -> dict[str, Any]:
    return {
        "matchers": [{"name": "alertname", "value": alertname, "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": comment,
    }


def client(proc: Proc, who: str, org: str | None = None) -> httpx.Client:
    headers = dict(IDENTITIES[who])
    if org is not None:
        headers["X-Scope-OrgID"] = org
    return httpx.Client(base_url=proc.url, headers=headers, timeout=10)


def start(tmp: Path, *extra: str, tenancy: str = TENANCY) -> Any:
    (tmp / "tenancy.yml").write_text(tenancy)
    return run_tocsin(tmp, GLOBAL_CONFIG, f"--tenancy.config-file={tmp / 'tenancy.yml'}", *extra)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, dict[str, str]]]:
    """One tocsin with tenants a and b, each with a secret alert, silence and receiver."""
    tmp = tmp_path_factory.mktemp("tenancy")
    with start(tmp) as proc:
        with client(proc, "ingest") as c:
            alerts = [
                {"labels": {"alertname": "a-secret-alert", "namespace": "team-a-dev"}},
                {"labels": {"alertname": "b-secret-alert", "namespace": "team-b"}},
            ]
            assert c.post("/api/v2/alerts", json=alerts).status_code == 200
        ids = {}
        for who in ("a", "b"):
            with client(proc, who) as c:
                r = c.post("/api/v1/alerts", content=tenant_config(f"{who}-secret-receiver"))
                assert r.status_code == 201, r.text
                r = c.post("/api/v2/silences", json=silence(f"{who}-secret-silence", "nothing"))
                assert r.status_code == 200, r.text
                ids[who] = r.json()["silenceID"]
        yield proc, ids


GETS = [
    "/api/v1/history",
    "/api/v2/alerts",
    "/api/v2/alerts/groups",
    "/api/v2/silences",
    "/api/v2/receivers",
    "/api/v2/status",
    "/api/v1/alerts",
    "/api/v1/tenants",
    "/metrics",
    "/-/healthy",
    "/-/ready",
]

#: identity -> path -> status, for GETs
EXPECTED: dict[str, dict[str, int]] = {
    "admin": {p: 200 for p in GETS} | {"/api/v1/alerts": 400},
    "ingest": {p: 403 for p in GETS} | {"/metrics": 200, "/-/healthy": 200, "/-/ready": 200},
    "a": {p: 200 for p in GETS} | {"/api/v1/tenants": 403, "/metrics": 403},
    "b": {p: 200 for p in GETS} | {"/api/v1/tenants": 403, "/metrics": 403},
    "none": {p: 401 for p in GETS} | {"/-/healthy": 200, "/-/ready": 200},
    "bad": {p: 401 for p in GETS} | {"/-/healthy": 200, "/-/ready": 200},
    "mismatch": {p: 403 for p in GETS} | {"/-/healthy": 200, "/-/ready": 200},
}

#: What each identity must never see.
FORBIDDEN = {
    "a": ("b-secret",),
    "b": ("a-secret",),
    "ingest": ("a-secret", "b-secret"),
    "none": ("a-secret", "b-secret"),
    "bad": ("a-secret", "b-secret"),
    "mismatch": ("a-secret", "b-secret"),
}


@pytest.mark.parametrize("who", sorted(IDENTITIES))
@pytest.mark.parametrize("path", GETS)
def test_every_get_for_every_identity(
    world: tuple[Proc, dict[str, str]], who: str, path: str
) -> None:
    """Each GET answers the contract's status for each identity, and no body carries
    another tenant's alerts, silences or receivers."""
    proc, _ = world
    with client(proc, who) as c:
        r = c.get(path)
    assert r.status_code == EXPECTED[who][path], r.text
    for secret in FORBIDDEN.get(who, ()):
        assert secret not in r.text


def test_tenants_see_their_own_data(world: tuple[Proc, dict[str, str]]) -> None:
    """The fan-out put each namespace's alert in its tenant; each tenant's lists show
    its own alert, silence and receiver; the admin's global view has both alerts."""
    proc, _ = world
    for who in ("a", "b"):
        with client(proc, who) as c:
            assert f"{who}-secret-alert" in c.get("/api/v2/alerts").text
            assert f"{who}-secret-silence" in c.get("/api/v2/silences").text
            assert f"{who}-secret-receiver" in c.get("/api/v2/receivers").text
            assert f"{who}-secret-receiver" in c.get("/api/v2/status").text
    with client(proc, "admin") as c:
        text = c.get("/api/v2/alerts").text
        assert "a-secret-alert" in text and "b-secret-alert" in text
        assert "secret-silence" not in c.get("/api/v2/silences").text
        assert "b-secret-alert" in c.get("/api/v2/alerts", headers={"X-Scope-OrgID": "team-b"}).text
        assert c.get("/api/v2/alerts", headers={"X-Scope-OrgID": "nope"}).status_code == 404
        tenants = c.get("/api/v1/tenants").json()
    assert [t["id"] for t in tenants] == ["team-a", "team-b"]
    assert all(t["config"] == "custom" and t["alerts"] >= 1 for t in tenants)
    assert set(tenants[0]) == {"id", "alerts", "silences", "groups", "config"}


@pytest.mark.parametrize("who", sorted(IDENTITIES))
def test_writes_for_every_identity(world: tuple[Proc, dict[str, str]], who: str) -> None:
    """Posting alerts, posting silences, reloading, and touching the other tenant's
    silence id: the contract's status for each identity."""
    proc, ids = world
    other = {"a": ids["b"], "b": ids["a"]}.get(who, ids["b"])
    alert = [{"labels": {"alertname": f"write-{who}"}}]
    expected = {
        "admin": (200, 200, 200, 404, 500),
        "ingest": (200, 403, 403, 403, 403),
        "a": (200, 200, 403, 404, 404),
        "b": (200, 200, 403, 404, 404),
        "none": (401, 401, 401, 401, 401),
        "bad": (401, 401, 401, 401, 401),
        "mismatch": (403, 403, 403, 403, 403),
    }[who]
    with client(proc, who) as c:
        got = (
            c.post("/api/v2/alerts", json=alert).status_code,
            c.post("/api/v2/silences", json=silence(f"w-{who}", "zzz")).status_code,
            c.post("/-/reload").status_code,
            c.get(f"/api/v2/silence/{other}").status_code,
            c.delete(f"/api/v2/silence/{other}").status_code,
        )
    assert got == expected


def test_a_tenant_cannot_inject_elsewhere(world: tuple[Proc, dict[str, str]]) -> None:
    """An alert a tenant posts goes to that tenant alone, whatever its namespace."""
    proc, _ = world
    alert = [{"labels": {"alertname": "a-injected", "namespace": "team-b"}}]
    with client(proc, "a") as c:
        assert c.post("/api/v2/alerts", json=alert).status_code == 200
        assert "a-injected" in c.get("/api/v2/alerts").text
    with client(proc, "b") as c:
        assert "a-injected" not in c.get("/api/v2/alerts").text
    with client(proc, "admin") as c:
        assert "a-injected" not in c.get("/api/v2/alerts").text
    with client(proc, "ingest", org="team-b") as c:
        assert (
            c.post("/api/v2/alerts", json=[{"labels": {"alertname": "to-b-only"}}]).status_code
            == 200
        )
    with client(proc, "b") as c:
        assert "to-b-only" in c.get("/api/v2/alerts").text
    with client(proc, "a") as c:
        assert "to-b-only" not in c.get("/api/v2/alerts").text


def test_global_silence_mutes_tenant_copies(world: tuple[Proc, dict[str, str]]) -> None:
    """An admin's global silence mutes the tenants' copies too; a tenant reads it but
    cannot delete it."""
    proc, _ = world
    with client(proc, "admin") as c:
        r = c.post("/api/v2/silences", json=silence("global-one", "a-secret-alert"))
        assert r.status_code == 200
        gid = r.json()["silenceID"]
    with client(proc, "a") as c:
        alerts = c.get("/api/v2/alerts", params={"filter": "alertname=a-secret-alert"}).json()
        assert alerts[0]["status"]["silencedBy"] == [gid]
        assert c.get(f"/api/v2/silence/{gid}").status_code == 200
        assert gid in c.get("/api/v2/silences").text
        assert c.delete(f"/api/v2/silence/{gid}").status_code == 403
    with client(proc, "admin") as c:
        assert c.delete(f"/api/v2/silence/{gid}").status_code == 200


def test_tenant_silence_stays_in_its_tenant(world: tuple[Proc, dict[str, str]]) -> None:
    """A tenant's silence mutes its own copy only: the other tenant's copy and the
    global alert of the same labels stay active."""
    proc, _ = world
    with client(proc, "ingest") as c:
        c.post("/api/v2/alerts", json=[{"labels": {"alertname": "both", "namespace": "shared"}}])
    with client(proc, "a") as c:
        sid = c.post("/api/v2/silences", json=silence("a-only", "both")).json()["silenceID"]
        state = c.get("/api/v2/alerts", params={"filter": "alertname=both"}).json()
        assert state[0]["status"]["silencedBy"] == [sid]
    for who, org in (("b", None), ("admin", None)):
        with client(proc, who, org) as c:
            state = c.get("/api/v2/alerts", params={"filter": "alertname=both"}).json()
            assert state[0]["status"]["state"] == "active"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            "alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x, webhook_configs: [{url_file: /etc/passwd}]}]\n",
            "url_file",
        ),
        (
            "alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x, webhook_configs: [{url: 'http://h/', http_config: {tls_config: {ca_file: /etc/ssl/x}}}]}]\n",
            "ca_file",
        ),
        (
            "alertmanager_config: |\n  templates: [/etc/passwd]\n  route: {receiver: x}\n  receivers: [{name: x}]\n",
            "templates[0]",
        ),
        (
            "alertmanager_config: |\n  templates: [other.tmpl]\n  route: {receiver: x}\n  receivers: [{name: x}]\ntemplate_files: {a.tmpl: hi}\n",
            "templates[0]",
        ),
        (
            "alertmanager_config: |\n  route: {receiver: y}\n  receivers: [{name: x}]\n",
            "route.receiver",
        ),
        (
            "alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x}]\ntemplate_files: {../x: hi}\n",
            "template_files",
        ),
        ("just text", "mapping"),
        (
            "alertmanager_config: |\n  templates: [a.tmpl]\n  route: {receiver: x}\n  receivers: [{name: x}]\ntemplate_files: {a.tmpl: '{{ define \"x\" }}'}\n",
            "template_files",
        ),
    ],
)
def test_bad_tenant_config_is_400_and_keeps_the_old(
    world: tuple[Proc, dict[str, str]], body: str, needle: str
) -> None:
    """A refused config is a 400 naming the key, and the tenant's config is unchanged."""
    proc, _ = world
    with client(proc, "b") as c:
        before = c.get("/api/v1/alerts").text
        r = c.post("/api/v1/alerts", content=body)
        assert r.status_code == 400
        assert needle in r.text
        assert c.get("/api/v1/alerts").text == before
        assert "b-secret-receiver" in c.get("/api/v2/receivers").text


def test_config_api_roundtrip_with_templates(tmp_path: Path) -> None:
    """A config with a template file is stored, served back, used, survives a restart,
    and DELETE falls back (GET is then 404 again)."""
    body = (
        "alertmanager_config: |\n  templates: [mine.tmpl]\n  route: {receiver: x}\n"
        "  receivers: [{name: x}]\n"
        "template_files:\n  mine.tmpl: '{{ define \"mine\" }}hello{{ end }}'\n"
    )
    with start(tmp_path) as proc:
        with client(proc, "admin", org="team-a") as c:
            assert c.get("/api/v1/alerts").status_code == 404
            assert c.post("/api/v1/alerts", content=body).status_code == 201
            stored = c.get("/api/v1/alerts").text
            assert "mine.tmpl" in stored and "hello" in stored
    with start(tmp_path) as proc:
        with client(proc, "a") as c:
            assert c.get("/api/v1/alerts").text == stored
            assert c.get("/api/v2/receivers").json() == [{"name": "x"}]
            assert c.delete("/api/v1/alerts").status_code == 200
            assert c.get("/api/v1/alerts").status_code == 404
            assert c.get("/api/v2/receivers").json() == [{"name": "global-rcv"}]
        with client(proc, "admin") as c:
            assert [t["config"] for t in c.get("/api/v1/tenants").json()] == [
                "fallback",
                "fallback",
            ]


def test_notifications_reach_only_their_tenant(tmp_path: Path) -> None:
    """Each tenant's webhook gets its own tenant's alerts; a tenant silence mutes that
    tenant's notification only, the other tenant still gets the shared alert."""
    # Debug: notify.sent, checked for its tenant below, is a debug event.
    with (
        WebhookSink() as sink_a,
        WebhookSink() as sink_b,
        start(tmp_path, "--log.level=debug") as proc,
    ):
        for who, sink in (("a", sink_a), ("b", sink_b)):
            with client(proc, who) as c:
                r = c.post("/api/v1/alerts", content=tenant_config(f"{who}-hook", sink.url))
                assert r.status_code == 201, r.text
        with client(proc, "a") as c:
            assert c.post("/api/v2/silences", json=silence("mute", "shared-one")).status_code == 200
        with client(proc, "ingest") as c:
            c.post(
                "/api/v2/alerts",
                json=[
                    {"labels": {"alertname": "only-a", "namespace": "team-a"}},
                    {"labels": {"alertname": "only-b", "namespace": "team-b"}},
                    {"labels": {"alertname": "shared-one", "namespace": "shared"}},
                ],
            )
        got_a = json.loads(sink_a.next().body)
        got_b = [json.loads(r.body) for r in sink_b.wait_count(2)]
        assert [x["labels"]["alertname"] for x in got_a["alerts"]] == ["only-a"]
        names_b = sorted(x["labels"]["alertname"] for g in got_b for x in g["alerts"])
        assert names_b == ["only-b", "shared-one"]
        assert sink_a.quiet_for(2.5)
        # Every log event of a tenant pipeline carries its tenant.
        tenants_logged = {e.get("tenant") for e in proc.log_lines if e["event"] == "state.loaded"}
        assert {"team-a", "team-b"} <= tenants_logged
        sent = {e.get("tenant") for e in proc.log_lines if e["event"] == "notify.sent"}
        assert sent == {"team-a", "team-b"}
        # The history API pins each tenant to its own records.
        with client(proc, "a") as c:
            items = wait_for(lambda: c.get("/api/v1/history").json()["items"], timeout=10)
            assert {i["tenant"] for i in items} == {"team-a"}
            assert "only-b" not in json.dumps(items)
            assert c.get("/api/v1/history", params={"tenant": "team-b"}).status_code == 403
        with client(proc, "admin") as c:
            everyone = c.get("/api/v1/history").json()["items"]
            assert {"team-a", "team-b"} <= {i["tenant"] for i in everyone}
            # Per-pipeline series carry the tenant; the global ones keep Alertmanager's labels.
            scrape = c.get("/metrics").text
        assert (
            'alertmanager_notifications_total{integration="webhook",tenant="team-a"} 1.0' in scrape
        )
        assert (
            'alertmanager_notifications_total{integration="webhook",tenant="team-b"} 2.0' in scrape
        )
        assert 'alertmanager_notifications_total{integration="webhook"} 0.0' in scrape
        assert (
            'alertmanager_notifications_suppressed_total{reason="silence",tenant="team-a"} 1.0'
            in scrape
        )
        assert 'alertmanager_notifications_suppressed_total{reason="silence"} ' not in scrape


def test_reload_rereads_the_tenancy_file(tmp_path: Path) -> None:
    """/-/reload (admin) starts a tenant added to the file and stops a removed one; a
    bad file is refused and the old one keeps running."""
    with start(tmp_path) as proc, client(proc, "admin") as c:
        path = tmp_path / "tenancy.yml"
        path.write_text(TENANCY.replace("team-b:", "team-c:"))
        assert c.post("/-/reload").status_code == 200
        assert [t["id"] for t in c.get("/api/v1/tenants").json()] == ["team-a", "team-c"]
        assert c.get("/api/v2/alerts", headers={"X-Scope-OrgID": "team-b"}).status_code == 404
        path.write_text("tenants:\n  '..': {}\n")
        r = c.post("/-/reload")
        assert r.status_code == 500 and "tenancy.yml:2" in r.text
        assert [t["id"] for t in c.get("/api/v1/tenants").json()] == ["team-a", "team-c"]


@pytest.mark.alertmanager
def test_amtool_per_tenant(world: tuple[Proc, dict[str, str]], tmp_path: Path) -> None:
    """amtool with --http.config.file carrying a tenant's bearer token sees that
    tenant's alerts and silences, and not the other tenant's."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    proc, _ = world
    http_config = tmp_path / "http.yml"
    http_config.write_text(f"authorization:\n  credentials: {TOKENS['a']}\n")

    def run(*args: str) -> str:
        out = subprocess.run(
            [amtool, f"--alertmanager.url={proc.url}", f"--http.config.file={http_config}", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout

    alerts = run("alert", "query", "-o", "json")
    assert "a-secret-alert" in alerts and "b-secret-alert" not in alerts
    silences = run("silence", "query", "-o", "json")
    assert "a-secret-silence" in silences and "b-secret-silence" not in silences
    new = run("silence", "add", "alertname=from-amtool", "-c", "via amtool", "-a", "t").strip()
    with client(proc, "a") as c:
        assert c.get(f"/api/v2/silence/{new}").status_code == 200
    with client(proc, "b") as c:
        assert c.get(f"/api/v2/silence/{new}").status_code == 404


def test_basic_auth_users_are_refused_with_tenancy(tmp_path: Path) -> None:
    """A web config with basic_auth_users does not start together with tenancy."""
    web = tmp_path / "web.yml"
    web.write_text(
        "basic_auth_users:\n  u: $2y$10$abcdefghijklmnopqrstuuJ1Xq1y1Z5rGQy2W1t0vD7u5x3m9Zl7y\n"
    )
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    config = tmp_path / "tocsin.yml"
    config.write_text(GLOBAL_CONFIG)
    argv = tocsin_argv(
        config,
        tmp_path / "data",
        f"--tenancy.config-file={tmp_path / 'tenancy.yml'}",
        f"--web.config.file={web}",
    )
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "basic_auth_users cannot be used together with --tenancy.config-file" in out.stdout


def test_bad_tenancy_file_stops_start_up(tmp_path: Path) -> None:
    """A tenancy file that does not parse stops start-up, naming file, line and key."""
    (tmp_path / "tenancy.yml").write_text("tenants:\n  a:\n    tokens_sha256: [nothex]\n")
    config = tmp_path / "tocsin.yml"
    config.write_text(GLOBAL_CONFIG)
    argv = tocsin_argv(
        config, tmp_path / "data", f"--tenancy.config-file={tmp_path / 'tenancy.yml'}"
    )
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "tenancy.yml:3: tenants.a.tokens_sha256[0]" in out.stdout


def test_limits_from_the_tenancy_file(tmp_path: Path) -> None:
    """A tenant's limits (default_limits overridden per tenant) hold: its own post past
    max_alerts_count is a 400, fanned-out copies past it are dropped while the global
    pipeline keeps them, a config past max_config_size_bytes is a 400, and each breach
    is counted under the tenant and Mimir's limit name."""
    tenancy = TENANCY.replace(
        "tenants:",
        "default_limits: {alertmanager_max_config_size_bytes: 300}\ntenants:",
    ).replace(
        'namespaces: ["team-a", "team-a-*", "shared"]',
        'namespaces: ["team-a", "team-a-*", "shared"]\n    limits: {alertmanager_max_alerts_count: 2}',
    )
    with start(tmp_path, tenancy=tenancy) as proc:
        three = [{"labels": {"alertname": f"n{i}", "namespace": "team-a"}} for i in range(3)]
        with client(proc, "a") as c:
            r = c.post("/api/v2/alerts", json=three)
            assert r.status_code == 400 and "too many alerts" in r.text
            assert c.get("/api/v2/alerts").json() == []
        with client(proc, "ingest") as c:
            assert c.post("/api/v2/alerts", json=three).status_code == 200
        with client(proc, "a") as c:
            assert c.get("/api/v2/alerts").json() == []  # the batch of 3 is past 2
            big = tenant_config("x" * 400)
            r = c.post("/api/v1/alerts", content=big)
            assert r.status_code == 400 and "too big" in r.text
        with client(proc, "admin") as c:
            assert len(c.get("/api/v2/alerts").json()) == 3
            metrics = c.get("/metrics").text
        assert (
            'tocsin_tenant_limit_exceeded_total{limit="max_alerts_count",tenant="team-a"}'
            in metrics
        )
        assert (
            'tocsin_tenant_limit_exceeded_total{limit="max_config_size_bytes",tenant="team-a"}'
            in metrics
        )


def test_tocsinctl_tenant_commands(tmp_path: Path) -> None:
    """tocsinctl tenant list (admin) and tenant config set|get|delete (a tenant token,
    or an admin with --tenant) drive the API end to end."""

    def ctl(who: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "daemon.ctl", f"--alertmanager.url={proc.url}"]
        argv += [f"--bearer-token={TOKENS[who]}", *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert (out.returncode == 0) == ok, out.stderr
        return out

    (tmp_path / "am.yml").write_text(
        "templates: [t.tmpl]\nroute: {receiver: via-ctl}\nreceivers: [{name: via-ctl}]\n"
    )
    (tmp_path / "t.tmpl").write_text('{{ define "x" }}from ctl{{ end }}')
    with start(tmp_path) as proc:
        listed = ctl("admin", "tenant", "list").stdout
        assert "team-a" in listed and "fallback" in listed
        assert ctl("a", "tenant", "list", ok=False).returncode == 1
        ctl(
            "a",
            "tenant",
            "config",
            "set",
            str(tmp_path / "am.yml"),
            "--template-file",
            str(tmp_path / "t.tmpl"),
        )
        got = ctl("admin", "--tenant=team-a", "tenant", "config", "get").stdout
        assert "via-ctl" in got and "from ctl" in got
        assert "team-b" not in json.dumps(ctl("a", "tenant", "config").stdout)
        assert "custom" in ctl("admin", "tenant", "list", "-o", "json").stdout
        ctl("a", "tenant", "config", "delete")
        err = ctl("a", "tenant", "config", "get", ok=False).stderr
        assert "no config of its own" in err


@pytest.mark.parametrize(
    ("who", "org", "status"),
    [("a", None, 403), ("ingest", "team-a", 400), ("none", None, 401), ("mismatch", None, 403)],
)
def test_event_intakes_are_for_ingest_and_admin(
    world: tuple[Proc, dict[str, str]], who: str, org: str | None, status: int
) -> None:
    """Kubernetes and audit events feed the global intake: a tenant token may not post
    them, and a tenant named in X-Scope-OrgID is refused rather than ignored."""
    proc, _ = world
    for path in ("/api/v1/events", "/audit/webhook/event"):
        with client(proc, who, org) as c:
            assert c.post(path, json=[]).status_code == status


def test_event_intakes_take_ingest_tokens(world: tuple[Proc, dict[str, str]]) -> None:
    """An ingest token (and an admin's) gets through the gate to the event intakes."""
    proc, _ = world
    for who in ("ingest", "admin"):
        with client(proc, who) as c:
            for path in ("/api/v1/events", "/audit/webhook/event"):
                assert c.post(path, json=[]).status_code not in (401, 403, 404), path


def test_notification_manager_import_into_a_tenancy_tocsin(tmp_path: Path) -> None:
    """tocsinctl import notification-manager, with an admin token, writes each NM
    tenant's config and silences into that tenant through this API, end to end."""
    fixtures = Path(__file__).parents[1] / "ctl" / "fixtures" / "nm"
    tenancy = f"""\
admins: [{{name: ops, token_sha256: {sha(TOKENS["admin"])}}}]
tenants:
  alice: {{tokens_sha256: [{sha(TOKENS["a"])}]}}
  bob: {{tokens_sha256: [{sha(TOKENS["b"])}]}}
"""
    with start(tmp_path, tenancy=tenancy) as proc:
        argv = [sys.executable, "-m", "daemon.ctl", f"--alertmanager.url={proc.url}"]
        argv += [f"--bearer-token={TOKENS['admin']}", "--no-version-check"]
        argv += ["import", "notification-manager", str(fixtures)]
        argv += [f"--global-config-out={tmp_path / 'global.yml'}"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr  # 2: some NM items were reported unmapped
        with client(proc, "a") as c:
            assert c.get("/api/v1/alerts").status_code == 200
            # alice's recurring silence, and the global "maintenance" one she may read.
            comments = {s["comment"] for s in c.get("/api/v2/silences").json()}
            assert any("alice-nightly" in x for x in comments), comments
            assert any("maintenance" in x for x in comments), comments
        with client(proc, "b") as c:
            comments = {s["comment"] for s in c.get("/api/v2/silences").json()}
            assert not any("alice-nightly" in x for x in comments)
        with client(proc, "b") as c:
            assert c.get("/api/v1/alerts").status_code == 200
        with client(proc, "admin") as c:
            tenants = {t["id"]: t for t in c.get("/api/v1/tenants").json()}
        assert tenants["alice"]["config"] == tenants["bob"]["config"] == "custom"
        assert tenants["alice"]["silences"] >= 1
