"""``cluster show`` (``cluster`` alone): the server's cluster status and peers."""

from __future__ import annotations

import argparse

from daemon.ctl.command import Invocation, group, leaf
from daemon.ctl.output import format_cluster


def show(inv: Invocation) -> int:
    """Print status and node name; ``-o extended`` adds the peers, ``-o json`` all."""
    status = inv.call("GET", "/status")
    inv.out.write(format_cluster(status.get("cluster") or {}, inv.format))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = group(commands, "cluster", help="View cluster status and peers.", default="show")
    leaf(cluster, "show", help="Print the cluster status (-o extended adds the peers).", run=show)
