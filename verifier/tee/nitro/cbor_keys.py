"""Reject CBOR maps with duplicate keys (RFC 8949 section 5.6: such maps are not valid).

cbor2 keeps the last of duplicate keys silently; two parsers could then read different values from the same
signed bytes. This walker runs after cbor2 accepted the item, so the input is well-formed; it still bounds
everything and raises ParseError on anything unexpected."""

from __future__ import annotations

from verifier.errors import ParseError

MAX_DEPTH = 16
_BREAK = 0xFF


def check_unique_keys(data: bytes, *, what: str) -> None:
    end = _walk(data, 0, 0, what)
    if end != len(data):
        raise ParseError("NITRO_TRAILING_BYTES", f"{what}: bytes after the top-level CBOR item")


def _head(data: bytes, pos: int, what: str) -> tuple[int, int, int | None, int]:
    """(major type, additional info, argument or None for indefinite, position after the head)."""
    if pos >= len(data):
        raise ParseError("NITRO_CBOR_TRUNCATED", f"{what}: premature end of CBOR data")
    major, info = data[pos] >> 5, data[pos] & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info == 31:
        return major, info, None, pos
    if info > 27:
        raise ParseError("NITRO_CBOR_INVALID", f"{what}: reserved additional information {info}")
    size = 1 << (info - 24)
    if pos + size > len(data):
        raise ParseError("NITRO_CBOR_TRUNCATED", f"{what}: premature end of CBOR data")
    return major, info, int.from_bytes(data[pos : pos + size], "big"), pos + size


def _walk(data: bytes, pos: int, depth: int, what: str) -> int:
    if depth > MAX_DEPTH:
        raise ParseError("NITRO_CBOR_INVALID", f"{what}: CBOR nesting deeper than {MAX_DEPTH}")
    major, _, arg, pos = _head(data, pos, what)
    if major in (0, 1, 7):
        return pos
    if major in (2, 3):
        if arg is not None:
            return _skip(data, pos, arg, what)
        while data[pos : pos + 1] != bytes([_BREAK]):
            pos = _walk(data, pos, depth + 1, what)
        return pos + 1
    if major == 6:
        return _walk(data, pos, depth + 1, what)
    count = arg
    index = 0
    keys: set[bytes] = set()
    while count is None or index < count:
        if count is None and data[pos : pos + 1] == bytes([_BREAK]):
            return pos + 1
        if major == 4:
            pos = _walk(data, pos, depth + 1, what)
        else:
            key_end = _walk(data, pos, depth + 1, what)
            key = data[pos:key_end]
            if key in keys:
                raise ParseError("NITRO_CBOR_DUPLICATE_KEY", f"{what}: a CBOR map repeats a key", actual=key.hex())
            keys.add(key)
            pos = _walk(data, key_end, depth + 1, what)
        index += 1
        if index > len(data):
            raise ParseError("NITRO_CBOR_INVALID", f"{what}: CBOR container longer than its input")
    return pos


def _skip(data: bytes, pos: int, length: int, what: str) -> int:
    if pos + length > len(data):
        raise ParseError("NITRO_CBOR_TRUNCATED", f"{what}: premature end of CBOR data")
    return pos + length
