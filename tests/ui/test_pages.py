"""The web UI in real Chromium against a real tocsin: what an operator sees and does.

Controls are found by their accessible names (what a screen reader announces), so a
control that loses its name fails here too.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.integration.processes import Proc, WebhookSink, wait_for
from tests.ui.conftest import nameless_controls, screenshot

pytestmark = pytest.mark.browser
# Playwright is in the test extra; without it the module skips rather than failing to import.
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

Daemon = tuple[Proc, WebhookSink]


def wait_for_history(proc: Proc, sink: WebhookSink) -> None:
    """Until the db receiver's first notification is in the history."""
    sink.wait_count(1)
    with httpx.Client(base_url=proc.url) as c:
        wait_for(lambda: c.get("/api/v1/history", params={"receiver": "db"}).json()["items"], 20)


def test_alerts_page_shows_alerts_grouped_by_route_group(page: Any, daemon: Daemon) -> None:
    """The alerts page lists each alert in its receiver's group, group labels shown once,
    with age, annotations (URLs as links) and its generatorURL."""
    proc, _ = daemon
    page.goto(proc.url + "/")
    # db1's group is {alertname, instance} on route db: those labels sit in the group
    # header, so the alert itself lists only its other labels.
    group = page.get_by_role(
        "region", name=re.compile(r'^Group db \{alertname="DiskFull", instance="db1"\}')
    )
    expect(group).to_be_visible()
    expect(group.locator("header")).to_contain_text('instance="db1"')
    alert = group.get_by_role("article")
    expect(alert).to_contain_text("started")
    expect(alert).to_contain_text("Disk /var is 97% full")
    expect(alert.locator(".labels").first).not_to_contain_text("alertname=")
    link = alert.get_by_role("link", name="https://runbooks.example.com/disk")
    expect(link).to_have_attribute("href", "https://runbooks.example.com/disk")
    expect(alert.get_by_role("link", name="Source of alert DiskFull")).to_have_attribute(
        "href", "http://prometheus.example.com/graph?g0.expr=disk"
    )
    web = page.get_by_role("region", name=re.compile(r"^Group default"))
    expect(web.get_by_role("article")).to_have_count(2)
    expect(web.locator("header")).to_contain_text('team="web"')


def test_filter_bar_filters_and_completes_label_names_and_values(page: Any, daemon: Daemon) -> None:
    """Typing a matcher filters the list; completion offers label names, then that label's values."""
    proc, _ = daemon
    page.goto(proc.url + "/")
    expect(page.get_by_role("article")).to_have_count(4)
    box = page.get_by_label("Alert filter")
    box.fill("inst")
    options = page.locator("#alert-filter-completions option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", "instance=")
    box.fill("instance=")
    expect(options).to_have_count(4)
    expect(options.first).to_have_attribute("value", 'instance="db1"')
    box.fill('instance=~"web.*"')
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_role("article")).to_have_count(2)
    expect(page.get_by_role("article", name="Alert HighLatency")).to_have_count(2)
    assert "filter=" in page.url
    # A label chip adds itself to the filter.
    page.get_by_role("button", name='Filter by instance="web2"').click()
    expect(page.get_by_role("article")).to_have_count(1)
    box.fill('instance=~"("')
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("400")


def test_grouping_by_label_and_none(page: Any, daemon: Daemon) -> None:
    """Grouping switches to one group per value of a chosen label, or to a single list."""
    proc, _ = daemon
    page.goto(proc.url + "/")
    expect(page.get_by_role("article")).to_have_count(4)
    grouping = page.get_by_label("Group by")
    grouping.select_option("team")
    expect(page.get_by_role("region", name=re.compile("^Group team"))).to_have_count(2)
    expect(
        page.get_by_role("region", name='Group team {team="web"}').get_by_role("article")
    ).to_have_count(2)
    grouping.select_option("@none")
    expect(page.get_by_role("region", name=re.compile("^Group All alerts"))).to_have_count(1)
    expect(page.get_by_role("article")).to_have_count(4)


