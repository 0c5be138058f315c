"""HA cluster faults with real tocsin processes on loopback (issue 5, "Faults").

Each test starts its own small cluster with :data:`cluster_processes.FAULT_FLAGS`,
breaks it (SIGKILL, a restart under a new name, SIGSTOP, garbage on the cluster
ports, a wrong gossip key) and checks that the nodes still converge: membership,
failed-peer gauges, silences, and exactly one notification per group.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.integration.cluster_processes import (
    Node,
    cluster_view,
    converged,
    post_alert,
    run_node,
    start_cluster,
)
from tests.integration.processes import WebhookSink, wait_for
from tests.integration.test_cluster import create_silence, notified_names


def first_in_line(nodes: list[Node]) -> Node:
    """The node at position 0 (the one that notifies without waiting)."""
    return min(nodes, key=Node.name)


def test_killed_node_is_marked_failed_and_the_rest_notify_once(tmp_path: Path) -> None:
    """After SIGKILL of the first-in-line node the others mark it failed, notify once and share new silences."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, tmp_path, sink.url, 3)
        wait_for(lambda: converged(nodes), timeout=30)
        victim = first_in_line(nodes)
        victim_name = victim.name()
        survivors = [n for n in nodes if n is not victim]
        victim.kill()
        wait_for(lambda: converged(survivors, failed=1), timeout=15)
        assert all(victim_name not in n.peer_names() for n in survivors)

        silence_id = create_silence(survivors[1].proc, "Muted")
        wait_for(lambda: all(silence_id in n.silence_ids() for n in survivors), timeout=10)
        for node in survivors:
            post_alert(node, "AfterKill")
            post_alert(node, "Muted")
        # the survivor now second in line waits one peer timeout (1 s) before it checks
        assert notified_names(sink, quiet=3) == ["AfterKill"]
        assert cluster_view(survivors) == [("ready", 2, 2, 1)] * 2


def test_restart_under_a_new_name_rejoins_with_silences_and_nflog(tmp_path: Path) -> None:
    """A killed node restarted on a fresh disk under a new name gets every silence and the nflog, so it does not notify again."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, tmp_path, sink.url, 3)
        wait_for(lambda: converged(nodes), timeout=30)
        for node in nodes:
            post_alert(node, "Before")
        assert notified_names(sink, quiet=3) == ["Before"]
        before_kill = create_silence(nodes[1].proc, "MutedEarly")
        wait_for(lambda: all(before_kill in n.silence_ids() for n in nodes), timeout=10)

        victim, survivors = nodes[0], nodes[1:]
        old_name = victim.name()
        victim.kill()
        wait_for(lambda: converged(survivors, failed=1), timeout=15)
        while_down = create_silence(survivors[0].proc, "MutedLate")

        reborn = stack.enter_context(
            run_node(
                tmp_path / "n0-reborn",
                sink.url,
                victim.cluster_port,
                [survivors[1].cluster_address],
            )
        )
        everyone = [reborn, *survivors]
        # the same address joined again, so the survivors drop it from their failed list
        wait_for(lambda: converged(everyone), timeout=20)
        assert reborn.name() != old_name
        assert all(old_name not in n.peer_names() for n in everyone)
        assert {before_kill, while_down} <= reborn.silence_ids()
        # the newest name sorts last: it waits 2 s, then finds the gossiped nflog entry
        assert max(everyone, key=Node.name) is reborn
        post_alert(reborn, "Before")
        assert notified_names(sink, quiet=5) == []
