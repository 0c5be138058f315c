"""The web UI with tenancy on, in real Chromium against a real tocsin: sign-in, each
tenant's own view, the admin's tenant switcher, tenant silences, bad tokens.

One daemon with two tenants (team-a, team-b, each with its own config and webhook), an
admin and an ingest token (the tenancy file of ``tests/tenancy/test_isolation.py``). Alerts come in through the global intake and fan out by
namespace: ``shared`` goes to both tenants, so each holds its own copy of SharedDown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon import __version__
from tests.integration.processes import Proc, WebhookSink, run_tocsin, wait_for

# The tenancy file (tenants team-a and team-b, both taking namespace shared; admin ops;
# ingest prom), tokens and global config of the API's isolation tests.
from tests.tenancy.test_isolation import GLOBAL_CONFIG, TENANCY, TOKENS, client
from tests.ui.conftest import nameless_controls, screenshot, watched_page

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

#: A tenant's Alertmanager config (Mimir's config API): a webhook to the sink, and a
#: Slack receiver whose URL is a secret that the status page must mask.
TENANT_CONFIG = """\
alertmanager_config: |
  route:
    receiver: {t}-hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1h
    routes:
      - matchers: ['severity="page"']
        receiver: {t}-slack
  receivers:
    - name: {t}-hook
      webhook_configs: [{{url: 'http://127.0.0.1:{port}/{t}', send_resolved: false}}]
    - name: {t}-slack
      slack_configs: [{{api_url: 'https://hooks.slack.example/SECRET-{t}', channel: '#{t}'}}]
"""

ALERTS = [
    {"labels": {"alertname": "AlphaDown", "namespace": "team-a"}},
    {"labels": {"alertname": "BravoDown", "namespace": "team-b"}},
    {"labels": {"alertname": "SharedDown", "namespace": "shared"}},
]

#: What a browser console may report without the test failing: the 401s that ask for a
#: token, the 403 a tenant token gets for the tenant list, the why view's 404 for an
#: alert that is not in the tenant.
_EXPECTED_CONSOLE = re.compile(r"status of 40[134]")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, WebhookSink]]:
    tmp: Path = tmp_path_factory.mktemp("uitenancy")
    (tmp / "tenancy.yml").write_text(TENANCY)
    with (
        WebhookSink() as sink,
        run_tocsin(tmp, GLOBAL_CONFIG, f"--tenancy.config-file={tmp / 'tenancy.yml'}") as proc,
    ):
        for who, tenant in (("a", "team-a"), ("b", "team-b")):
            with client(proc, who) as c:
                config = TENANT_CONFIG.format(t=tenant, port=sink.port)
                r = c.post("/api/v1/alerts", content=config)
                assert r.status_code == 201, r.text
        with client(proc, "ingest") as c:
            assert c.post("/api/v2/alerts", json=ALERTS).status_code == 200
        yield proc, sink


@pytest.fixture
def tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (light unless parametrized); script errors and unexpected console
    errors fail the test."""
    with watched_page(browser, getattr(request, "param", "light"), _EXPECTED_CONSOLE) as page:
        yield page


def sign_in(page: Any, url: str, token: str) -> None:
    """Open ``url``, which asks for a token, and sign in with ``token``."""
    page.goto(url)
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Token").fill(token)
    dialog.get_by_role("button", name="Sign in", exact=True).click()


def test_shells_load_without_a_token_and_carry_no_data(world: tuple[Proc, WebhookSink]) -> None:
    """Without a token the page shells and the script load (so the page can ask for one),
    and hold no version, config or tenant name; every data request is 401."""
    proc, _ = world
    with httpx.Client(base_url=proc.url, timeout=10) as c:
        for path in ("/", "/ui/alerts", "/ui/status", "/ui/routes", "/ui/static/app.js"):
            r = c.get(path)
            assert r.status_code == 200, path
            for secret in ("team-a", "team-b", "global-rcv", "hook", "SECRET", __version__):
                assert secret not in r.text, (path, secret)
        for path in ("/api/v2/status", "/api/v2/alerts", "/api/v1/routes", "/api/v1/why"):
            assert c.get(path).status_code == 401, path
        assert c.post("/ui/alerts").status_code == 401


