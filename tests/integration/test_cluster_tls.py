"""``--cluster.tls-config``: loading the file, and gossip over TLS with Alertmanager 0.25."""

from __future__ import annotations

import contextlib
import random
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.core import Metric

from cluster.node import ChannelDelegate, Node, NodeConfig, ulid_name
from cluster.tls_transport import TLSTransport, TLSTransportStatistics, open_tls_transport
from daemon.ha.tls_config import (
    ClusterTLS,
    ClusterTLSError,
    load_cluster_tls,
    parse_cluster_tls,
    tls_transport_metrics,
)
from tests.cluster.test_node import RecordingState, wait_until
from tests.cluster.test_tls_transport import Pki, write_pki
from tests.integration.processes import (
    ROOT,
    WebhookSink,
    free_port,
    run_clustered_alertmanager,
    run_tocsin,
)
from tests.integration.processes import wait_for as wait_until_sync
from tests.integration.test_cluster import (
    CONFIG,
    cluster_flags,
    create_silence,
    has_silence,
    settled,
    status_of,
)

#: The shape of upstream's ``cluster/testdata/tls_config_node1.yml`` (paths relative).
NODE_CONFIG = """\
tls_server_config:
  cert_file: "{name}.pem"
  key_file: "{name}-key.pem"
  client_ca_file: "ca.pem"
  client_auth_type: "{auth}"
tls_client_config:
  cert_file: "{name}.pem"
  key_file: "{name}-key.pem"
  ca_file: "ca.pem"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA with leaves for tocsin and Alertmanager nodes."""
    return write_pki(tmp_path_factory.mktemp("pki"), ["tocsin", "am", "other"])


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A leaf from another CA."""
    return write_pki(tmp_path_factory.mktemp("rogue"), ["mallory"], ca_name="rogue CA")


def write_node_config(pki: Pki, name: str, auth: str = "RequireAndVerifyClientCert") -> Path:
    """A TLS config file next to the certificates, for node ``name``."""
    path = pki.ca.parent / f"tls-{name}.yml"
    path.write_text(NODE_CONFIG.format(name=name, auth=auth))
    return path


# --- loading the file -----------------------------------------------------------------------


def test_upstream_example_loads_with_relative_paths(pki: Pki) -> None:
    """The file upstream's tests use loads; paths are relative to the file; mTLS is enforced."""
    loaded = load_cluster_tls(str(write_node_config(pki, "tocsin", "VerifyClientCertIfGiven")))
    assert loaded.server_context.verify_mode == ssl.CERT_OPTIONAL
    assert loaded.client_context.verify_mode == ssl.CERT_REQUIRED
    assert loaded.client_context.check_hostname
    assert loaded.server_name == ""
    strict = load_cluster_tls(str(write_node_config(pki, "tocsin")))
    assert strict.server_context.verify_mode == ssl.CERT_REQUIRED


def test_client_options_map_to_the_context(pki: Pki) -> None:
    """server_name is kept, insecure_skip_verify turns checks off, versions are applied."""
    text = (
        "tls_server_config:\n  cert_file: tocsin.pem\n  key_file: tocsin-key.pem\n"
        "  min_version: TLS13\n"
        "tls_client_config:\n  server_name: peers.example\n  insecure_skip_verify: true\n"
        "  min_version: TLS12\n  max_version: TLS13\n"
    )
    loaded = parse_cluster_tls(text, str(pki.ca.parent))
    assert loaded.server_name == "peers.example"
    assert loaded.server_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert loaded.server_context.verify_mode == ssl.CERT_NONE
    assert not loaded.client_context.check_hostname
    assert loaded.client_context.verify_mode == ssl.CERT_NONE
    assert loaded.client_context.maximum_version == ssl.TLSVersion.TLSv1_3


