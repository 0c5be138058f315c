"""Our codecs against a real Alertmanager 0.25 node: a join push/pull over TCP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.channel import FullState
from cluster.framing import StreamDecoder, encode_stream
from cluster.messages import NodeState, PushNodeState, PushPull
from tests.integration.processes import free_port, run_clustered_alertmanager

BLACKHOLE = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
pytestmark = pytest.mark.alertmanager


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[int]:
    """Run one clustered Alertmanager on loopback; yield its cluster port."""
    cluster_port = free_port()
    with run_clustered_alertmanager(
        tmp_path, BLACKHOLE, f"--cluster.listen-address=127.0.0.1:{cluster_port}"
    ):
        yield cluster_port


def test_join_push_pull_with_real_alertmanager(alertmanager: int) -> None:
    """Alertmanager accepts our LZW push/pull and its Go-LZW reply decodes to its node table."""
    us = PushNodeState(
        name="01ZZZZZZZZZZZZZZZZZZZZZZZZ", addr=bytes((127, 0, 0, 1)), port=1, incarnation=1
    )
    request = PushPull(
        join=True, nodes=(us,), user_state=FullState().encode()
    )  # an empty FullState is valid
    with socket.create_connection(("127.0.0.1", alertmanager), timeout=10) as conn:
        conn.sendall(encode_stream(request.encode()))
        decoder = StreamDecoder()
        reply = None
        while reply is None:
            chunk = conn.recv(65536)
            if not chunk:
                decoder.eof()
            reply = decoder.feed(chunk)
    assert isinstance(reply, PushPull)
    assert reply.join is True
    assert len(reply.nodes) == 1
    node = reply.nodes[0]
    assert node.port == alertmanager and node.addr == bytes((127, 0, 0, 1))
    assert node.state == NodeState.ALIVE and node.vsn == bytes((1, 5, 2, 0, 0, 0))
    assert sorted(p.key for p in FullState.decode(reply.user_state).parts) == ["nfl", "sil"]
