"""tocsinctl against a real tocsin with tenancy on: --tenant, long imports on a terminal,
and errors that say what to do."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.ctl.progress import progress_line
from tests.ctl.terminal import run_on_tty
from tests.integration.processes import ROOT, Proc, free_port, run_tocsin

TOKENS = {"admin": "ctl-admin-secret", "alice": "ctl-alice-token", "bob": "ctl-bob-token"}


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# alice and bob are the tenants of the Notification Manager fixtures.
TENANCY = f"""\
admins: [{{name: ops, token_sha256: {_sha(TOKENS["admin"])}}}]
tenants:
  alice: {{tokens_sha256: [{_sha(TOKENS["alice"])}]}}
  bob: {{tokens_sha256: [{_sha(TOKENS["bob"])}]}}
"""

CONFIG = "route: {receiver: global, group_wait: 1h}\nreceivers: [{name: global}]\n"
NM_FIXTURES = Path(__file__).parent / "fixtures" / "nm"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME without tocsinctl.yml or amtool.yml, so only the flags given count."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("tenancy")
    (tmp / "tenancy.yml").write_text(TENANCY)
    with run_tocsin(tmp, CONFIG, f"--tenancy.config-file={tmp / 'tenancy.yml'}") as proc:
        yield proc


def _argv(url: str, who: str | None, args: tuple[str, ...]) -> list[str]:
    argv = [sys.executable, "-m", "daemon.ctl", f"--alertmanager.url={url}"]
    if who is not None:
        argv.append(f"--bearer-token={TOKENS.get(who, who)}")
    return [*argv, *args]


def ctl(
    url: str, home: Path, *args: str, who: str | None = "admin", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """tocsinctl run to the end; ``who`` names the token (a key of TOKENS, or the token)."""
    return subprocess.run(
        _argv(url, who, args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "HOME": str(home)},
    )


def test_tenant_flag_scopes_silences_and_alerts(server: Proc, home: Path) -> None:
    """An admin's --tenant sends X-Scope-OrgID: what it adds is that tenant's alone, and
    queries and why see that tenant's alone."""
    added = ctl(server.url, home, "--tenant=alice", "silence", "add", "OnlyAlice", "-c", "x")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    assert ctl(server.url, home, "--tenant=alice", "silence", "query", "-q").stdout.split() == [
        silence_id
    ]
    assert ctl(server.url, home, "--tenant=bob", "silence", "query", "-q").stdout == ""
    # A global flag: after the command too, as amtool takes its global flags.
    after = ctl(server.url, home, "silence", "query", "-q", "--tenant", "alice")
    assert after.stdout.split() == [silence_id]
    # The tenant's own token sees it with no --tenant; the same --tenant is allowed.
    mine = ctl(server.url, home, "silence", "query", "-q", who="alice").stdout.split()
    assert mine == [silence_id]
    named = ctl(server.url, home, "--tenant=alice", "silence", "query", "-q", who="alice")
    assert named.stdout.split() == [silence_id]

    alert = ctl(server.url, home, "--tenant=bob", "alert", "add", "OnlyBob", "team=b")
    assert alert.returncode == 0, alert.stderr
    bob = ctl(server.url, home, "--tenant=bob", "-o", "json", "alert", "query").stdout
    assert [a["labels"]["alertname"] for a in json.loads(bob)] == ["OnlyBob"]
    alice = ctl(server.url, home, "--tenant=alice", "-o", "json", "alert", "query").stdout
    assert json.loads(alice) == []
    # why looks in the tenant named, and says where else to look when it finds nothing.
    why = ctl(server.url, home, "--tenant=bob", "why", "alertname=OnlyBob")
    assert why.returncode == 0 and why.stdout.startswith('Alert {alertname="OnlyBob"'), why
    elsewhere = ctl(server.url, home, "--tenant=alice", "why", "alertname=OnlyBob")
    assert elsewhere.returncode == 1
    assert "no alert matches" in elsewhere.stderr and "--tenant" in elsewhere.stderr


