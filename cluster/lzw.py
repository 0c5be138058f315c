"""LZW exactly as Go's ``compress/lzw`` does it with ``LSB`` order and literal width 8.

memberlist compresses with this codec (``compress`` messages, algorithm 0) and every
Alertmanager TCP stream arrives compressed, so both directions must match Go bit for
bit. No PyPI LZW package uses these parameters (it is the GIF/PDF variant, not TIFF's).

Rules of the format:

* codes are packed least-significant-bit first;
* 256 is *clear*, 257 is *end of data*, the first dictionary code is 258;
* codes start 9 bits wide and grow by one bit when the next code to be assigned
  reaches 512, 1024 and 2048, up to 12 bits;
* the writer emits a clear code first, and when its next code would be 4095 it emits
  a clear and starts over; it ends with end-of-data and then the last partial byte;
* the reader widens at the same points and, at 12 bits, stops adding entries instead
  of failing (GIF's "deferred clear"). Bytes after end-of-data are ignored; input that
  ends without it is an error (Go's ``io.ErrUnexpectedEOF``).

Invariant shared by both ends: the decoder's ``hi`` is always one behind the encoder's,
because the decoder can only define an entry once it has seen the *next* code.
"""

from __future__ import annotations

from cluster.errors import DecodeError

_LIT_WIDTH = 8
_CLEAR = 1 << _LIT_WIDTH  # 256
_EOF = _CLEAR + 1  # 257
_MAX_WIDTH = 12
_MAX_CODE = (1 << _MAX_WIDTH) - 1  # 4095

#: Refuse to inflate beyond this by default (LZW's ratio is bounded, but not by much).
DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024


def compress(data: bytes) -> bytes:
    """Compress ``data`` into the exact bytes Go's ``lzw.NewWriter(w, lzw.LSB, 8)`` writes."""
    out = bytearray()
    bits = 0  # pending output bits, LSB first
    nbits = 0
    width = _LIT_WIDTH + 1

    def emit(code: int) -> None:
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8

    # `hi` is the last code assigned, `overflow` the value at which codes grow a bit.
    hi = _EOF
    overflow = 1 << (_LIT_WIDTH + 1)
    table: dict[int, int] = {}  # (prefix code << 8 | byte) -> code

    def inc_hi() -> bool:
        """Assign the next code; on running out, emit clear and reset (return False)."""
        nonlocal hi, overflow, width
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == _MAX_CODE:
            emit(_CLEAR)
            width = _LIT_WIDTH + 1
            hi = _EOF
            overflow = 1 << (_LIT_WIDTH + 1)
            table.clear()
            return False
        return True

    emit(_CLEAR)
    if data:
        code = data[0]
        for literal in data[1:]:
            key = (code << 8) | literal
            found = table.get(key)
            if found is not None:
                code = found
                continue
            emit(code)
            code = literal
            if inc_hi():
                table[key] = hi
        emit(code)
        inc_hi()  # Go's Close does this too; it can change the width of end-of-data
    emit(_EOF)
    if nbits > 0:
        out.append(bits & 0xFF)
    return bytes(out)


def decompress(data: bytes, *, max_output: int = DEFAULT_MAX_OUTPUT) -> bytes:
    """Inflate Go-LZW ``data`` (LSB, literal width 8).

    Raises:
        DecodeError: an invalid code, no end-of-data code, or more than ``max_output``
            bytes of output.
    """
    out = bytearray()
    # Each entry is stored as the full byte string it expands to; entries share no
    # memory, but the table is at most 4096 entries long and is reset on every clear.
    entries: list[bytes] = [bytes((i,)) for i in range(_CLEAR)] + [b"", b""]
    width = _LIT_WIDTH + 1
    hi = _EOF
    overflow = 1 << width
    last: bytes | None = None  # expansion of the previous code; None right after clear
    bits = 0
    nbits = 0
    pos = 0
    n = len(data)
    while True:
        while nbits < width:
            if pos >= n:
                raise DecodeError("lzw: input ends without an end-of-data code")
            bits |= data[pos] << nbits
            pos += 1
            nbits += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        nbits -= width

        if code == _CLEAR:
            del entries[_EOF + 1 :]
            width = _LIT_WIDTH + 1
            hi = _EOF
            overflow = 1 << width
            last = None
            continue
        if code == _EOF:
            return bytes(out)
        if code < hi or (code == hi and last is None):
            # Defined codes. (code == hi with no previous code only happens once the
            # table is full, and then entry `hi` is the last one ever defined.)
            expansion = entries[code]
            if last is not None:
                entries.append(last + expansion[:1])
        elif code == hi:
            # The KwKwK case: the code being defined by this very step.
            assert last is not None
            expansion = last + last[:1]
            entries.append(expansion)
        else:
            raise DecodeError(f"lzw: invalid code {code}")
        out += expansion
        if len(out) > max_output:
            raise DecodeError(f"lzw: output exceeds {max_output} bytes")
        last = expansion
        hi += 1
        if hi >= overflow:
            if width == _MAX_WIDTH:
                # Deferred clear: keep the table full and stop defining entries.
                last = None
                hi -= 1
            else:
                width += 1
                overflow = 1 << width
