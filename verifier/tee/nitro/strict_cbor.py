"""The one CBOR reader for Nitro attestation documents (RFC 8949): a strict decoder for the AWS CDDL's subset.

A generic decoder (cbor2) turns hostile input into anything its tags allow (bignums that become plain ints,
datetimes, shared references) and folds Python-equal keys together (in a dict `1 == 1.0 == True`, so
`{1: a, 1.0: b}` becomes `{1: b}`). Two parsers could then read different claims from the same signed bytes. This
decoder builds values itself, and only these: integers, byte and text strings, arrays, maps, false, true, null.

Raises ParseError only:

- NITRO_CBOR_TRUNCATED, NITRO_CBOR_INVALID (not well-formed: reserved additional information, a stray break, a
  chunk of the wrong type, invalid UTF-8, a two-byte simple value below 32 (RFC 8949 section 3.3), nesting deeper
  than MAX_DEPTH), NITRO_TRAILING_BYTES;
- NITRO_CBOR_UNSUPPORTED: tags, floats, undefined and other simple values (none occurs in the CDDL);
- NITRO_CBOR_KEY_TYPE: a map key that is not an integer or a text string (the only key types of the CDDL and of
  the COSE labels we read);
- NITRO_CBOR_DUPLICATE_KEY: two keys with the same DECODED value (RFC 8949 section 5.6: such a map is not valid).
  Section 5.6.1: integers, text strings, byte strings and floats are different key types, so 1 and "1" are two
  keys; with keys restricted to integers and text, Python's equality is exactly that equivalence. One key written
  two ways (a longer length head, a chunked string) is one key;
- NITRO_CBOR_NOT_PREFERRED, with `preferred=True` (the signed protected header and payload): every integer,
  length and count in its shortest form and every string definite-length (RFC 8949 section 4.1, preferred
  serialization), so each value has one encoding. Indefinite-length arrays and maps remain accepted: producers
  have written the payload map that way (`bf ... ff`), and their items are still checked. A duplicate key is
  reported in preference to a non-preferred encoding, which is raised only once the whole item decoded.
"""

from __future__ import annotations

from verifier.errors import ParseError

MAX_DEPTH = 16
_BREAK = 0xFF
_SIMPLE = {20: False, 21: True, 22: None}
_KEY_MAJORS = (0, 1, 3)  # unsigned integer, negative integer, text string
_MINIMUM = {24: 24, 25: 1 << 8, 26: 1 << 16, 27: 1 << 32}  # smallest argument that needs 1, 2, 4, 8 bytes


def decode_strict(data: bytes, *, what: str, preferred: bool) -> object:
    """Decode exactly one CBOR item of `data` under the rules of the module docstring; raises ParseError."""
    reader = _Reader(data, what, preferred)
    value = reader.item(0)
    if reader.pos != len(data):
        raise ParseError(
            "NITRO_TRAILING_BYTES",
            f"{what}: bytes after the top-level CBOR item",
            expected=str(len(data)),
            actual=str(reader.pos),
        )
    if reader.not_preferred is not None:
        raise ParseError(
            "NITRO_CBOR_NOT_PREFERRED",
            f"{what}: {reader.not_preferred[1]} (RFC 8949 section 4.1 preferred serialization)",
            expected="shortest argument, definite-length strings",
            actual=f"offset {reader.not_preferred[0]}",
        )
    return value


