"""Alertmanager's TLS cluster transport: frame codec, real TLS on loopback, and Nodes over it."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.errors import DecodeError
from cluster.node import ChannelDelegate, Node, NodeConfig
from cluster.tls_transport import (
    HANDSHAKE_TIMEOUT,
    KIND_PACKET,
    KIND_STREAM,
    STREAM_FRAME,
    FrameDecoder,
    FrameTooLargeError,
    MemberlistMessage,
    TLSHandshakeError,
    TLSTransport,
    check_message,
    encode_frame,
    format_address,
    open_tls_transport,
    packet_frame,
    parse_address,
)
from tests.cluster.test_node import RecordingState, wait_until

# --- certificates ------------------------------------------------------------------------


@attrs.frozen
class Pki:
    """A CA file and, per node name, its certificate and key files."""

    ca: Path
    leaves: dict[str, tuple[Path, Path]]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_pki(folder: Path, names: Sequence[str], ca_name: str = "tocsin test CA") -> Pki:
    """A CA and one leaf per name, each valid for 127.0.0.1 and localhost, as PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=36500)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    leaves: dict[str, tuple[Path, Path]] = {}
    for serial, name in enumerate(names, start=2):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        leaves[name] = (cert_path, key_path)
    return Pki(ca_path, leaves)


def server_context(pki: Pki, name: str) -> ssl.SSLContext:
    """Mutual TLS, server side: our leaf, client certificates verified against the CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki.leaves[name])
    ctx.load_verify_locations(pki.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(pki: Pki, name: str) -> ssl.SSLContext:
    """Mutual TLS, client side: our leaf, the server verified against the CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(*pki.leaves[name])
    ctx.load_verify_locations(pki.ca)
    return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA with leaves a, b and c."""
    return write_pki(tmp_path_factory.mktemp("pki"), ["a", "b", "c"])


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A different CA whose leaf the good nodes must refuse."""
    return write_pki(tmp_path_factory.mktemp("rogue"), ["mallory"], ca_name="rogue CA")


@asynccontextmanager
async def tls_transport(pki: Pki, name: str) -> AsyncIterator[TLSTransport]:
    """A transport on 127.0.0.1:0 with ``name``'s certificate."""
    async with open_tls_transport(
        "127.0.0.1", 0, server_context(pki, name), client_context(pki, name)
    ) as transport:
        yield transport


async def raw_client(pki: Pki, name: str, port: int) -> trio.SSLStream[trio.SocketStream]:
    """A bare TLS connection to a transport, for writing frames by hand."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, client_context(pki, name), server_hostname="127.0.0.1")
    await stream.do_handshake()
    return stream


# --- the frame codec (pure) --------------------------------------------------------------

#: What Go's gogo/protobuf writes for the stream marker: only the version field.
GO_STREAM_FRAME = bytes.fromhex("08000000") + b"\x0a\x06v0.1.0"
#: A packet frame as upstream's ``writePacket`` lays it out (fields 1-4 in order).
GO_PACKET_FRAME = (
    bytes.fromhex("1f000000")
    + b"\x0a\x06v0.1.0"
    + b"\x10\x01"
    + b"\x1a\x0e127.0.0.1:9094"
    + b"\x22\x03"
    + b"\x00\x01\x02"
)


def test_stream_frame_is_the_go_bytes() -> None:
    """The stream marker omits kind 0 and the empty fields, as proto3 does."""
    assert STREAM_FRAME == GO_STREAM_FRAME


def test_packet_frame_is_the_go_bytes() -> None:
    """A packet frame carries version, kind 1, from_addr and msg, in field order."""
    assert packet_frame("127.0.0.1:9094", b"\x00\x01\x02") == GO_PACKET_FRAME


def test_message_round_trips() -> None:
    """Decoding an encoded message gives it back, for both kinds."""
    for message in (
        MemberlistMessage(kind=KIND_STREAM),
        MemberlistMessage(kind=KIND_PACKET, from_addr="[::1]:1", msg=b"x" * 300),
    ):
        assert MemberlistMessage.decode(message.encode()) == message
    # proto3 omits defaults: a stream frame without a version has no bytes at all.
    assert MemberlistMessage(kind=KIND_STREAM, version="").encode() == b""


def test_unknown_fields_are_skipped() -> None:
    """A newer peer's extra fields do not stop the frame from decoding."""
    body = MemberlistMessage(kind=KIND_PACKET, from_addr="1.2.3.4:5").encode() + b"\x28\x07"
    assert MemberlistMessage.decode(body).from_addr == "1.2.3.4:5"


