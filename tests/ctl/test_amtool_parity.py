"""tocsinctl side by side with the real amtool 0.25, both pointed at one running server.

Each server (a tocsin and a real Alertmanager 0.25) is seeded once through amtool; then
for each command the two tools must print the same bytes and exit alike. Differences
are asserted only where tocsinctl documents a better answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.ctl.progress import progress_line
from daemon.gocompat.timestamp import parse_rfc3339
from tests.ctl.terminal import run_on_tty
from tests.integration.cluster_processes import converged, start_cluster
from tests.integration.processes import (
    AMTOOL,
    ROOT,
    Proc,
    run_alertmanager,
    run_tocsin,
    wait_for,
)

pytestmark = pytest.mark.alertmanager

CONFIG = """\
route:
  receiver: default
  group_wait: 1h
  routes:
  - matchers: [team="db"]
    receiver: db
    continue: true
    routes:
    - matchers: [severity=~"crit|page"]
      receiver: db-pager
    - match: {env: prod}
      receiver: db-prod
  - matchers: [team="web", 'x!="y"']
    receiver: web
  - receiver: catchall
inhibit_rules:
- source_matchers: [alertname="Outage"]
  target_matchers: [alertname="Disk"]
  equal: [node]
receivers:
- name: default
- name: db
- name: db-pager
- name: db-prod
- name: web
- name: catchall
"""

SEED = [
    [
        "alert",
        "add",
        "Disk",
        "node=a",
        "--annotation=summary=disk <full> & more",
        "--generator-url=http://prom/graph?g0.expr=up",
        "--start=2024-05-01T10:00:00Z",
    ],
    ["alert", "add", "CPU", "team=db", "severity=crit", "--start=2024-05-01T09:00:00Z"],
    ["alert", "add", "Outage", "node=b", "--start=2024-05-01T08:00:00Z"],
    ["alert", "add", "Disk", "node=b", "--start=2024-05-01T11:00:00Z"],
    ["alert", "add", "alertname=Mem", "team=web", "--annotation=summary=ram"],
    [
        "silence",
        "add",
        "alertname=CPU",
        "-c",
        "cpu work",
        "-a",
        "ops",
        "--start=2024-05-01T00:00:00Z",
        "--end=2099-01-01T00:00:00Z",
    ],
    ["silence", "add", "Disk", 'node=~"a|c"', "-c", "multi", "-a", "me", "-d", "2h"],
]


def _env(home: Path) -> dict[str, str]:
    # A HOME of our own: neither tool may read the user's amtool.yml or tocsinctl.yml.
    return {**os.environ, "HOME": str(home)}


def amtool(
    url: str, *args: str, home: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AMTOOL, f"--alertmanager.url={url}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(home),
    )


def tocsinctl(
    url: str | None, *args: str, home: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "daemon.ctl"]
    if url is not None:
        argv.append(f"--alertmanager.url={url}")
    return subprocess.run(
        [*argv, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=_env(home),
    )


def _processed(url: str) -> bool:
    alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    return len(alerts) == 5 and all(a["status"]["state"] != "unprocessed" for a in alerts)


@pytest.fixture(scope="module", params=["tocsin", "alertmanager"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp(request.param)
    home = tmp_path_factory.mktemp("home")
    run = run_tocsin if request.param == "tocsin" else run_alertmanager
    with run(tmp, CONFIG) as proc:
        for args in SEED:
            done = amtool(proc.url, *args, home=home)
            assert done.returncode == 0, done.stderr
        gone = amtool(proc.url, "silence", "add", "Gone", "-c", "old", home=home).stdout.strip()
        assert amtool(proc.url, "silence", "expire", gone, home=home).returncode == 0
        deadline = time.monotonic() + 30
        while not _processed(proc.url):
            assert time.monotonic() < deadline, "alerts not processed in 30 s"
            time.sleep(0.1)
        yield proc


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


QUERIES = [
    ["alert", "query"],
    ["alert"],
    ["alert", "Disk"],
    ["alert", "query", "-s", "-i", "-a", "-u"],
    ["alert", "query", "--inhibited"],
    ["alert", "query", "-r", "catch.*"],
    ["alert", "query", "node=~a.*"],
    ["silence", "query"],
    ["silence"],
    ["silence", "query", "Disk"],
    ["silence", "query", "--expired"],
    ["silence", "query", "--within=4h"],
    ["silence", "query", "--created-by=ops"],
    ["cluster", "show"],
    ["cluster"],
]


@pytest.mark.parametrize("fmt", ["simple", "extended", "json"])
@pytest.mark.parametrize("args", QUERIES, ids=" ".join)
def test_queries_print_what_amtool_prints(
    server: Proc, home: Path, fmt: str, args: list[str]
) -> None:
    """Alert, silence and cluster queries: same bytes as amtool in every output format."""
    ours = tocsinctl(server.url, "-o", fmt, *args, home=home)
    theirs = amtool(server.url, "-o", fmt, *args, home=home)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["silence", "query", "-q"],
        ["silence", "query", "-q", "--expired"],
        ["config", "show"],
        ["-o", "json", "config", "show"],
        ["config", "routes", "show"],
        ["config", "routes"],
        ["config", "routes", "test", "team=db", "severity=crit"],
        ["config", "routes", "test", "--tree", "team=db", "severity=crit"],
        ["config", "routes", "test", "--tree", "team=db", "env=prod"],
        ["config", "routes", "test", "--tree", "team=web", "x=z"],
        ["config", "routes", "test", "--verify.receivers=web,catchall", "team=web"],
        ["config", "routes", "test", "--verify.receivers=web", "team=web"],
        ["config", "routes", "test"],
    ],
    ids=" ".join,
)
def test_other_commands_print_what_amtool_prints(server: Proc, home: Path, args: list[str]) -> None:
    """IDs only, config show, and routes read from the server: same bytes and exit status."""
    ours = tocsinctl(server.url, *args, home=home)
    theirs = amtool(server.url, *args, home=home)
    assert ours.returncode == theirs.returncode, ours.stderr
    assert ours.stdout == theirs.stdout


def test_config_show_extended_prints_values(server: Proc, home: Path) -> None:
    """-o extended config show prints the config and version values amtool shows as pointers."""
    status = httpx.get(f"{server.url}/api/v2/status", timeout=5).json()
    ours = tocsinctl(server.url, "-o", "extended", "config", "show", home=home)
    assert ours.returncode == 0, ours.stderr
    version = status["versionInfo"]
    assert ours.stdout.startswith(status["config"]["original"] + "\n")
    assert f"\nversion {version['version']}\nbranch {version['branch']}\n" in ours.stdout
    theirs = amtool(server.url, "-o", "extended", "config", "show", home=home)
    assert theirs.stdout.startswith("0xc"), "amtool 0.25 prints a pointer here"


def _api(url: str, path: str) -> Any:
    return httpx.get(f"{url}/api/v2{path}", timeout=5).json()


def _without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


def test_silence_add_posts_what_amtool_posts(server: Proc, home: Path) -> None:
    """The same silence add by both tools stores the same silence; each prints its ID."""
    args = [
        "silence",
        "add",
        "AddMe",
        'job=~"api|web"',
        "env!=dev",
        "-c",
        "deploy <v2>",
        "-a",
        "ci",
        "--start=2030-01-01T00:00:00Z",
        "-d",
        "90m",
    ]
    ours = tocsinctl(server.url, *args, home=home)
    theirs = amtool(server.url, *args, home=home)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    made = [_api(server.url, f"/silence/{out.stdout.strip()}") for out in (ours, theirs)]
    assert _without(made[0], "id", "updatedAt") == _without(made[1], "id", "updatedAt")
    assert made[0]["endsAt"] == "2030-01-01T01:30:00.000Z"


def test_alert_add_posts_what_amtool_posts(server: Proc, home: Path) -> None:
    """The same alert add by both tools (bar the alertname) stores the same alert."""
    rest = [
        "tool=x",
        "--annotation=summary=s",
        "--annotation=runbook=http://rb",
        "--generator-url=http://gen",
        "--start=2024-06-01T00:00:00Z",
        "--end=2099-06-01T00:00:00+02:00",
    ]
    assert tocsinctl(server.url, "alert", "add", "AddOurs", *rest, home=home).returncode == 0
    assert amtool(server.url, "alert", "add", "AddTheirs", *rest, home=home).returncode == 0
    found = {
        a["labels"]["alertname"]: a
        for a in _api(server.url, "/alerts")
        if a["labels"]["alertname"] in ("AddOurs", "AddTheirs")
    }
    ours, theirs = (
        {
            **_without(found[name], "fingerprint", "updatedAt", "status"),
            "labels": _without(found[name]["labels"], "alertname"),
        }
        for name in ("AddOurs", "AddTheirs")
    )
    assert ours == theirs
    assert parse_rfc3339(ours["endsAt"]) == parse_rfc3339("2099-05-31T22:00:00Z")


def test_silence_update_matches_amtool(server: Proc, home: Path) -> None:
    """silence update on twin silences gives the same result as amtool's, -q the new IDs."""
    twins = []
    for _ in range(2):
        made = tocsinctl(
            server.url,
            *("silence", "add", "Upd", "-c", "c", "-a", "a", "--start=2031-01-01T00:00:00Z"),
            home=home,
        )
        twins.append(made.stdout.strip())
    change = ["-d", "3h", "-c", "longer", "-o", "json"]
    ours = tocsinctl(server.url, "silence", "update", twins[0], *change, home=home)
    theirs = amtool(server.url, "silence", "update", twins[1], *change, home=home)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    ours_json, theirs_json = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert [_without(s, "id", "updatedAt") for s in ours_json] == [
        _without(s, "id", "updatedAt") for s in theirs_json
    ]
    assert ours_json[0]["endsAt"] == "2031-01-01T03:00:00.000Z"
    quiet = tocsinctl(server.url, "silence", "update", "-q", "-c", "again", twins[0], home=home)
    assert quiet.stdout == f"{_api(server.url, '/silence/' + twins[0])['id']}\n"
    theirs_quiet = amtool(server.url, "silence", "update", "-q", "-c", "again", twins[1], home=home)
    assert theirs_quiet.stdout.startswith("0xc"), "amtool 0.25 prints a pointer here"