def test_identity_names_the_caller_and_its_pipeline(world: tuple[Proc, WebhookSink]) -> None:
    """GET /api/v1/identity answers the caller's role, name and pipeline (what the UI
    shows and whether it offers the switcher); ingest is 403, no token 401."""
    proc, _ = world
    with client(proc, "a") as c:
        assert c.get("/api/v1/identity").json() == {
            "role": "tenant",
            "name": "team-a",
            "tenant": "team-a",
        }
    with client(proc, "admin") as c:
        assert c.get("/api/v1/identity").json() == {"role": "admin", "name": "ops", "tenant": None}
    with client(proc, "admin", "team-b") as c:
        assert c.get("/api/v1/identity").json()["tenant"] == "team-b"
    with client(proc, "ingest") as c:
        assert c.get("/api/v1/identity").status_code == 403
    with httpx.Client(base_url=proc.url, timeout=10) as c:
        assert c.get("/api/v1/identity").status_code == 401


def test_tenant_signs_in_and_sees_only_its_alerts(
    tab: Any, world: tuple[Proc, WebhookSink]
) -> None:
    """Tenant A's token shows A's alerts (its copy of the shared one too), never B's; the
    token stays for the tab's next pages; Sign out forgets it and asks again."""
    proc, _ = world
    sign_in(tab, proc.url + "/", TOKENS["a"])
    expect(tab.get_by_role("article", name="Alert AlphaDown")).to_be_visible()
    expect(tab.get_by_role("article", name="Alert SharedDown")).to_be_visible()
    expect(tab.get_by_role("article")).to_have_count(2)
    expect(tab.get_by_text("BravoDown")).to_have_count(0)
    # A tenant token gets no switcher: it sees its own tenant only.
    expect(tab.locator("#tenant-bar")).to_contain_text("Tenant: team-a")
    expect(tab.get_by_label("Tenant")).to_be_hidden()
    assert tab.evaluate("sessionStorage.getItem('tocsin.token')") == TOKENS["a"]
    tab.goto(proc.url + "/ui/silences")
    expect(tab.get_by_role("dialog", name="Sign in")).to_be_hidden()
    tab.get_by_role("button", name="Sign out").click()
    expect(tab.get_by_role("dialog", name="Sign in")).to_be_visible()
    assert tab.evaluate("sessionStorage.getItem('tocsin.token')") is None


def test_tenant_views_show_its_own_config_routes_why_and_history(
    tab: Any, world: tuple[Proc, WebhookSink]
) -> None:
    """Status, routing tree, why and history read tenant A's pipeline: its config (Slack
    URL masked), its receivers, its notifications; B's alert is not found."""
    proc, sink = world
    sign_in(tab, proc.url + "/ui/status", TOKENS["a"])
    config = tab.get_by_label("Loaded configuration")
    expect(config).to_contain_text("team-a-hook")
    expect(config).to_contain_text("<secret>")
    expect(config).not_to_contain_text("SECRET-team-a")
    expect(config).not_to_contain_text("global-rcv")
    tab.goto(proc.url + "/ui/routes")
    expect(tab.locator("main")).to_contain_text("team-a-slack")
    expect(tab.locator("main")).not_to_contain_text("global-rcv")
    expect(tab.locator("main")).not_to_contain_text("team-b")
    tab.goto(proc.url + "/ui/why?filter=alertname%3DAlphaDown")
    expect(tab.get_by_label("Route path to team-a-hook")).to_be_visible()
    tab.goto(proc.url + "/ui/why?filter=alertname%3DBravoDown")
    expect(tab.get_by_role("alert")).to_contain_text("no alert matches the filter")
    # Both tenants' webhooks have fired (one group per alert name); A's history lists A's only.
    assert {r.path for r in sink.wait_count(4)} == {"/team-a", "/team-b"}
    with client(proc, "a") as c:
        wait_for(lambda: c.get("/api/v1/history").json()["items"], 20)
    tab.goto(proc.url + "/ui/history")
    expect(tab.locator("main table")).to_contain_text("team-a-hook")
    expect(tab.locator("main")).not_to_contain_text("team-b-hook")