def test_alerts_refresh_live_without_reload(page: Any, daemon: Daemon) -> None:
    """A new alert shows up on an open page by itself (the page polls the API)."""
    proc, _ = daemon
    page.goto(proc.url + "/?filter=" + "alertname%3DLiveOne")
    expect(page.get_by_text("No alerts match.")).to_be_visible()
    page.evaluate("window.__marker = 1")
    proc.post_alerts([{"labels": {"alertname": "LiveOne"}}])
    expect(page.get_by_role("article", name="Alert LiveOne")).to_be_visible(timeout=25_000)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_silence_from_an_alert_with_preview_then_expire_and_recreate(
    page: Any, daemon: Daemon
) -> None:
    """ "Silence" on an alert opens a pre-filled form whose preview lists the alert; saving
    silences it, "Expire" moves it to the expired list, "Recreate" offers it again."""
    proc, _ = daemon
    page.goto(proc.url + "/")
    group = page.get_by_role(
        "region", name=re.compile(r'^Group db \{alertname="DiskFull", instance="db2"\}')
    )
    group.get_by_role("link", name="New silence for alert DiskFull").click()
    matchers = page.get_by_label("Matchers")
    expect(matchers).to_have_value(re.compile(r'instance="db2"'))
    expect(page.locator("#silence-preview-summary")).to_have_text("1 alert matches now.")
    preview = page.locator("#silence-preview")
    expect(preview).to_contain_text('instance="db2"')
    # The preview follows the edit: widening to both DiskFull alerts shows two.
    matchers.fill('{alertname="DiskFull"}')
    expect(page.locator("#silence-preview-summary")).to_have_text("2 alerts match now.")
    screenshot(page, "silence-editor-light")
    matchers.fill('{alertname="DiskFull", instance="db2"}')
    page.get_by_role("button", name="Duration 4 hours").click()
    page.get_by_label("Created by").fill("alice")
    page.get_by_label("Comment").fill("replacing the disk")
    page.get_by_role("button", name="Save silence").click()
    silence = page.get_by_role("article", name=re.compile("^Silence .*db2"))
    expect(silence).to_contain_text("replacing the disk")
    expect(silence).to_contain_text("by alice")
    expect(page.get_by_role("tab", name="Active (1)")).to_be_visible()
    with httpx.Client(base_url=proc.url) as c:
        [stored] = [s for s in c.get("/api/v2/silences").json() if s["status"]["state"] == "active"]
    assert stored["comment"] == "replacing the disk"
    assert {m["name"]: m["value"] for m in stored["matchers"]} == {
        "alertname": "DiskFull",
        "instance": "db2",
    }
    page.goto(proc.url + "/")
    silenced = page.get_by_role("region", name=re.compile(r'instance="db2"\}')).get_by_role(
        "article"
    )
    expect(silenced).to_contain_text("silenced")
    page.goto(proc.url + "/ui/silences")
    page.get_by_role("article", name=re.compile("^Silence .*db2")).get_by_role(
        "button", name="Expire"
    ).click()
    expect(page.get_by_role("tab", name="Expired (1)")).to_be_visible()
    page.get_by_role("tab", name="Expired (1)").click()
    expired = page.get_by_role("article", name=re.compile("^Silence .*db2"))
    expect(expired).to_contain_text("expired")
    expired.get_by_role("button", name="Recreate").click()
    expect(page.get_by_role("heading", name="Recreate silence")).to_be_visible()
    expect(page.get_by_label("Matchers")).to_have_value(re.compile(r'instance="db2"'))


def test_routing_tree_highlights_the_path_of_test_labels(page: Any, daemon: Daemon) -> None:
    """The tree shows every route with receiver and timers; test labels highlight their path."""
    proc, _ = daemon
    page.goto(proc.url + "/ui/routes")
    nodes = page.locator(".node")
    expect(nodes).to_have_count(3)
    expect(nodes.nth(1)).to_contain_text('team="db"')
    expect(nodes.nth(1)).to_contain_text("interval 1h")
    page.get_by_label("Labels to test").fill('{team="db", severity="critical"}')
    page.get_by_role("button", name="Test labels").click()
    expect(page.locator("#route-result")).to_have_text("These labels notify: db")
    expect(page.locator(".node.matched")).to_have_count(2)
    expect(page.locator(".node.final")).to_contain_text("receiver: db")
    expect(page.locator(".node.dimmed")).to_contain_text("receiver: pager")


