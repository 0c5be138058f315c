"""``--cluster.label`` with real processes on loopback (Alertmanager 0.26's flag).

A labelled tocsin pair clusters; a node with another label is refused and the refusal
is logged on the labelled side. Alertmanager 0.25 knows no labels: a labelled tocsin
and an Alertmanager 0.25 peer never form a cluster (the README says so).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.integration.cluster_processes import converged, run_node
from tests.integration.processes import (
    WebhookSink,
    wait_for,
)
from tests.integration.test_cluster import status_of, tocsin_and_alertmanager


def test_a_labelled_pair_clusters_and_another_label_is_refused(tmp_path: Path) -> None:
    """Two nodes labelled "prod" converge; a "staging" node joining them is refused, counted and ignored."""
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        a = stack.enter_context(run_node(tmp_path / "a", sink.url, [], "--cluster.label=prod"))
        b = stack.enter_context(
            run_node(tmp_path / "b", sink.url, [a.cluster_address], "--cluster.label=prod")
        )
        wait_for(lambda: converged([a, b]), timeout=30)
        c = stack.enter_context(
            run_node(tmp_path / "c", sink.url, [a.cluster_address], "--cluster.label=staging")
        )
        wait_for(lambda: a.events("peer.label_refused"), timeout=10)
        refusal = a.events("peer.label_refused")[0]
        assert "staging" in refusal["error"]
        time.sleep(2)  # several reconnect intervals: c keeps trying, and keeps failing
        assert c.peer_names() == {c.name()}
        assert converged([a, b])
        assert a.metrics()["tocsin_cluster_input_dropped_total{reason=label}"] >= 1
        assert b.metrics()["tocsin_cluster_input_dropped_total{reason=label}"] == 0
        assert a.alive() and b.alive() and c.alive()


@pytest.mark.alertmanager
def test_a_labelled_tocsin_cannot_gossip_with_alertmanager_0_25(tmp_path: Path) -> None:
    """Alertmanager 0.25 sends no label and drops labelled packets: the two never see each other."""
    with (
        WebhookSink() as sink,
        tocsin_and_alertmanager(tmp_path, sink, "--cluster.label=prod") as (ours, theirs),
    ):
        wait_for(
            lambda: any(e.get("event") == "peer.label_refused" for e in list(ours.log_lines)),
            timeout=30,
        )
        time.sleep(3)
        assert [p["name"] for p in status_of(ours)["peers"]] == [status_of(ours)["name"]]
        assert [p["name"] for p in status_of(theirs)["peers"]] == [status_of(theirs)["name"]]
