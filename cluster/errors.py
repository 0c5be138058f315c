"""The one exception family the wire layer raises for bad input.

Everything that parses bytes from the network raises :class:`DecodeError` (or a
subclass) for truncated, malformed or unauthenticated input, and nothing else: the
transport shell catches exactly this type, logs it and drops the packet or closes the
stream, just as memberlist logs and drops. Foreign exceptions (msgpack's, cryptography's,
``struct.error``) are translated at the point where they arise.

Errors made by *our own* callers while encoding (a label longer than 255 bytes, a
negative incarnation) are programming errors and raise :class:`ValueError`.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Bytes from a peer could not be decoded: truncated, malformed or unauthenticated."""


class TruncatedError(DecodeError):
    """The input ended before the message did; a stream reader waits for more bytes."""


class DecryptError(DecodeError):
    """An encrypted payload could not be opened with any installed key, or is malformed."""


class LabelError(DecodeError):
    """A packet or stream carried a cluster label we must not accept."""