SERVER = "tls_server_config:\n  cert_file: tocsin.pem\n  key_file: tocsin-key.pem\n"
CLIENT = "tls_client_config:\n  ca_file: ca.pem\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ": tls_server_config: required section is missing"),
        (SERVER, ": tls_client_config: required section is missing"),
        (
            SERVER + "  bogus: 1\n" + CLIENT,
            "4: tls_server_config.bogus: yaml: unmarshal errors:\n"
            "  line 4: field bogus not found in type web.TLSConfig",
        ),
        (
            SERVER + CLIENT + "extra: 1\n",
            "field extra not found in type cluster.TLSTransportConfig",
        ),
        (
            "tls_server_config: {}\n" + CLIENT,
            "1: tls_server_config: invalid TLS server config: TLS config is not present",
        ),
        (
            "tls_server_config:\n  cert_file: tocsin.pem\n" + CLIENT,
            "tls_server_config.key_file: invalid TLS server config: missing key_file",
        ),
        (
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: tocsin-key.pem\n" + CLIENT,
            "2: tls_server_config.cert_file: invalid TLS server config: failed to load X509KeyPair",
        ),
        (
            SERVER + "  client_auth_type: Sometimes\n" + CLIENT,
            "4: tls_server_config.client_auth_type: invalid TLS server config: "
            "Invalid ClientAuth: Sometimes",
        ),
        (
            SERVER + "  client_ca_file: ca.pem\n" + CLIENT,
            "Client CA's have been configured without a Client Auth Policy",
        ),
        (
            SERVER + "  client_auth_type: RequireAnyClientCert\n" + CLIENT,
            "RequireAnyClientCert is not supported by tocsin",
        ),
        (
            SERVER + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n" + CLIENT,
            "4: tls_server_config.cipher_suites[0]: unknown cipher: TLS_RSA_WITH_RC4_128_SHA",
        ),
        (SERVER + "  curve_preferences: [P256]\n" + CLIENT, "unknown curve: P256"),
        (SERVER + "  min_version: TLS14\n" + CLIENT, "unknown TLS version: TLS14"),
        (
            SERVER + "tls_client_config:\n  cert_file: tocsin.pem\n",
            'tls_client_config.cert_file: client cert file "',
        ),
        (
            SERVER + "tls_client_config:\n  ca_file: tocsin-key.pem\n",
            "tls_client_config.ca_file: unable to use specified CA cert",
        ),
        (
            SERVER + "tls_client_config:\n  ca_file: missing.pem\n",
            "unable to load specified CA cert",
        ),
        (
            SERVER + "tls_client_config:\n  min_version: TLS13\n  max_version: TLS12\n",
            "tls_config.max_version must be greater than or equal to tls_config.min_version",
        ),
    ],
)
def test_bad_files_name_the_flag_file_line_and_key(
    pki: Pki, tmp_path: Path, text: str, message: str
) -> None:
    """Every problem upstream rejects is a ClusterTLSError naming where it is."""
    path = pki.ca.parent / f"bad-{tmp_path.name}.yml"
    path.write_text(text)
    with pytest.raises(ClusterTLSError) as caught:
        load_cluster_tls(str(path))
    assert str(caught.value).startswith(f"--cluster.tls-config: {path}")
    assert message in str(caught.value)


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    """A missing file is refused with the flag's name."""
    with pytest.raises(ClusterTLSError, match=r"--cluster.tls-config: .*No such file"):
        load_cluster_tls(str(tmp_path / "missing.yml"))


def test_metrics_carry_alertmanagers_names() -> None:
    """The transport counters become alertmanager_tls_transport_* counter families."""
    stats = TLSTransportStatistics(packet_bytes_sent=7, write_errors_stream=2)
    families: dict[str, Metric] = {m.name: m for m in tls_transport_metrics(stats)}
    assert families["alertmanager_tls_transport_packet_bytes_sent"].samples[0].value == 7
    writes = {
        s.labels["connection_type"]: s.value
        for s in families["alertmanager_tls_transport_write_errors"].samples
    }
    assert writes == {"packet": 0, "stream": 2}
    assert len(families) == 6


# --- a tocsin Node and a real Alertmanager over TLS ------------------------------------------


@contextlib.contextmanager
def tls_alertmanager(tmp: Path, tls_config: Path) -> Iterator[tuple[int, str]]:
    """Alertmanager 0.25 gossiping over TLS on loopback; yields its cluster port and URL."""
    tmp.mkdir(exist_ok=True)
    port = free_port()
    flags = (
        f"--cluster.listen-address=127.0.0.1:{port}",
        f"--cluster.tls-config={tls_config}",
        "--cluster.probe-interval=200ms",
        "--cluster.gossip-interval=50ms",
    )
    config = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
    with run_clustered_alertmanager(tmp, config, *flags) as proc:
        yield port, proc.url


@contextlib.asynccontextmanager
async def tls_node(
    loaded: ClusterTLS, name: str, url: str, delegate: ChannelDelegate | None = None
) -> AsyncIterator[tuple[Node, TLSTransport, httpx.AsyncClient]]:
    """A running Node on a TLS transport with fast probes, and an API client for ``url``."""
    config = NodeConfig(probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05)
    async with (
        open_tls_transport(
            "127.0.0.1", 0, loaded.server_context, loaded.client_context
        ) as transport,
        trio.open_nursery() as nursery,
        httpx.AsyncClient(base_url=url) as client,
    ):
        node = Node(transport, name, config=config, delegate=delegate)
        await nursery.start(node.run)
        yield node, transport, client
        nursery.cancel_scope.cancel()


async def am_peers(client: httpx.AsyncClient) -> dict[str, str]:
    """Alertmanager's view of the cluster: peer name → address."""
    status = (await client.get("/api/v2/status")).json()
    return {p["name"]: p["address"] for p in status["cluster"]["peers"]}


async def until_listed(client: httpx.AsyncClient, name: str, *, listed: bool) -> None:
    """Poll Alertmanager until ``name`` is (or is no longer) among its peers."""
    while True:
        if (name in await am_peers(client)) == listed:
            return
        await trio.sleep(0.2)