@pytest.mark.parametrize(
    "body",
    [b"\x0a\x09v0.1", b"\x12\x01x", b"\x1a\x02\xff\xfe", b"\xff"],
    ids=["truncated", "kind-as-bytes", "bad-utf8", "bad-tag"],
)
def test_undecodable_bodies_raise_decode_error(body: bytes) -> None:
    """Truncated or mistyped bodies are DecodeErrors, nothing else."""
    with pytest.raises(DecodeError):
        MemberlistMessage.decode(body)


def test_check_message_rejects_foreign_version_and_kind() -> None:
    """Only version v0.1.0 and kinds 0 and 1 are accepted, as upstream's reader."""
    check_message(MemberlistMessage(kind=KIND_PACKET))
    with pytest.raises(DecodeError, match="version"):
        check_message(MemberlistMessage(kind=KIND_PACKET, version="v0.2.0"))
    with pytest.raises(DecodeError, match="kind"):
        check_message(MemberlistMessage(kind=7))


def test_frame_decoder_splits_partial_and_joined_frames() -> None:
    """Frames split anywhere, or several in one read, come out whole and in order."""
    wire = GO_PACKET_FRAME + STREAM_FRAME + b"stream bytes"
    decoder = FrameDecoder()
    bodies: list[bytes] = []
    pos = 0
    while not bodies or MemberlistMessage.decode(bodies[-1]).kind != KIND_STREAM:
        decoder.feed(wire[pos : pos + 3])
        pos += 3
        while (body := decoder.next_frame()) is not None:
            bodies.append(body)
            if MemberlistMessage.decode(body).kind == KIND_STREAM:
                break
    assert bodies == [GO_PACKET_FRAME[4:], STREAM_FRAME[4:]]
    assert decoder.take_rest() + wire[pos:] == b"stream bytes"
    assert decoder.next_frame() is None


def test_frame_decoder_refuses_oversized_frames() -> None:
    """A length prefix above the limit raises before any body is buffered."""
    decoder = FrameDecoder(max_frame=10)
    decoder.feed((11).to_bytes(4, "little"))
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1:9094", ("127.0.0.1", 9094)), ("[::1]:80", ("::1", 80)), ("h:1", ("h", 1))],
)
def test_parse_address_accepts_go_host_ports(text: str, address: tuple[str, int]) -> None:
    """from_addr splits like Go's SplitHostPort, and formats back the same."""
    assert parse_address(text) == address
    assert format_address(address) == text


@pytest.mark.parametrize("text", ["", "127.0.0.1", "::1:80", "[::1]80", "h:x", "h:70000"])
def test_parse_address_rejects_malformed(text: str) -> None:
    """An address without a usable port or with stray colons is a DecodeError."""
    with pytest.raises(DecodeError):
        parse_address(text)


# --- the transport over real TLS ----------------------------------------------------------


async def test_packets_arrive_with_the_senders_address_over_one_connection(pki: Pki) -> None:
    """Packets from a to b carry a's bound address and share one pooled connection."""
    with trio.fail_after(10):
        async with tls_transport(pki, "a") as a, tls_transport(pki, "b") as b:
            for i in range(5):
                await a.send_packet(b.local_address, b"packet %d" % i)
            received = [await b.receive_packet() for _ in range(5)]
            assert received == [(b"packet %d" % i, a.local_address) for i in range(5)]
            assert b.statistics().connections_accepted == 1
            assert a.statistics().packet_bytes_sent == sum(len(d) for d, _ in received)
            assert b.statistics().packet_bytes_received == a.statistics().packet_bytes_sent


async def test_streams_carry_bytes_both_ways(pki: Pki) -> None:
    """A stream's first bytes, sent right behind the marker, reach the acceptor intact."""
    with trio.fail_after(10):
        async with tls_transport(pki, "a") as a, tls_transport(pki, "b") as b:
            outgoing = await a.open_stream(b.local_address)
            await outgoing.send_all(b"hello")
            incoming = await b.accept_stream()
            assert await incoming.receive_some(3) == b"hel"
            assert await incoming.receive_some() == b"lo"
            await incoming.send_all(b"world")
            assert await outgoing.receive_some() == b"world"
            await outgoing.aclose()
            assert await incoming.receive_some() == b""
            await incoming.aclose()
            assert a.statistics().stream_connections_sent == 1
            assert b.statistics().stream_connections_received == 1