def test_expire_takes_query_ids(server: Proc, home: Path) -> None:
    """tocsinctl silence expire $(tocsinctl silence query -q ...) expires exactly those."""
    for comment in ("one", "two"):
        tocsinctl(server.url, "silence", "add", "Pipe", "-c", comment, home=home)
    before = tocsinctl(server.url, "silence", "query", "-q", "Pipe", home=home).stdout.split()
    assert len(before) == 2
    me = f"{shlex.quote(sys.executable)} -m daemon.ctl --alertmanager.url={server.url}"
    done = subprocess.run(
        ["bash", "-c", f"{me} silence expire $({me} silence query -q Pipe)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=_env(home),
    )
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert tocsinctl(server.url, "silence", "query", "-q", "Pipe", home=home).stdout == ""
    expired = tocsinctl(server.url, "silence", "query", "-q", "--expired", "Pipe", home=home)
    assert sorted(expired.stdout.split()) == sorted(before)


def _content(silences: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((json.dumps(s["matchers"]), s["comment"], s["endsAt"]) for s in silences)


def test_import_reads_query_json_both_ways(server: Proc, home: Path, tmp_path: Path) -> None:
    """Exported with one tool and imported with the other (both ways), silences come back."""
    for comment in ("a", "b", "c"):
        tocsinctl(server.url, "silence", "add", "Imp", f"n={comment}", "-c", comment, home=home)
    exported = tocsinctl(server.url, "-o", "json", "silence", "query", "Imp", home=home).stdout
    assert exported == amtool(server.url, "-o", "json", "silence", "query", "Imp", home=home).stdout
    original = json.loads(exported)
    for importer in (tocsinctl, amtool):
        ids = [s["id"] for s in json.loads(exported)]
        assert tocsinctl(server.url, "silence", "expire", *ids, home=home).returncode == 0
        (tmp_path / "export.json").write_text(exported)
        done = importer(server.url, "silence", "import", str(tmp_path / "export.json"), home=home)
        assert done.returncode == 0, done.stderr
        new_ids = done.stdout.split()
        assert len(new_ids) == 3
        back = json.loads(
            tocsinctl(server.url, "-o", "json", "silence", "query", "Imp", home=home).stdout
        )
        assert sorted(s["id"] for s in back) == sorted(new_ids)
        assert _content(back) == _content(original)
        exported = json.dumps(back)


def test_import_from_stdin_in_input_order(server: Proc, home: Path) -> None:
    """Import reads stdin; IDs come out in input order, new silences with --force."""
    made = [
        tocsinctl(
            server.url, "silence", "add", "Ord", f"i={i}", "-c", "x", home=home
        ).stdout.strip()
        for i in range(5)
    ]
    exported = tocsinctl(server.url, "-o", "json", "silence", "query", "Ord", home=home).stdout
    order = [s["matchers"][1]["value"] for s in json.loads(exported)]
    done = tocsinctl(server.url, "silence", "import", "--force", home=home, stdin=exported)
    assert done.returncode == 0, done.stderr
    new = done.stdout.split()
    assert len(new) == 5 and not set(new) & set(made)
    values = [_api(server.url, f"/silence/{i}")["matchers"][1]["value"] for i in new]
    assert values == order


def test_import_progress_only_on_a_tty(server: Proc, home: Path) -> None:
    """silence import shows progress when stderr is a terminal and stays quiet off one."""
    tocsinctl(server.url, "silence", "add", "Prog", "-c", "x", home=home)
    exported = tocsinctl(server.url, "-o", "json", "silence", "query", "Prog", home=home).stdout
    piped = tocsinctl(server.url, "silence", "import", "-f", home=home, stdin=exported)
    assert piped.returncode == 0 and piped.stderr == ""
    status, _, shown = run_on_tty(
        [
            sys.executable,
            "-m",
            "daemon.ctl",
            f"--alertmanager.url={server.url}",
            "silence",
            "import",
            "-f",
        ],
        cwd=ROOT,
        env=_env(home),
        stdin=exported,
    )
    assert status == 0
    assert f"\r{progress_line('silences', 1, 1)}\r\n".encode() in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["silence", "add", "X"], "comment required by config"),
        (["silence", "add", "-c", "x"], "no matchers specified"),
        (["silence", "add", "X", "-c", "x", "-d", "0"], "silence duration must be greater than 0"),
        (
            [
                "silence",
                "add",
                "X",
                "-c",
                "x",
                "--start=2030-01-02T00:00:00Z",
                "--end=2030-01-01T00:00:00Z",
            ],
            "silence cannot start after it ends",
        ),
        (["silence", "expire"], "no silence IDs specified"),
        (["silence", "update"], "no silence IDs specified"),
        (["config", "routes", "test", "foo"], "Failed to parse labels: bad matcher format: foo"),
        (["alert", "add", "X", "a!=b"], "labels must be specified as key=value pairs"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_refusals_match_amtool(server: Proc, home: Path, args: list[str], message: str) -> None:
    """Input amtool refuses is refused with amtool's message, exit 1, nothing on stdout."""
    ours = tocsinctl(server.url, *args, home=home)
    theirs = amtool(server.url, *args, home=home)
    assert ours.returncode == theirs.returncode == 1
    assert message in theirs.stderr
    assert ours.stderr.startswith(f"tocsinctl: error: {message}\n")
    assert ours.stdout == theirs.stdout == ""


def test_amtool_config_file_is_read_as_amtool_reads_it(server: Proc, home: Path) -> None:
    """$HOME/.config/prometheus/amtool.yml sets the URL and output of both tools alike."""
    config = home / ".config" / "prometheus" / "amtool.yml"
    config.parent.mkdir(parents=True)
    config.write_text(f"alertmanager.url: {server.url}\noutput: extended\nauthor: yaml-author\n")
    # One silence: with equal end times Go's sort may order rows either way.
    ours = tocsinctl(None, "silence", "query", "CPU", home=home)
    theirs = subprocess.run(
        [AMTOOL, "silence", "query", "CPU"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(home),
    )
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.startswith("ID  ") and "Updated At" in ours.stdout
    made = tocsinctl(None, "silence", "add", "Author", "-c", "x", home=home).stdout.strip()
    assert _api(server.url, f"/silence/{made}")["createdBy"] == "yaml-author"


def test_import_failures_are_counted(server: Proc, home: Path, tmp_path: Path) -> None:
    """A silence the server refuses is reported per silence, as amtool does; the run then
    fails with the count (amtool 0.25 counts in a race and may exit 0)."""
    good = json.loads(
        tocsinctl(server.url, "-o", "json", "silence", "query", "CPU", home=home).stdout
    )
    bad = {**good[0], "id": "", "matchers": []}
    (tmp_path / "mixed.json").write_text(json.dumps([good[0], bad]))
    for tool in (tocsinctl, amtool):
        done = tool(server.url, "silence", "import", "-f", str(tmp_path / "mixed.json"), home=home)
        assert len(done.stdout.split()) == 1
        assert "Error adding silence id=''" in done.stderr
    ours = tocsinctl(server.url, "silence", "import", "-f", str(tmp_path / "mixed.json"), home=home)
    assert ours.returncode == 1
    assert "tocsinctl: error: couldn't import 1 out of 2 silences\n" in ours.stderr


ROUTES_FILE = """\
route:
  receiver: root
  routes:
  - receiver: a
    matchers: ['svc=~"api|web"', 'env!="dev"']
    continue: true
  - receiver: b
    match_re: {team: "ops.*"}
    routes:
    - receiver: c
      matchers: ['quote="say \\"hi\\""']
  - receiver: d
receivers: [{name: root}, {name: a}, {name: b}, {name: c}, {name: d}]
"""


@pytest.mark.parametrize(
    "args",
    [
        ["show"],
        ["test", "--tree", "svc=api", "team=ops1"],
        ["test", "--tree", "team=ops", 'quote="say \\"hi\\""'],
        ["test", "--verify.receivers=a,d", "svc=web"],
        ["test", "--verify.receivers=a", "svc=web"],
    ],
    ids=" ".join,
)
def test_routes_from_a_config_file_as_amtool(home: Path, tmp_path: Path, args: list[str]) -> None:
    """config routes show|test --config.file: amtool's tree, receivers and exit status."""
    path = tmp_path / "routes.yml"
    path.write_text(ROUTES_FILE)
    argv = ["config", "routes", *args[:1], f"--config.file={path}", *args[1:]]
    ours = tocsinctl(None, *argv, home=home)
    theirs = amtool("http://127.0.0.1:9", *argv, home=home)
    assert ours.returncode == theirs.returncode, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stderr == ""


def test_cluster_show_on_a_real_cluster(tmp_path: Path, home: Path) -> None:
    """On a three-node tocsin cluster, cluster show prints amtool's bytes in every format."""
    with contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, tmp_path, "http://127.0.0.1:9/", 3)
        wait_for(lambda: converged(nodes), timeout=60)
        url = nodes[0].proc.url
        for fmt in ("simple", "extended", "json"):
            ours = tocsinctl(url, "-o", fmt, "cluster", "show", home=home)
            theirs = amtool(url, "-o", fmt, "cluster", "show", home=home)
            assert ours.returncode == theirs.returncode == 0, ours.stderr
            assert ours.stdout == theirs.stdout
        assert len(json.loads(ours.stdout)["peers"]) == 3