def test_tenant_silence_mutes_only_its_own_copy(tab: Any, world: tuple[Proc, WebhookSink]) -> None:
    """A silence tenant A creates in the UI silences A's SharedDown, not B's copy nor
    the global one, and B's silence list does not show it."""
    proc, _ = world
    sign_in(tab, proc.url + "/", TOKENS["a"])
    tab.get_by_role("link", name="New silence for alert SharedDown").click()
    expect(tab.get_by_label("Matchers")).to_have_value(re.compile(r'alertname="SharedDown"'))
    tab.get_by_label("Created by").fill("team a")
    tab.get_by_label("Comment").fill("a-only maintenance")
    tab.get_by_role("button", name="Save silence").click()
    expect(tab.get_by_role("article", name=re.compile("^Silence "))).to_contain_text(
        "a-only maintenance"
    )
    tab.goto(proc.url + "/")
    expect(tab.get_by_role("article", name="Alert SharedDown")).to_contain_text("silenced")

    def state(who: str, org: str | None = None) -> str:
        with client(proc, who, org) as c:
            [alert] = c.get("/api/v2/alerts", params={"filter": 'alertname="SharedDown"'}).json()
        return str(alert["status"]["state"])

    assert state("a") == "suppressed"
    assert state("b") == "active"
    assert state("admin") == "active"
    with client(proc, "b") as c:
        assert "a-only maintenance" not in c.get("/api/v2/silences").text


def test_admin_switches_between_tenants(tab: Any, world: tuple[Proc, WebhookSink]) -> None:
    """The admin's Tenant switcher lists the tenants; picking one sends X-Scope-OrgID and
    shows that tenant's alerts; the empty choice is the global pipeline (all alerts)."""
    proc, _ = world
    sign_in(tab, proc.url + "/", TOKENS["admin"])
    switcher = tab.get_by_label("Tenant")
    expect(switcher.locator("option")).to_have_text(["Global pipeline", "team-a", "team-b"])
    expect(tab.get_by_role("article", name="Alert BravoDown")).to_be_visible()
    expect(tab.get_by_role("article")).to_have_count(3)
    with tab.expect_request(lambda r: "/api/v2/alerts?" in r.url) as sent:
        switcher.select_option("team-b")
    assert sent.value.headers.get("x-scope-orgid") == "team-b"
    expect(tab.get_by_role("article", name="Alert BravoDown")).to_be_visible()
    expect(tab.get_by_role("article")).to_have_count(2)
    expect(tab.get_by_text("AlphaDown")).to_have_count(0)
    expect(tab.get_by_label("Tenant")).to_have_value("team-b")
    tab.get_by_label("Tenant").select_option("team-a")
    expect(tab.get_by_role("article", name="Alert AlphaDown")).to_be_visible()
    expect(tab.get_by_text("BravoDown")).to_have_count(0)
    with tab.expect_request(lambda r: "/api/v2/alerts?" in r.url) as sent:
        tab.get_by_label("Tenant").select_option("")
    assert "x-scope-orgid" not in sent.value.headers
    expect(tab.get_by_role("article")).to_have_count(3)


def test_a_bad_token_says_so_and_asks_again(tab: Any, world: tuple[Proc, WebhookSink]) -> None:
    """A token the daemon does not know brings the sign-in form back with the reason."""
    proc, _ = world
    sign_in(tab, proc.url + "/", "not-a-token")
    dialog = tab.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("alert")).to_have_text(
        "The token was not accepted: invalid bearer token. Try again."
    )
    expect(tab.get_by_role("article")).to_have_count(0)
    expect(tab.get_by_role("button", name="Sign out")).to_be_hidden()
    screenshot(tab, "tenancy-bad-token-light")
    dialog.get_by_label("Token").fill(TOKENS["b"])
    dialog.get_by_role("button", name="Sign in", exact=True).click()
    expect(tab.get_by_role("article", name="Alert BravoDown")).to_be_visible()


def test_sign_in_and_switcher_by_keyboard_with_named_controls(
    tab: Any, world: tuple[Proc, WebhookSink]
) -> None:
    """The sign-in form takes the focus, so typing a token and Enter signs in; signed in
    as admin, every page's controls (switcher, Sign out) have accessible names."""
    proc, _ = world
    tab.goto(proc.url + "/ui/silences")
    expect(tab.get_by_role("dialog", name="Sign in").get_by_label("Token")).to_be_focused()
    assert nameless_controls(tab) == []
    tab.keyboard.type(TOKENS["admin"])
    tab.keyboard.press("Enter")
    expect(tab.get_by_label("Tenant")).to_be_visible()
    expect(tab.get_by_role("button", name="Sign out")).to_be_visible()
    for path in ("/", "/ui/silences", "/ui/why", "/ui/routes", "/ui/status", "/ui/history"):
        tab.goto(proc.url + path)
        expect(tab.get_by_label("Tenant")).to_be_visible()
        tab.wait_for_load_state("networkidle")
        assert nameless_controls(tab) == [], path


