"""The ``tocsin/cfg`` gossip payload is peer input: anything but a list of well-formed
entries is a DecodeError (dropped and counted by the channel), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import DecodeError
from daemon.instances import ConfigEntry, decode_entries, encode_entries
from daemon.tenancy.configstore import TenantConfigDoc


def test_entries_round_trip() -> None:
    """What a node marshals, a peer decodes to the same entries."""
    entries = [
        ConfigEntry("team-a", 3, False, TenantConfigDoc("route: {receiver: r}\n", {"t": "x"})),
        ConfigEntry("team-b", 7, True, None),
    ]
    assert decode_entries(encode_entries(entries)) == entries


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe garbage",
        b"{}",
        b"[1]",
        b'[{"tenant": "../etc", "version": 1, "deleted": false, "config": null, "templates": null}]',
        b'[{"tenant": "a", "version": "x", "deleted": false, "config": null, "templates": null}]',
        b'[{"tenant": "a", "version": 1, "deleted": false, "config": "c", "templates": 5}]',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_hostile_payloads_are_decode_errors(data: bytes) -> None:
    """Garbage, wrong shapes, a path-like tenant id and nesting past the decoder's
    recursion are each a DecodeError."""
    with pytest.raises(DecodeError):
        decode_entries(data)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    """No byte string makes the decoder raise anything but DecodeError."""
    try:
        decode_entries(data)
    except DecodeError:
        pass


def test_any_json_shape_decodes_or_raises_decode_error() -> None:
    """Valid JSON of the wrong shape at every level is a DecodeError."""
    for value in ([None], [[]], [{"tenant": None}], [{"tenant": "a", "version": []}], "x", 1):
        with pytest.raises(DecodeError):
            decode_entries(json.dumps(value).encode())