async def test_malformed_frames_are_skipped_and_counted(pki: Pki) -> None:
    """Bad version, bad body and bad from_addr frames are dropped; the next packet still lands."""
    with trio.fail_after(10):
        async with tls_transport(pki, "b") as b:
            raw = await raw_client(pki, "a", b.local_address[1])
            bad_version = MemberlistMessage(kind=KIND_PACKET, from_addr="1.2.3.4:5", version="v9")
            await raw.send_all(
                encode_frame(bad_version)
                + b"\x02\x00\x00\x00\xff\xff"
                + packet_frame("no-port", b"lost")
                + encode_frame(MemberlistMessage(kind=9))
                + packet_frame("10.0.0.1:7946", b"kept")
            )
            assert await b.receive_packet() == (b"kept", ("10.0.0.1", 7946))
            assert b.statistics().malformed_frames == 4
            await raw.aclose()


async def test_oversized_frame_closes_the_connection(pki: Pki) -> None:
    """A frame longer than the limit ends that connection instead of being buffered."""
    with trio.fail_after(10):
        async with tls_transport(pki, "b") as b:
            raw = await raw_client(pki, "a", b.local_address[1])
            await raw.send_all((1 << 31).to_bytes(4, "little"))
            assert await raw.receive_some() == b""  # closed without a reply
            assert b.statistics().malformed_frames == 1
            await raw.aclose()


async def test_certificate_from_another_ca_is_refused(pki: Pki, rogue: Pki) -> None:
    """Neither side accepts a peer whose certificate another CA signed."""
    with trio.fail_after(10):
        async with (
            tls_transport(pki, "a") as good,
            open_tls_transport(
                "127.0.0.1",
                0,
                server_context(rogue, "mallory"),
                client_context(rogue, "mallory"),
            ) as bad,
        ):
            with pytest.raises(TLSHandshakeError):
                await bad.open_stream(good.local_address)
            with pytest.raises(OSError, match="TLS handshake"):
                await good.open_stream(bad.local_address)
            await bad.send_packet(good.local_address, b"rejected")
            await wait_until(
                lambda: (
                    good.statistics().read_errors >= 2 and bad.statistics().write_errors_packet >= 1
                ),
                5,
            )
            assert good.statistics().packet_bytes_received == 0


async def test_unreachable_peer_loses_packets_without_stalling_others(pki: Pki) -> None:
    """Packets to a closed port are counted as write errors; b still gets its packet."""
    with trio.fail_after(10):
        async with tls_transport(pki, "a") as a, tls_transport(pki, "b") as b:
            async with tls_transport(pki, "c") as c:
                gone = c.local_address
            await a.send_packet(gone, b"nobody")
            await a.send_packet(b.local_address, b"somebody")
            assert await b.receive_packet() == (b"somebody", a.local_address)
            await wait_until(lambda: a.statistics().write_errors_packet >= 1, 5)
            with pytest.raises(OSError):
                await a.open_stream(gone)