@pytest.mark.alertmanager
async def test_node_and_alertmanager_gossip_over_tls(pki: Pki, tmp_path: Path) -> None:
    """A tocsin Node joins Alertmanager 0.25 over TLS; both list each other, probes pass, and AM's silence reaches us."""
    am_config = write_node_config(pki, "am")
    ours = load_cluster_tls(str(write_node_config(pki, "tocsin")))
    state = RecordingState()
    name = ulid_name(int(time.time() * 1000), random.Random())
    with tls_alertmanager(tmp_path / "am", am_config) as (cluster_port, url):
        delegate = ChannelDelegate()
        delegate.add_state("sil", state)
        with trio.fail_after(40):
            async with tls_node(ours, name, url, delegate) as (node, transport, client):
                assert await node.join([("127.0.0.1", cluster_port)]) == 1
                am_name = next(m.name for m in node.members() if m.name != name)
                await until_listed(client, name, listed=True)
                assert (await am_peers(client))[name] == f"127.0.0.1:{transport.local_address[1]}"
                await trio.sleep(3)  # many probe rounds both ways, as TLS packets
                assert name in await am_peers(client)
                assert node.core.member(am_name).state == 0  # type: ignore[union-attr]
                assert node.core.stats.refutations == 0
                assert transport.statistics().malformed_frames == 0
                assert transport.statistics().packet_bytes_received > 0
                merged_before = len(state.merged)
                body = {
                    "matchers": [{"name": "a", "value": "b", "isRegex": False, "isEqual": True}],
                    "startsAt": "2000-01-01T00:00:00Z",
                    "endsAt": "2099-01-01T00:00:00Z",
                    "createdBy": "test",
                    "comment": "over tls",
                }
                response = await client.post("/api/v2/silences", json=body)
                silence_id = response.json()["silenceID"].encode()
                await wait_until(
                    lambda: any(silence_id in m for m in state.merged[merged_before:]), 10
                )
                await node.leave()
                await until_listed(client, name, listed=False)


@pytest.mark.alertmanager
async def test_alertmanager_refuses_a_node_from_another_ca(
    pki: Pki, rogue: Pki, tmp_path: Path
) -> None:
    """A node whose certificate another CA signed cannot join, and AM does not list it."""
    am_config = write_node_config(pki, "am")
    rogue_config = write_node_config(rogue, "mallory")
    theirs = load_cluster_tls(str(rogue_config))
    with tls_alertmanager(tmp_path / "am", am_config) as (cluster_port, url):
        with trio.fail_after(20):
            async with tls_node(theirs, "mallory", url) as (node, transport, client):
                assert await node.join([("127.0.0.1", cluster_port)]) == 0
                assert transport.statistics().write_errors_stream >= 1
                peers = await am_peers(client)
                assert len(peers) == 1 and "mallory" not in peers  # only itself


# --- the daemon with --cluster.tls-config ---------------------------------------------------


@pytest.mark.alertmanager
def test_tocsin_and_alertmanager_share_silences_over_tls(pki: Pki, tmp_path: Path) -> None:
    """tocsin and Alertmanager 0.25, both with --cluster.tls-config, cluster and share silences both ways."""
    tocsin_port, am_port = free_port(), free_port()
    ports = [tocsin_port, am_port]
    ours_flag = f"--cluster.tls-config={write_node_config(pki, 'tocsin')}"
    theirs_flag = f"--cluster.tls-config={write_node_config(pki, 'am')}"
    with WebhookSink() as sink, contextlib.ExitStack() as stack:
        config = CONFIG.format(url=sink.url)
        (tmp_path / "t").mkdir()
        (tmp_path / "a").mkdir()
        ours = stack.enter_context(
            run_tocsin(tmp_path / "t", config, *cluster_flags(tocsin_port, ports), ours_flag)
        )
        theirs = stack.enter_context(
            run_clustered_alertmanager(
                tmp_path / "a", config, *cluster_flags(am_port, ports), theirs_flag
            )
        )
        wait_until_sync(lambda: settled([ours, theirs], 2), timeout=30)
        from_am = create_silence(theirs, "MutedByAm")
        from_us = create_silence(ours, "MutedByUs")
        wait_until_sync(
            lambda: has_silence(ours, from_am) and has_silence(theirs, from_us), timeout=15
        )
        assert {p["name"] for p in status_of(ours)["peers"]} == {
            p["name"] for p in status_of(theirs)["peers"]
        }


def test_bad_tls_config_stops_start_up(pki: Pki, tmp_path: Path) -> None:
    """A TLS config naming a missing key file makes the daemon exit 1, naming file and key."""
    bad = tmp_path / "tls.yml"
    bad.write_text(
        f"tls_server_config:\n  cert_file: {pki.leaves['tocsin'][0]}\n"
        f"tls_client_config:\n  ca_file: {pki.ca}\n"
    )
    config = tmp_path / "tocsin.yml"
    config.write_text("route:\n  receiver: r\nreceivers:\n  - name: r\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            "--web.listen-address=127.0.0.1:0",
            f"--cluster.listen-address=127.0.0.1:{free_port()}",
            f"--cluster.tls-config={bad}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"--cluster.tls-config: {bad}" in result.stdout + result.stderr
    assert "tls_server_config.key_file" in result.stdout + result.stderr