def test_why_view_explains_an_alert(page: Any, daemon: Daemon) -> None:
    """From an alert, "Why" shows its route path, its group with the next flush, what mutes
    it, and the notifications of its group."""
    proc, sink = daemon
    wait_for_history(proc, sink)
    page.goto(proc.url + "/")
    group = page.get_by_role(
        "region", name=re.compile(r'^Group db \{alertname="DiskFull", instance="db1"\}')
    )
    group.get_by_role("link", name="Why: explain alert DiskFull").click()
    path = page.get_by_label("Route path to db")
    expect(path.locator(".node")).to_have_count(2)
    expect(page.get_by_text(re.compile(r"Next flush in \d+m"))).to_be_visible()
    history = page.get_by_role("region", name="Notifications of its group")
    expect(history.get_by_role("row")).not_to_have_count(0)
    expect(history).to_contain_text("sent")
    expect(history).to_contain_text("first notification")


def test_history_search_table_and_chart(page: Any, daemon: Daemon) -> None:
    """The history page searches by receiver and outcome; rows and a chart come back."""
    proc, sink = daemon
    wait_for_history(proc, sink)
    page.goto(proc.url + "/ui/history")
    page.get_by_label("Receiver").fill("db")
    page.get_by_label("Outcome").select_option("sent")
    page.get_by_role("button", name="Search history").click()
    rows = page.locator("#history-table tbody tr")
    expect(rows.first).to_contain_text("db")
    expect(rows.first).to_contain_text("sent")
    chart = page.get_by_role("img", name=re.compile(r"^Notifications over time: \d+ attempts"))
    expect(chart).to_be_visible()
    # The page's first (unfiltered) search may render first: the URL shows the search
    # that answered last, and only the latest search's answer is shown.
    expect(page).to_have_url(re.compile(r"receiver=db"))
    expect(page.locator(".legend")).to_contain_text("db · sent")
    page.get_by_label("Receiver").fill("pager")
    page.get_by_role("button", name="Search history").click()
    expect(page.get_by_text("No notifications in this range.")).to_be_visible()


def test_history_shows_the_latest_search_when_answers_cross(page: Any, daemon: Daemon) -> None:
    """The page's first search answering after the user's own does not overwrite it."""
    proc, sink = daemon
    wait_for_history(proc, sink)
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if not held and "receiver=" not in route.request.url:
            held.append(route)  # answered below, after the user's search
        else:
            route.continue_()

    page.route("**/api/v1/history?*", hold_the_first)
    page.goto(proc.url + "/ui/history")
    page.get_by_label("Receiver").fill("pager")
    page.get_by_role("button", name="Search history").click()
    expect(page.get_by_text("No notifications in this range.")).to_be_visible()
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_timeout(500)
    expect(page.get_by_text("No notifications in this range.")).to_be_visible()
    expect(page.locator("#history-table tbody tr")).to_have_count(0)
    assert "receiver=pager" in page.url


def test_status_page_shows_config_cluster_version_and_reload(page: Any, daemon: Daemon) -> None:
    """Status shows the version, uptime, the last reload's result, cluster state and config."""
    proc, _ = daemon
    page.goto(proc.url + "/ui/status")
    expect(page.locator("#status-version")).to_contain_text("0.1.0")
    expect(page.locator("#status-runtime")).to_contain_text("Last reload")
    expect(page.locator("#status-runtime")).to_contain_text("succeeded")
    expect(page.locator("#status-cluster")).to_contain_text("disabled")
    expect(page.get_by_label("Loaded configuration")).to_contain_text("group_wait: 1s")


_PAGES = [
    "/",
    "/ui/silences",
    "/ui/why?filter=instance%3Ddb1",
    "/ui/routes",
    "/ui/status",
    "/ui/history",
]


@pytest.mark.parametrize("path", _PAGES)
def test_every_control_has_an_accessible_name(page: Any, daemon: Daemon, path: str) -> None:
    """Every button, link, input and select on each page has a name a screen reader reads."""
    proc, _ = daemon
    page.goto(proc.url + path)
    page.wait_for_load_state("networkidle")
    assert nameless_controls(page) == []


def test_keyboard_reaches_the_filter_and_runs_it(page: Any, daemon: Daemon) -> None:
    """Without a mouse: Tab reaches the filter box, typing and Enter filters."""
    proc, _ = daemon
    page.goto(proc.url + "/")
    expect(page.get_by_role("article")).not_to_have_count(0)
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "alert-filter":
            break
    assert page.evaluate("document.activeElement.id") == "alert-filter"
    page.keyboard.type('alertname="HighLatency"')
    page.keyboard.press("Enter")
    expect(page.get_by_role("article", name="Alert HighLatency")).to_have_count(2)
    expect(page.get_by_role("article")).to_have_count(2)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", _PAGES)
