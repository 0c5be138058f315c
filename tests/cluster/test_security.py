"""Keyring rotation and AES-GCM payload encryption, versions 0 and 1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.errors import DecodeError, DecryptError
from cluster.security import (
    Keyring,
    KeyringError,
    decrypt_payload,
    encrypt_payload,
    encrypted_length,
    encryption_version,
)

K1 = bytes(range(16))
K2 = bytes(range(1, 25))
K3 = bytes(range(2, 34))
NONCE = bytes(12)


def test_keyring_primary_first_and_rotation() -> None:
    """add, use and remove rotate the primary key the way memberlist does."""
    ring = Keyring.create([K2], primary=K1)
    assert ring.keys == (K1, K2)
    ring.add_key(K3)
    ring.add_key(K3)
    assert ring.keys == (K1, K2, K3)
    ring.use_key(K3)
    assert ring.primary_key == K3
    ring.remove_key(K1)
    assert ring.keys == (K3, K2)


def test_keyring_rejects_bad_operations() -> None:
    """Wrong key sizes, unknown keys and removing the primary raise KeyringError."""
    with pytest.raises(KeyringError, match="16, 24 or 32"):
        Keyring.create([b"short"])
    with pytest.raises(KeyringError, match="empty"):
        Keyring.create([])
    ring = Keyring.create([K1])
    with pytest.raises(KeyringError, match="not in the keyring"):
        ring.use_key(K2)
    with pytest.raises(KeyringError, match="primary"):
        ring.remove_key(K1)


def test_version_follows_protocol() -> None:
    """Protocol 1 uses encryption version 0; later protocols use version 1."""
    assert encryption_version(1) == 0
    assert encryption_version(2) == 1


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 100])
def test_layout_and_length(version: int, length: int) -> None:
    """Payloads are [vsn][nonce][ct+tag] and v0 adds 1-16 bytes of PKCS#7 padding."""
    sealed = encrypt_payload(version, K1, b"x" * length, nonce=NONCE)
    assert sealed[0] == version
    assert sealed[1:13] == NONCE
    assert len(sealed) == encrypted_length(version, length)
    if version == 0:
        assert len(sealed) == 1 + 12 + (length // 16 + 1) * 16 + 16
    else:
        assert len(sealed) == 1 + 12 + length + 16


@pytest.mark.parametrize("version", [0, 1])
def test_decrypt_tries_every_key(version: int) -> None:
    """A payload sealed with a secondary key still opens; a foreign key does not."""
    sealed = encrypt_payload(version, K2, b"hello", b"label")
    assert decrypt_payload([K1, K2], sealed, b"label") == b"hello"
    with pytest.raises(DecryptError, match="no installed keys"):
        decrypt_payload([K1, K3], sealed, b"label")


def test_associated_data_is_authenticated() -> None:
    """A different label (associated data) makes decryption fail."""
    sealed = encrypt_payload(1, K1, b"hello", b"a")
    with pytest.raises(DecryptError):
        decrypt_payload([K1], sealed, b"b")


def test_truncated_and_unknown_version() -> None:
    """Short payloads and unknown versions are DecryptErrors, which are DecodeErrors."""
    with pytest.raises(DecryptError, match="too small"):
        decrypt_payload([K1], b"\x01" + bytes(20))
    with pytest.raises(DecodeError, match="version"):
        decrypt_payload([K1], b"\x02" + bytes(40))


def test_version0_bad_padding_is_rejected() -> None:
    """An authentic v0 payload whose pad byte is out of range is rejected cleanly."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    bogus = b"\x00" + NONCE + AESGCM(K1).encrypt(NONCE, b"abc\x00", b"")
    with pytest.raises(DecryptError, match="padding"):
        decrypt_payload([K1], bogus)


@given(st.sampled_from([0, 1]), st.binary(max_size=300), st.binary(max_size=40))
def test_round_trip(version: int, plaintext: bytes, label: bytes) -> None:
    """encrypt then decrypt returns the plaintext for both versions."""
    sealed = encrypt_payload(version, K3, plaintext, label)
    assert decrypt_payload([K1, K3], sealed, label) == plaintext


@given(st.binary(max_size=120))
def test_garbage_raises_decode_error(data: bytes) -> None:
    """Random bytes never decrypt and only raise DecodeError."""
    with pytest.raises(DecodeError):
        decrypt_payload([K1], data)