@pytest.mark.parametrize(
    ("who", "args", "message", "hint"),
    [
        (
            None,
            ("silence", "query"),
            "HTTP 401: authentication required",
            "hint: the server wants credentials: set --bearer-token",
        ),
        (
            "not-a-token",
            ("silence", "query"),
            "HTTP 401: invalid bearer token",
            "hint: the server refused the credentials sent: check the token",
        ),
        (
            "alice",
            ("--tenant=bob", "silence", "query"),
            "HTTP 403: a tenant token may only name its own tenant",
            "hint: this token may not act for tenant 'bob': drop --tenant",
        ),
        (
            "alice",
            ("tenant", "list"),
            "HTTP 403: this endpoint needs an admin token",
            "hint: this token may not do this: use an admin token",
        ),
        (
            "admin",
            ("--tenant=nobody", "silence", "query"),
            "HTTP 404: unknown tenant 'nobody' in X-Scope-OrgID",
            "hint: check the name given to --tenant; 'tocsinctl tenant list'",
        ),
        (
            "admin",
            ("--tenant=nobody", "--no-version-check", "tenant", "config", "get"),
            "HTTP 404: unknown tenant 'nobody'",
            "hint: check the name given to --tenant",
        ),
        (
            "admin",
            ("--tenant=nobody", "history"),
            "HTTP 404: unknown tenant 'nobody'",
            "hint: check the name given to --tenant",
        ),
        (
            "admin",
            ("--tenant=nobody", "why", "alertname=X"),
            "HTTP 404: unknown tenant 'nobody'",
            "hint: check the name given to --tenant",
        ),
    ],
)
def test_refusals_say_what_to_do(
    server: Proc, home: Path, who: str | None, args: tuple[str, ...], message: str, hint: str
) -> None:
    """401, 403 and an unknown tenant each end in a hint that says what to change."""
    done = ctl(server.url, home, *args, who=who)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0].startswith("tocsinctl: error: ") and message in lines[0], done.stderr
    assert lines[1].startswith(hint), done.stderr


@pytest.mark.parametrize(
    "args", [("silence", "query"), ("tenant", "list"), ("--no-version-check", "tenant", "config")]
)
def test_connection_refused_says_what_to_do(home: Path, args: tuple[str, ...]) -> None:
    """Nothing listening: the error names the URL and the hint how to point elsewhere."""
    url = f"http://127.0.0.1:{free_port()}"
    done = ctl(url, home, *args)
    assert done.returncode == 1
    assert done.stderr.splitlines()[:2] == [
        f"tocsinctl: error: cannot connect to {url}: Connection refused",
        f"hint: is tocsin running at {url}? set --alertmanager.url, or alertmanager.url "
        "in ~/.config/tocsin/tocsinctl.yml",
    ]


def _silences(count: int) -> str:
    return json.dumps(
        [
            {
                "id": "",
                "matchers": [
                    {"name": "alertname", "value": f"Bulk{i}", "isRegex": False, "isEqual": True}
                ],
                "startsAt": "2026-01-01T00:00:00.000Z",
                "endsAt": "2099-01-01T00:00:00.000Z",
                "createdBy": "bulk",
                "comment": "progress test",
            }
            for i in range(count)
        ]
    )


def test_importing_thousands_of_silences_shows_progress_on_a_tty(server: Proc, home: Path) -> None:
    """2000 silences: on a terminal the bar is drawn at once, then once per percent, ends at
    2000/2000; in a pipe stderr stays empty. Every silence is created either way."""
    bulk = _silences(2000)
    argv = _argv(server.url, "admin", ("--tenant=bob", "silence", "import"))
    status, stdout, shown = run_on_tty(
        argv, cwd=ROOT, env={**os.environ, "HOME": str(home)}, stdin=bulk
    )
    assert status == 0
    assert len(stdout.split()) == 2000
    assert shown.count(b"\rimporting silences [") == 101
    assert f"\r{progress_line('silences', 20, 2000)}".encode() in shown
    assert shown.endswith(f"\r{progress_line('silences', 2000, 2000)}\r\n".encode())

    piped = ctl(server.url, home, "--tenant=alice", "silence", "import", stdin=_silences(50))
    assert piped.returncode == 0 and piped.stderr == ""
    assert len(piped.stdout.split()) == 50


def test_nm_import_shows_progress_on_a_tty_only(server: Proc, home: Path) -> None:
    """import notification-manager draws one bar over the tenant configs and silences on
    a terminal, and writes nothing to stderr in a pipe; both import the same."""
    args = ("--no-version-check", "import", "notification-manager", str(NM_FIXTURES))
    status, stdout, shown = run_on_tty(
        _argv(server.url, "admin", args), cwd=ROOT, env={**os.environ, "HOME": str(home)}
    )
    # 2: some fixture items cannot be mapped and are reported on stdout.
    assert status == 2
    assert "Tenant alice: config" in stdout and "Tenant bob: config" in stdout
    # Two tenant configs and two silences.
    what = "tenants and silences"
    assert (
        shown == b"".join(f"\r{progress_line(what, n, 4)}".encode() for n in range(1, 5)) + b"\r\n"
    )

    piped = ctl(server.url, home, *args)
    assert piped.returncode == 2 and piped.stderr == ""
    assert piped.stdout == stdout
    tenants = {t["id"]: t for t in json.loads(ctl(server.url, home, "-o", "json", "tenant").stdout)}
    assert tenants["alice"]["config"] == tenants["bob"]["config"] == "custom"