def test_screenshots_light_and_dark(browser: Any, daemon: Daemon, path: str, scheme: str) -> None:
    """Each page renders in the system's light and dark scheme, with no stray script value
    ("null", "undefined", "[object ...]") in its text (screenshots for review)."""
    proc, sink = daemon
    # With a notification recorded, the history and why screenshots show real rows.
    wait_for_history(proc, sink)
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1200, "height": 900})
    try:
        page = context.new_page()
        page.goto(proc.url + path)
        page.wait_for_load_state("networkidle")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        # Dark pages have a dark background, light pages a light one.
        r, g, b = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert (r + g + b < 150) == (scheme == "dark"), background
        # No script value leaked into the page as text.
        text = page.locator("body").inner_text()
        assert not re.search(r"\bnull\b|\bundefined\b|\[object |\bNaN\b", text), text
        name = path.strip("/").split("?")[0].replace("ui/", "") or "alerts"
        screenshot(page, f"{name}-{scheme}")
    finally:
        context.close()


def test_alerts_page_is_readable_on_a_phone(browser: Any, daemon: Daemon) -> None:
    """At a phone's width nothing overflows sideways."""
    proc, _ = daemon
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        for path in ("/", "/ui/why?filter=instance%3Ddb1", "/ui/history"):
            page.goto(proc.url + path)
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        page.goto(proc.url + "/")
        page.wait_for_load_state("networkidle")
        screenshot(page, "alerts-phone")
    finally:
        context.close()


def test_muted_toggle_hides_alerts_held_back_by_time_intervals(browser: Any, tmp_path: Any) -> None:
    """An alert whose route is in a mute time interval now is marked "muted", and unticking
    "Muted" hides it while the others stay."""
    from tests.integration.processes import run_tocsin

    config = """
route:
  receiver: default
  routes:
    - matchers: ['team="night"']
      receiver: default
      mute_time_intervals: [always]
receivers: [{name: default}]
time_intervals:
  - name: always
    time_intervals: [{weekdays: ['sunday:saturday']}]
"""
    with run_tocsin(tmp_path, config) as proc:
        proc.post_alerts(
            [
                {"labels": {"alertname": "Nightly", "team": "night"}},
                {"labels": {"alertname": "Day"}},
            ]
        )
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(proc.url + "/")
            nightly = page.get_by_role("article", name="Alert Nightly")
            expect(nightly).to_contain_text("muted")
            expect(page.get_by_role("article", name="Alert Day")).not_to_contain_text("muted")
            page.get_by_label("Muted").uncheck()
            expect(nightly).to_have_count(0)
            expect(page.get_by_role("article", name="Alert Day")).to_have_count(1)
        finally:
            context.close()


def test_edit_a_silence_changes_it_in_place(page: Any, daemon: Daemon) -> None:
    """ "Edit" opens the silence in the form; saving keeps its ID and changes its comment."""
    import datetime

    proc, _ = daemon
    now = datetime.datetime.now(datetime.UTC)
    with httpx.Client(base_url=proc.url) as c:
        sid = c.post(
            "/api/v2/silences",
            json={
                "matchers": [{"name": "alertname", "value": "Edited", "isRegex": False}],
                "startsAt": now.isoformat(),
                "endsAt": (now + datetime.timedelta(hours=1)).isoformat(),
                "createdBy": "bob",
                "comment": "first words",
            },
        ).json()["silenceID"]
    page.goto(proc.url + "/ui/silences")
    card = page.get_by_role("article", name=re.compile("Edited"))
    card.get_by_role("button", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit silence")).to_be_visible()
    expect(page.get_by_label("Comment")).to_have_value("first words")
    page.get_by_label("Comment").fill("second thoughts")
    page.get_by_role("button", name="Save silence").click()
    expect(page.get_by_role("article", name=re.compile("Edited"))).to_contain_text(
        "second thoughts"
    )
    with httpx.Client(base_url=proc.url) as c:
        active = [
            s
            for s in c.get("/api/v2/silences").json()
            if s["status"]["state"] == "active" and s["matchers"][0]["value"] == "Edited"
        ]
    # Alertmanager updates a silence in place when only the comment changes.
    assert [(s["id"], s["comment"]) for s in active] == [(sid, "second thoughts")]
