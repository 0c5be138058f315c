"""memberlist's gossip encryption: a keyring and AES-GCM payloads, versions 0 and 1.

Alertmanager 0.25 never enables this (it has no flag for a key), but a tocsin-only
cluster may, and a faithful codec keeps the door open. The format:

* an encrypted payload is ``[vsn:1][nonce:12][AES-GCM ciphertext + 16-byte tag]``;
* version 0 PKCS#7-pads the plaintext to a multiple of 16 bytes before sealing and
  strips the pad after opening; version 1 seals the plaintext as is. memberlist picks
  version 0 only when speaking protocol version 1;
* keys are 16, 24 or 32 bytes (AES-128/192/256). The primary key (first in the ring)
  encrypts; decryption tries every installed key in order;
* associated data: for a packet, the cluster label; for a stream, the 5-byte
  ``encrypt`` header (type byte + length) followed by the label.

Rotation is the usual three steps, each applied on every node: ``add_key`` the new key,
``use_key`` it (it becomes primary), then ``remove_key`` the old one. The primary key
cannot be removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cluster.errors import DecryptError

VERSION_SIZE = 1
NONCE_SIZE = 12
TAG_SIZE = 16
BLOCK_SIZE = 16
#: The newest encryption version memberlist knows.
MAX_ENCRYPTION_VERSION = 1
_VALID_KEY_SIZES = (16, 24, 32)


class KeyringError(ValueError):
    """A keyring operation was given an invalid, unknown or primary key."""


def _validate_key(key: bytes) -> bytes:
    if len(key) not in _VALID_KEY_SIZES:
        raise KeyringError(f"key size must be 16, 24 or 32 bytes, got {len(key)}")
    return bytes(key)


@attrs.define
class Keyring:
    """The installed gossip keys; ``keys[0]`` is the primary key used to encrypt.

    A mutable state object owned by the cluster peer; build it with :meth:`create` and
    read it through :attr:`keys`.
    """

    _keys: list[bytes] = attrs.field(factory=list, init=False)

    @classmethod
    def create(cls, keys: Iterable[bytes] = (), primary: bytes | None = None) -> Keyring:
        """Install ``primary`` (if given) first, then the other ``keys``, as ``NewKeyring`` does.

        Raises:
            KeyringError: a key has the wrong size, or no keys at all were given.
        """
        ring = cls()
        if primary is not None:
            ring.add_key(primary)
        for key in keys:
            ring.add_key(key)
        if not ring._keys:
            raise KeyringError("empty keyring")
        return ring

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every installed key, primary first."""
        return tuple(self._keys)

    @property
    def primary_key(self) -> bytes:
        """The key outgoing payloads are encrypted with."""
        if not self._keys:
            raise KeyringError("empty keyring")
        return self._keys[0]

    def add_key(self, key: bytes) -> None:
        """Install ``key`` (a no-op if present); the first key ever added becomes primary."""
        key = _validate_key(key)
        if key not in self._keys:
            self._keys.append(key)

    def use_key(self, key: bytes) -> None:
        """Make an installed key the primary one.

        Raises:
            KeyringError: the key is not installed.
        """
        if key not in self._keys:
            raise KeyringError("requested key is not in the keyring")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove_key(self, key: bytes) -> None:
        """Uninstall a non-primary key (a no-op if absent).

        Raises:
            KeyringError: ``key`` is the primary key.
        """
        if self._keys and key == self._keys[0]:
            raise KeyringError("removing the primary key is not allowed")
        if key in self._keys:
            self._keys.remove(key)


def encryption_version(protocol_version: int) -> int:
    """The encryption version memberlist uses for a protocol version (1 -> 0, else 1)."""
    return 0 if protocol_version < 2 else 1


def encrypted_length(version: int, plaintext_length: int) -> int:
    """The size of an encrypted payload for ``plaintext_length`` bytes of input."""
    if version == 0:
        padding = BLOCK_SIZE - plaintext_length % BLOCK_SIZE
        return VERSION_SIZE + NONCE_SIZE + plaintext_length + padding + TAG_SIZE
    return VERSION_SIZE + NONCE_SIZE + plaintext_length + TAG_SIZE


def encrypt_payload(
    version: int,
    key: bytes,
    plaintext: bytes,
    associated_data: bytes = b"",
    *,
    nonce: bytes | None = None,
) -> bytes:
    """Seal ``plaintext`` as ``[vsn][nonce][ciphertext+tag]``.

    ``nonce`` is random unless given (tests pass a fixed one to get stable bytes).

    Raises:
        ValueError: an unknown version, a bad key size or a nonce that is not 12 bytes.
    """
    if version not in (0, 1):
        raise ValueError(f"unsupported encryption version {version}")
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    elif len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    if version == 0:
        pad = BLOCK_SIZE - len(plaintext) % BLOCK_SIZE
        plaintext = plaintext + bytes((pad,)) * pad
    sealed = AESGCM(_validate_key(key)).encrypt(nonce, plaintext, associated_data)
    return bytes((version,)) + nonce + sealed


def decrypt_payload(keys: Sequence[bytes], payload: bytes, associated_data: bytes = b"") -> bytes:
    """Open a payload with the first installed key that authenticates it.

    Raises:
        DecryptError: too short to hold a version, nonce and tag; an unknown version;
            no key opens it (wrong key, tampering, or wrong associated data); or a
            version 0 payload whose padding is invalid.
    """
    if len(payload) < VERSION_SIZE + NONCE_SIZE + TAG_SIZE:
        raise DecryptError(f"payload of {len(payload)} bytes is too small to decrypt")
    version = payload[0]
    if version > MAX_ENCRYPTION_VERSION:
        raise DecryptError(f"unsupported encryption version {version}")
    nonce = payload[VERSION_SIZE : VERSION_SIZE + NONCE_SIZE]
    sealed = payload[VERSION_SIZE + NONCE_SIZE :]
    for key in keys:
        try:
            plaintext = AESGCM(key).decrypt(nonce, sealed, associated_data)
        except InvalidTag:
            continue
        return _pkcs7_unpad(plaintext) if version == 0 else plaintext
    raise DecryptError("no installed keys could decrypt the message")


def _pkcs7_unpad(data: bytes) -> bytes:
    # Authenticated plaintext with a bad pad means a buggy peer, not an attacker, but
    # it is still input we cannot use.
    if not data:
        raise DecryptError("version 0 payload has no padding")
    pad = data[-1]
    if not 1 <= pad <= BLOCK_SIZE or pad > len(data):
        raise DecryptError(f"version 0 payload has invalid padding {pad}")
    return data[:-pad]