async def test_packet_connection_closed_by_peer_is_redialed(pki: Pki) -> None:
    """After the receiver hangs up a pooled connection, the next packet dials a new one."""
    received: list[bytes] = []
    connections = 0

    async def serve(tcp: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        stream = trio.SSLStream(tcp, server_context(pki, "b"), server_side=True)
        decoder = FrameDecoder()
        while (body := decoder.next_frame()) is None:
            decoder.feed(await stream.receive_some())
        received.append(MemberlistMessage.decode(body).msg)
        await stream.aclose()  # one packet per connection, then hang up

    with trio.fail_after(10):
        async with tls_transport(pki, "a") as a, trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            await a.send_packet(("127.0.0.1", port), b"first")
            await wait_until(lambda: len(received) == 1, 5)
            await trio.sleep(0.2)  # the sender's watcher sees the close
            await a.send_packet(("127.0.0.1", port), b"second")
            await wait_until(lambda: len(received) == 2, 5)
            assert received == [b"first", b"second"]
            assert connections == 2
            assert a.statistics().write_errors_packet == 0
            nursery.cancel_scope.cancel()


# --- two Nodes over TLS -------------------------------------------------------------------


@pytest.mark.parametrize("label", [b"", b"prod"])
async def test_two_nodes_form_a_cluster_over_tls(pki: Pki, label: bytes) -> None:
    """Nodes join by push/pull, gossip small and oversized broadcasts, and stay alive, all over TLS (labelled too)."""
    states = [RecordingState(full=b"state of a"), RecordingState(full=b"state of b")]
    with trio.fail_after(30):
        async with (
            tls_transport(pki, "a") as ta,
            tls_transport(pki, "b") as tb,
            trio.open_nursery() as nursery,
        ):
            nodes = []
            for name, transport, state in (("a", ta, states[0]), ("b", tb, states[1])):
                delegate = ChannelDelegate()
                delegate.add_state("sil", state)
                node = Node(
                    transport,
                    name,
                    config=NodeConfig(label=label),
                    delegate=delegate,
                    rng=random.Random(name),
                )
                await nursery.start(node.run)
                nodes.append(node)
            a, b = nodes
            assert await b.join([a.address]) == 1
            assert states[0].merged == [b"state of b"]
            assert states[1].merged == [b"state of a"]
            await wait_until(lambda: {m.name for m in a.members()} == {"a", "b"}, 10)
            a.broadcast("sil", b"small change")  # gossiped in packets
            await wait_until(lambda: b"small change" in states[1].merged, 10)
            big = bytes(random.Random(1).getrandbits(8) for _ in range(2000))
            b.broadcast("sil", big)  # oversized: a reliable stream to every member
            await wait_until(lambda: big in states[0].merged, 10)
            await trio.sleep(2.5)  # a few probe rounds: pings and acks as TLS packets
            assert all(m.state == 0 for m in a.members() + b.members())
            assert a.statistics().malformed_packets == 0
            assert a.statistics().label_refused == b.statistics().label_refused == 0
            assert ta.statistics().malformed_frames == tb.statistics().malformed_frames == 0
            assert tb.statistics().packet_bytes_received > 0
            assert ta.statistics().stream_connections_received >= 2  # join, oversized
            nursery.cancel_scope.cancel()


# --- timeouts and shutdown ----------------------------------------------------------------


async def test_silent_client_is_dropped_after_the_handshake_timeout(
    pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    """A TCP client that never starts TLS is disconnected after HANDSHAKE_TIMEOUT and counted."""
    async with tls_transport(pki, "b") as b:
        tcp = await trio.open_tcp_stream(*b.local_address)
        started = trio.current_time()
        with trio.fail_after(HANDSHAKE_TIMEOUT + 5):
            assert await tcp.receive_some() == b""
        assert trio.current_time() - started >= HANDSHAKE_TIMEOUT
        assert b.statistics().read_errors == 1
        await tcp.aclose()


async def test_connections_beyond_the_cap_are_closed_and_counted(pki: Pki) -> None:
    """With max_connections served, a further connection is closed before its handshake; packets still flow."""
    with trio.fail_after(10):
        async with tls_transport(pki, "b") as b:
            b.max_connections = 2
            held = [await raw_client(pki, "a", b.local_address[1]) for _ in range(2)]
            extra = await trio.open_tcp_stream(*b.local_address)
            assert await extra.receive_some() == b""
            assert b.statistics().connections_refused == 1
            await held[0].send_all(packet_frame("127.0.0.1:1", b"still served"))
            assert await b.receive_packet() == (b"still served", ("127.0.0.1", 1))
            for stream in held:
                await stream.aclose()
            await extra.aclose()


async def test_closing_the_transport_closes_accepted_connections(pki: Pki) -> None:
    """Leaving open_tls_transport ends idle incoming connections with a clean TLS close."""
    with trio.fail_after(10):
        async with tls_transport(pki, "b") as b:
            raw = await raw_client(pki, "a", b.local_address[1])
            await raw.send_all(packet_frame("127.0.0.1:1", b"x"))
            await b.receive_packet()
        assert await raw.receive_some() == b""
        await raw.aclose()


async def test_each_frame_travels_in_its_own_tls_record(pki: Pki) -> None:
    """Frames are never coalesced: Go's reader buffers per frame and would lose a second one."""
    reads: list[bytes] = []

    async def serve(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, server_context(pki, "b"), server_side=True)
        await stream.do_handshake()
        await trio.sleep(0.3)  # let every frame arrive before reading
        while len(reads) < 3:
            reads.append(bytes(await stream.receive_some(65536)))  # at most one record
        await stream.aclose()

    with trio.fail_after(10):
        async with tls_transport(pki, "a") as a, trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            for data in (b"one", b"two", b"three"):
                await a.send_packet(("127.0.0.1", port), data)
            await wait_until(lambda: len(reads) == 3, 5)
            assert reads == [
                packet_frame(format_address(a.local_address), d) for d in (b"one", b"two", b"three")
            ]
            nursery.cancel_scope.cancel()
