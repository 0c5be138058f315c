"""A clustered node's /metrics carries Alertmanager 0.25's cluster series, help and types."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.processes import (
    Proc,
    free_port,
    run_clustered_alertmanager,
    run_tocsin,
    wait_for,
)
from tests.integration.test_cluster import (
    cluster_flags,
    settled,
    status_of,
)

#: Every cluster series name a node of a settled 3-node Alertmanager 0.25 cluster
#: exposes (recorded from ``prometheus-alertmanager``; its gossip metrics, the HA
#: position and the oversized-message channel metrics).
ALERTMANAGER_0_25_CLUSTER = {
    "alertmanager_cluster_alive_messages_total",
    "alertmanager_cluster_enabled",
    "alertmanager_cluster_failed_peers",
    "alertmanager_cluster_health_score",
    "alertmanager_cluster_members",
    "alertmanager_cluster_messages_pruned_total",
    "alertmanager_cluster_messages_queued",
    "alertmanager_cluster_messages_received_size_total",
    "alertmanager_cluster_messages_received_total",
    "alertmanager_cluster_messages_sent_size_total",
    "alertmanager_cluster_messages_sent_total",
    "alertmanager_cluster_peer_info",
    "alertmanager_cluster_peers_joined_total",
    "alertmanager_cluster_peers_left_total",
    "alertmanager_cluster_peers_update_total",
    "alertmanager_cluster_pings_seconds_bucket",
    "alertmanager_cluster_pings_seconds_count",
    "alertmanager_cluster_pings_seconds_sum",
    "alertmanager_cluster_reconnections_failed_total",
    "alertmanager_cluster_reconnections_total",
    "alertmanager_cluster_refresh_join_failed_total",
    "alertmanager_cluster_refresh_join_total",
    "alertmanager_oversize_gossip_message_duration_seconds_bucket",
    "alertmanager_oversize_gossip_message_duration_seconds_count",
    "alertmanager_oversize_gossip_message_duration_seconds_sum",
    "alertmanager_oversized_gossip_message_dropped_total",
    "alertmanager_oversized_gossip_message_failure_total",
    "alertmanager_oversized_gossip_message_sent_total",
    "alertmanager_peer_position",
}

CLUSTER_PREFIXES = ("alertmanager_cluster_", "alertmanager_oversize", "alertmanager_peer_")

CONFIG = "route: {receiver: a}\nreceivers: [{name: a}]\n"


def scrape(proc: Proc) -> str:
    """The node's /metrics text."""
    with proc.api() as client:
        return client.get("/metrics").text


def series_names(text: str) -> set[str]:
    """Names of the cluster series in an exposition."""
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line.startswith(CLUSTER_PREFIXES)
    }


def help_and_types(text: str) -> set[str]:
    """The ``# HELP`` and ``# TYPE`` lines of the cluster families."""
    return {
        line
        for line in text.splitlines()
        if line.startswith(("# HELP ", "# TYPE "))
        and line.split(" ")[2].startswith(CLUSTER_PREFIXES)
    }


def pinged(proc: Proc) -> bool:
    """The node has observed at least one ping round trip."""
    return "alertmanager_cluster_pings_seconds_count{" in scrape(proc)


@contextlib.contextmanager
def pair(
    tmp: Path, run: Callable[..., contextlib.AbstractContextManager[Proc]], prefix: str
) -> Iterator[list[Proc]]:
    """Two clustered nodes started by ``run``, settled and past their first acked probe."""
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        procs = []
        for i, port in enumerate(ports):
            home = tmp / f"{prefix}{i}"
            home.mkdir()
            procs.append(stack.enter_context(run(home, CONFIG, *cluster_flags(port, ports))))
        wait_for(lambda: settled(procs, 2) and all(pinged(p) for p in procs), timeout=30)
        yield procs


def tocsin_pair(tmp: Path) -> contextlib.AbstractContextManager[list[Proc]]:
    """Two clustered tocsin nodes (see :func:`pair`)."""
    return pair(tmp, run_tocsin, "t")


def test_clustered_tocsin_exposes_every_alertmanager_cluster_series(tmp_path: Path) -> None:
    """No cluster series that a clustered Alertmanager 0.25 exposes is missing."""
    with tocsin_pair(tmp_path) as procs:
        text = scrape(procs[0])
    assert ALERTMANAGER_0_25_CLUSTER - series_names(text) == set()
    assert series_names(text) - ALERTMANAGER_0_25_CLUSTER == set()


def test_pings_and_alive_messages_are_labelled_by_peer_name(tmp_path: Path) -> None:
    """Pings are per probed peer; alive messages count every member, ourselves included."""
    with tocsin_pair(tmp_path) as procs:
        names = [status_of(p)["name"] for p in procs]
        text = scrape(procs[0])
    assert f'alertmanager_cluster_pings_seconds_count{{peer="{names[1]}"}}' in text
    assert f'alertmanager_cluster_pings_seconds_count{{peer="{names[0]}"}}' not in text
    for name in names:
        assert f'alertmanager_cluster_alive_messages_total{{peer="{name}"}}' in text
    assert 'alertmanager_oversize_gossip_message_duration_seconds_bucket{key="nfl",le="10"}' in text


@pytest.mark.alertmanager
def test_cluster_series_help_and_types_match_a_live_alertmanager(tmp_path: Path) -> None:
    """Names, help texts and types of the cluster families equal a live 2-node Alertmanager's."""
    with pair(tmp_path, run_clustered_alertmanager, "a") as ams:
        theirs = scrape(ams[0])
    with tocsin_pair(tmp_path) as procs:
        ours = scrape(procs[0])
    assert series_names(theirs) == ALERTMANAGER_0_25_CLUSTER  # the recording is current
    assert help_and_types(ours) == help_and_types(theirs)
