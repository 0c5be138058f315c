"""``--cluster.gossip-key-file``: parsing the key file, and encrypted tocsin processes."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import parse_args
from daemon.ha.peer import PeerSetupError, node_config, parse_gossip_keys
from tests.integration.processes import Proc, WebhookSink, free_port, run_tocsin, wait_for
from tests.integration.test_cluster import (
    CONFIG,
    cluster_flags,
    create_silence,
    has_silence,
    settled,
    status_of,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(16, 32))


def b64(key: bytes) -> str:
    """A key as the file spells it."""
    return base64.b64encode(key).decode()


def test_key_file_lines_make_a_keyring_primary_first() -> None:
    """Keys are read one a line, first one primary, skipping blanks and comments."""
    ring = parse_gossip_keys(f"# rotated 2026-11\n{b64(KEY_B)}\n\n  {b64(KEY_A)}  \n")
    assert ring.keys == (KEY_B, KEY_A)
    assert ring.primary_key == KEY_B


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no usable gossip key"),
        ("# only a comment\n", "no usable gossip key"),
        ("not*base64\n", "line 1 is not base64"),
        (f"{b64(KEY_A)}\n{b64(b'short')}\n", "line 2 is 5 bytes"),
    ],
)
def test_bad_key_files_are_refused(text: str, message: str) -> None:
    """An empty file, a non-base64 line or a wrong key size is a setup error."""
    with pytest.raises(PeerSetupError, match=message):
        parse_gossip_keys(text)


def test_flag_loads_the_keyring_into_the_node_config(tmp_path: Path) -> None:
    """The flag's file is read at start; without the flag gossip stays plaintext."""
    key_file = tmp_path / "gossip.keys"
    key_file.write_text(b64(KEY_A) + "\n")
    opts = parse_args([f"--cluster.gossip-key-file={key_file}"])
    assert opts.cluster_gossip_key_file == str(key_file)
    config = node_config(opts)
    assert config.keyring is not None
    assert config.keyring.keys == (KEY_A,)
    assert node_config(parse_args([])).keyring is None
    with pytest.raises(PeerSetupError, match="gossip-key-file"):
        node_config(parse_args([f"--cluster.gossip-key-file={tmp_path / 'missing'}"]))


def test_encrypted_daemons_cluster_and_a_wrong_key_is_refused(tmp_path: Path) -> None:
    """Two tocsin processes sharing a key file cluster and share silences; a third with another key stays alone, and the nodes it calls log the refusal."""
    ports = [free_port() for _ in range(3)]
    shared = tmp_path / "shared.keys"
    shared.write_text(f"{b64(KEY_A)}\n{b64(KEY_B)}\n")
    other = tmp_path / "other.keys"
    other.write_text(base64.b64encode(bytes(range(200, 224))).decode() + "\n")
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        procs = []
        for i, key_file in enumerate((shared, shared, other)):
            home = tmp_path / f"n{i}"
            home.mkdir()
            # only the outsider lists everyone: what the good nodes log, they received
            known = ports if i == 2 else ports[:2]
            flags = [*cluster_flags(ports[i], known), f"--cluster.gossip-key-file={key_file}"]
            procs.append(stack.enter_context(run_tocsin(home, CONFIG.format(url=sink.url), *flags)))
        good, outsider = procs[:2], procs[2]
        wait_for(lambda: settled(good, 2), timeout=30)
        silence_id = create_silence(good[0], "Muted")
        wait_for(lambda: has_silence(good[1], silence_id), timeout=15)

        assert [p["name"] for p in status_of(outsider)["peers"]] == [status_of(outsider)["name"]]
        assert not has_silence(outsider, silence_id)

        def refusals(proc: Proc) -> list[dict[str, Any]]:
            return [e for e in proc.log_lines if e.get("event") == "peer.decrypt_failed"]

        # the outsider keeps retrying; each good node refuses its streams and says so
        wait_for(lambda: all(refusals(p) for p in procs), timeout=10)
        assert all(e["source"][0] == "127.0.0.1" for p in good for e in refusals(p))
        assert all(status_of(p)["peers"] == status_of(good[0])["peers"] for p in good)
        assert all(p.proc.poll() is None for p in procs)