@pytest.mark.parametrize("tab", ["light", "dark"], indirect=True)
def test_screenshots_of_sign_in_and_a_tenant_view(
    tab: Any, world: tuple[Proc, WebhookSink]
) -> None:
    """The sign-in form and tenant A's alerts render in both schemes (screenshots for review)."""
    proc, _ = world
    scheme = tab.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    name = "dark" if scheme else "light"
    tab.goto(proc.url + "/")
    expect(tab.get_by_role("dialog", name="Sign in")).to_be_visible()
    expect(tab.get_by_role("alert").filter(has_text="sign-in")).to_have_count(0)
    screenshot(tab, f"tenancy-sign-in-{name}")
    sign_in(tab, proc.url + "/", TOKENS["a"])
    expect(tab.get_by_role("article", name="Alert AlphaDown")).to_be_visible()
    tab.wait_for_load_state("networkidle")
    screenshot(tab, f"tenancy-tenant-alerts-{name}")
    sign_in_admin = tab.get_by_role("button", name="Sign out")
    sign_in_admin.click()
    sign_in(tab, proc.url + "/", TOKENS["admin"])
    tab.get_by_label("Tenant").select_option("team-a")
    expect(tab.get_by_role("article", name="Alert AlphaDown")).to_be_visible()
    tab.wait_for_load_state("networkidle")
    screenshot(tab, f"tenancy-admin-switcher-{name}")


def test_shells_open_under_a_route_prefix(tmp_path: Path) -> None:
    """With --web.route-prefix the shells and script below the prefix load without a token
    and point at the prefix; the API below it still needs one."""
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    tenancy = f"--tenancy.config-file={tmp_path / 'tenancy.yml'}"
    with (
        run_tocsin(tmp_path, GLOBAL_CONFIG, tenancy, "--web.route-prefix=/am") as proc,
        httpx.Client(base_url=proc.url, timeout=10) as c,
    ):
        shell = c.get("/am/ui/silences")
        assert shell.status_code == 200
        assert 'data-prefix="/am"' in shell.text
        assert c.get("/am/ui/static/app.css").status_code == 200
        assert c.get("/am/api/v2/status").status_code == 401
        token = {"Authorization": f"Bearer {TOKENS['a']}"}
        assert c.get("/am/api/v2/status", headers=token).status_code == 200


QUIET_CONFIG = """\
alertmanager_config: |
  route:
    receiver: quiet
    routes:
      - matchers: ['alertname="Quiet"']
        receiver: quiet
        mute_time_intervals: [always]
  receivers: [{name: quiet}]
  time_intervals:
    - name: always
      time_intervals: [{weekdays: ['sunday:saturday']}]
"""


def test_muted_reads_the_request_pipeline(tmp_path: Path) -> None:
    """/api/v1/muted (the alerts page's "Muted" badge) answers from the request's
    pipeline: tenant A's time interval mutes A's copy; B and the global pipeline, whose
    configs have no interval, report nothing muted."""
    (tmp_path / "tenancy.yml").write_text(TENANCY)
    tenancy = f"--tenancy.config-file={tmp_path / 'tenancy.yml'}"
    with run_tocsin(tmp_path, GLOBAL_CONFIG, tenancy) as proc:
        with client(proc, "a") as c:
            r = c.post("/api/v1/alerts", content=QUIET_CONFIG)
            assert r.status_code == 201, r.text
        with client(proc, "ingest") as c:
            quiet = [{"labels": {"alertname": "Quiet", "namespace": "shared"}}]
            assert c.post("/api/v2/alerts", json=quiet).status_code == 200

        def muted(who: str) -> list[str]:
            with client(proc, who) as c:
                assert c.get("/api/v2/alerts").json(), who  # the alert is there
                return list(c.get("/api/v1/muted").json()["fingerprints"])

        assert wait_for(lambda: muted("a"), 10)
        assert muted("b") == []
        assert muted("admin") == []
