"""Break a well-formed DER certificate or CRL in ways that make `cryptography` raise when it decodes the part
(lazily): a version field of 5 (InvalidVersion), a duplicated extension (DuplicateExtension), a name attribute
whose UTF8String is not UTF-8 (ValueError), an unknown signature algorithm (UnsupportedAlgorithm).

The DER is walked with a tiny TLV reader written here (independent of the verifier and of asn1crypto); lengths are
re-encoded, signatures are left as they were (the loaders must fail before any signature is checked)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SEQUENCE, SET, UTF8STRING, OID, CONTEXT0, CONTEXT3 = 0x30, 0x31, 0x0C, 0x06, 0xA0, 0xA3


@dataclass
class Tlv:
    tag: int
    body: bytes

    def children(self) -> list[Tlv]:
        out, position = [], 0
        while position < len(self.body):
            child, position = read(self.body, position)
            out.append(child)
        return out

    def encode(self) -> bytes:
        return encode(self.tag, self.body)


def read(data: bytes, position: int = 0) -> tuple[Tlv, int]:
    tag, first = data[position], data[position + 1]
    position += 2
    if first < 0x80:
        length = first
    else:
        width = first & 0x7F
        length = int.from_bytes(data[position : position + width], "big")
        position += width
    return Tlv(tag, data[position : position + length]), position + length


def encode(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    width = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | width]) + n.to_bytes(width, "big") + body


def _seq(tag: int, items: list[Tlv]) -> Tlv:
    return Tlv(tag, b"".join(item.encode() for item in items))


def _with_tbs(der: bytes, change: Callable[[Tlv], Tlv]) -> bytes:
    outer, _ = read(der)
    tbs, algorithm, signature = outer.children()
    return _seq(SEQUENCE, [change(tbs), algorithm, signature]).encode()


def version(der: bytes, number: int = 4) -> bytes:
    """A certificate whose TBS version INTEGER is `number` (v3 is 2; 4 means "v5")."""

    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()
        assert items[0].tag == CONTEXT0, "not a v2/v3 certificate"
        items[0] = Tlv(CONTEXT0, encode(0x02, bytes([number])))
        return _seq(SEQUENCE, items)

    return _with_tbs(der, change)


def _extensions_index(items: list[Tlv]) -> int:
    return next(i for i, item in enumerate(items) if item.tag == CONTEXT3)


def duplicate_extension(der: bytes) -> bytes:
    """A certificate whose first extension appears twice (RFC 5280 section 4.2 forbids it)."""

    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()
        i = _extensions_index(items)
        extensions = items[i].children()[0].children()
        items[i] = _seq(CONTEXT3, [_seq(SEQUENCE, [extensions[0], *extensions])])
        return _seq(SEQUENCE, items)

    return _with_tbs(der, change)


def _break_name(name: Tlv) -> Tlv:
    rdns = name.children()
    for r, rdn in enumerate(rdns):
        attributes = rdn.children()
        for a, attribute in enumerate(attributes):
            oid, value = attribute.children()
            if value.tag == UTF8STRING or value.tag == 0x13:  # UTF8String or PrintableString
                attributes[a] = _seq(SEQUENCE, [oid, Tlv(UTF8STRING, b"\xff\xfe" + value.body[2:])])
                rdns[r] = _seq(SET, attributes)
                return _seq(SEQUENCE, rdns)
    raise AssertionError("no string attribute to break")


def bad_name(der: bytes, which: str = "subject") -> bytes:
    """A certificate whose issuer or subject has an attribute that is a UTF8String holding invalid UTF-8."""

    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()
        start = 1 if items[0].tag == CONTEXT0 else 0  # [version] serial signature issuer validity subject
        index = start + (2 if which == "issuer" else 4)
        items[index] = _break_name(items[index])
        return _seq(SEQUENCE, items)

    return _with_tbs(der, change)


UNKNOWN_ALGORITHM = encode(SEQUENCE, encode(OID, bytes([0x2A, 0x03, 0x04, 0x63])))  # 1.2.3.4.99


def unknown_signature_algorithm(der: bytes) -> bytes:
    """A certificate or CRL whose signature algorithm (outer and inner) is the unknown OID 1.2.3.4.99."""
    outer, _ = read(der)
    tbs, _algorithm, signature = outer.children()
    items = tbs.children()
    index = 2 if items[0].tag == CONTEXT0 else 1  # certificate: [version] serial signature
    if items[0].tag == 0x02 and len(items[0].body) == 1 and items[1].tag == SEQUENCE:  # CRL: version signature
        index = 1
    items[index] = read(UNKNOWN_ALGORITHM)[0]
    return _seq(SEQUENCE, [_seq(SEQUENCE, items), read(UNKNOWN_ALGORITHM)[0], signature]).encode()


CRL_NUMBER_1 = encode(SEQUENCE, encode(OID, bytes([0x55, 0x1D, 0x14])) + encode(0x04, encode(0x02, b"\x01")))


def crl_duplicate_extension(der: bytes) -> bytes:
    """A CRL (RFC 5280 section 5.1) whose first crlExtension appears twice (a CRL without extensions gets
    cRLNumber 1 twice)."""

    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()
        i = next((i for i, item in enumerate(items) if item.tag == 0xA0), None)
        if i is None:
            items.append(Tlv(0xA0, encode(SEQUENCE, CRL_NUMBER_1)))
            i = len(items) - 1
        extensions = items[i].children()[0].children()
        items[i] = _seq(0xA0, [_seq(SEQUENCE, [extensions[0], *extensions])])
        return _seq(SEQUENCE, items)

    return _with_tbs(der, change)


def crl_duplicate_entry_extension(der: bytes) -> bytes:
    """A CRL whose first revoked entry has its first crlEntryExtension twice."""

    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()
        issuer = 2 if items[0].tag == 0x02 else 1  # [version] signature issuer thisUpdate [nextUpdate] revoked
        i = next(i for i, item in enumerate(items) if item.tag == SEQUENCE and i > issuer)
        entries = items[i].children()
        serial, date, extensions = entries[0].children()
        inner = extensions.children()
        entries[0] = _seq(SEQUENCE, [serial, date, _seq(SEQUENCE, [inner[0], *inner])])
        items[i] = _seq(SEQUENCE, entries)
        return _seq(SEQUENCE, items)

    return _with_tbs(der, change)


def crl_bad_issuer(der: bytes) -> bytes:
    """A CRL whose issuer has an attribute that is a UTF8String holding invalid UTF-8."""

    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()
        index = 2 if items[0].tag == 0x02 else 1  # [version] signature issuer
        items[index] = _break_name(items[index])
        return _seq(SEQUENCE, items)

    return _with_tbs(der, change)
