"""``--cluster.label`` and the open-port warning, as the daemon's peer derives them."""

from __future__ import annotations

import pytest

from daemon.cli import parse_args
from daemon.ha.peer import PeerSetupError, node_config, open_port_warning


def test_label_flag_reaches_the_node_config() -> None:
    """--cluster.label becomes the node's label bytes; no flag means no label."""
    assert node_config(parse_args(["--cluster.label=prod-eu"])).label == b"prod-eu"
    assert node_config(parse_args([])).label == b""


def test_label_over_255_bytes_stops_start_up() -> None:
    """A label memberlist could not send (its length is one byte) is refused, not cut."""
    assert len(node_config(parse_args(["--cluster.label=" + "é" * 127])).label) == 254
    with pytest.raises(PeerSetupError, match="limit is 255"):
        node_config(parse_args(["--cluster.label=" + "é" * 128]))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "fd00::2", "alertmanager-0"])
def test_an_open_port_without_key_or_tls_is_warned_about(host: str) -> None:
    """A reachable cluster port with no gossip key and no TLS gets a warning saying what it allows."""
    warning = open_port_warning(host, keyed=False, tls=False)
    assert warning is not None
    assert "create and expire silences" in warning
    assert "notification-log" in warning


@pytest.mark.parametrize(
    ("host", "keyed", "tls"),
    [
        ("127.0.0.1", False, False),
        ("::1", False, False),
        ("0.0.0.0", True, False),
        ("0.0.0.0", False, True),
    ],
)
def test_loopback_or_an_authenticated_port_is_not_warned_about(
    host: str, keyed: bool, tls: bool
) -> None:
    """Loopback, a gossip key, or TLS: no warning."""
    assert open_port_warning(host, keyed=keyed, tls=tls) is None