class _Reader:
    def __init__(self, data: bytes, what: str, preferred: bool) -> None:
        self.data = data
        self.what = what
        self.preferred = preferred
        self.pos = 0
        self.not_preferred: tuple[int, str] | None = None

    def _fail(self, code: str, message: str, actual: str = "") -> ParseError:
        return ParseError(code, f"{self.what}: {message}", actual=actual)

    def _note(self, offset: int, message: str) -> None:
        if self.preferred and self.not_preferred is None:
            self.not_preferred = (offset, message)

    def _take(self, size: int) -> bytes:
        if size > len(self.data) - self.pos:
            raise self._fail("NITRO_CBOR_TRUNCATED", "premature end of CBOR data")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def _peek(self) -> int:
        if self.pos >= len(self.data):
            raise self._fail("NITRO_CBOR_TRUNCATED", "premature end of CBOR data")
        return self.data[self.pos]

    def _at_break(self) -> bool:
        if self._peek() == _BREAK:
            self.pos += 1
            return True
        return False

    def _head(self) -> tuple[int, int, int | None, int]:
        """(major type, additional info, argument or None when indefinite, offset of the head)."""
        start = self.pos
        first = self._take(1)[0]
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info, info, start
        if info == 31:
            return major, info, None, start
        if info > 27:
            raise self._fail("NITRO_CBOR_INVALID", f"reserved additional information {info}", f"offset {start}")
        argument = int.from_bytes(self._take(1 << (info - 24)), "big")
        if major != 7 and argument < _MINIMUM[info]:
            self._note(start, f"argument {argument} not in its shortest form")
        return major, info, argument, start

    def item(self, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise self._fail("NITRO_CBOR_INVALID", f"CBOR nesting deeper than {MAX_DEPTH}")
        major, info, argument, start = self._head()
        if major in (2, 3):
            return self._string(major, argument, start)
        if major == 4:
            return self._array(argument, depth)
        if major == 5:
            return self._map(argument, depth)
        if major == 7:
            return self._simple(info, argument, start)
        if argument is None:
            raise self._fail("NITRO_CBOR_INVALID", "indefinite length on an integer or tag", f"offset {start}")
        if major == 6:
            raise self._fail("NITRO_CBOR_UNSUPPORTED", "CBOR tags are not part of the document", f"tag {argument}")
        return argument if major == 0 else -1 - argument

    def _string(self, major: int, length: int | None, start: int) -> bytes | str:
        if length is not None:
            raw = self._take(length)
        else:
            self._note(start, "indefinite-length string")
            chunks = []
            while not self._at_break():
                chunk_major, _, chunk_length, chunk_start = self._head()
                if chunk_major != major or chunk_length is None:
                    raise self._fail("NITRO_CBOR_INVALID", "a string chunk of another type", f"offset {chunk_start}")
                chunks.append(self._take(chunk_length))
            raw = b"".join(chunks)
        if major == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("NITRO_CBOR_INVALID", "text string is not UTF-8", f"offset {start}") from None

    def _count(self, count: int | None, per_item: int) -> None:
        """A definite container cannot hold more items than it has bytes left (one byte per item at least)."""
        if count is not None and count * per_item > len(self.data) - self.pos:
            raise self._fail("NITRO_CBOR_TRUNCATED", "premature end of CBOR data", f"{count} items announced")

    def _array(self, count: int | None, depth: int) -> list[object]:
        self._count(count, 1)
        out: list[object] = []
        while (len(out) < count) if count is not None else not self._at_break():
            out.append(self.item(depth + 1))
        return out

    def _map(self, count: int | None, depth: int) -> dict[int | str, object]:
        self._count(count, 2)
        out: dict[int | str, object] = {}
        while (len(out) < count) if count is not None else not self._at_break():
            offset = self.pos
            major = self._peek() >> 5
            if major not in _KEY_MAJORS:
                raise self._fail(
                    "NITRO_CBOR_KEY_TYPE",
                    "map keys must be integers or text strings",
                    f"major type {major} at offset {offset}",
                )
            key = self.item(depth + 1)
            if not isinstance(key, int | str):  # unreachable: major types 0, 1 and 3 decode to int or str
                raise self._fail("NITRO_CBOR_KEY_TYPE", "map keys must be integers or text strings")
            if key in out:
                raise ParseError(
                    "NITRO_CBOR_DUPLICATE_KEY",
                    f"{self.what}: a CBOR map repeats a key (RFC 8949 section 5.6)",
                    expected="each key once",
                    actual=repr(key)[:64],
                )
            out[key] = self.item(depth + 1)
        return out

    def _simple(self, info: int, argument: int | None, start: int) -> bool | None:
        if argument is None:
            raise self._fail("NITRO_CBOR_INVALID", "break outside an indefinite-length item", f"offset {start}")
        if info == 24 and argument < 32:
            raise self._fail("NITRO_CBOR_INVALID", "two-byte simple value below 32", f"offset {start}")
        if info < 24 and info in _SIMPLE:
            return _SIMPLE[info]
        kind = "float" if info in (25, 26, 27) else f"simple value {argument}"
        raise self._fail("NITRO_CBOR_UNSUPPORTED", f"{kind} is not part of the document", f"offset {start}")
