"""``receiver test NAME``: a test notification through every integration of a receiver.

Calls tocsin's ``POST /api/v1/receivers/NAME/test`` (not an amtool command). Exit status:
0 if all integrations succeeded, 1 if any failed, 2 if the server could not be asked
(unreachable, unknown receiver, unexpected answer).
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import TextIO

from daemon.ctl.client import Api, server_message
from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.errors import CtlError

#: The server gives each integration 30 s; leave room for the answer itself.
RECEIVER_TEST_TIMEOUT = 60.0


def receiver_test(api: Api, name: str, out: TextIO) -> int:
    """Ask the server to test receiver ``name``; print results; return the exit status."""
    path = f"/api/v1/receivers/{urllib.parse.quote(name, safe='')}/test"
    try:
        # An empty JSON object: the endpoint takes only application/json, which a
        # browser cannot send cross-origin without a preflight.
        resp = api.request(
            "POST", path, json={}, timeout=max(RECEIVER_TEST_TIMEOUT, api.http.timeout.read or 0)
        )
    except CtlError as err:
        raise CtlError(err.message, hint=err.hint, status=2) from None
    if resp.status_code == 404:
        raise CtlError(
            f"receiver {name!r} not found at {api.base}",
            hint="receiver names are those under receivers: in the server's config "
            "(tocsinctl config show)",
            status=2,
        )
    try:
        results = resp.json()["results"] if resp.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        results = None
    if not isinstance(results, list):
        raise CtlError(
            f"unexpected answer from {api.base}{path}: HTTP {resp.status_code}: "
            f"{server_message(resp)}",
            status=2,
        )
    out.write(f"Receiver {name}:\n")
    if not results:
        out.write("  (no integrations)\n")
    failed = 0
    for r in results:
        if r.get("ok"):
            out.write(f"  {r.get('integration')}: OK\n")
        else:
            failed += 1
            out.write(f"  {r.get('integration')}: FAILED: {r.get('error', '')}\n")
    return 1 if failed else 0


def run(inv: Invocation) -> int:
    try:
        api = inv.api()
    except CtlError as err:
        raise CtlError(err.message, hint=err.hint, status=2) from None
    try:
        return receiver_test(api, inv.args.name, inv.out)
    finally:
        api.close()


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    receiver = group(commands, "receiver", help="Test receivers.", default="test")
    test = leaf(
        receiver,
        "test",
        help="Send a test notification through every integration of a receiver.",
        run=run,
    )
    test.add_argument("name", metavar="NAME", help="receiver name")
