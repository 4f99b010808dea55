"""The NVIDIA GPU pieces of the whole-pipeline fuzzers (`fuzz_support`), defined independently of verifier/tee/gpu/:
where an SPDM report's signed bytes are, its field boundaries for targeted mutations, and what a RIM's XML means.

Signed bytes of a GPU report (DMTF DSP0274 1.1 GET_MEASUREMENTS / MEASUREMENTS, as NVML returns them; layout in
../shared/vectors/README.md "NVIDIA GPU"): the 37-byte request (whose nonce is the verifier's challenge) then the
response up to its signature, i.e. bytes 0 .. 45 + L1 + 32 + 2 + L2 - 1 (L1 the u24 MeasurementRecordLength at
42, L2 the u16 OpaqueLength after the responder's nonce), then the 96-byte raw r || s signature (a changed r or s
is a changed signature). Bytes after the signature are not signed.

What a RIM means (an enveloped XML-DSig over the whole document, Reference URI "", enveloped-signature then C14N;
SignedInfo under C14N): the canonical form of the document without its ds:Signature element (what the digest
covers), the canonical SignedInfo, the decoded SignatureValue and the KeyInfo certificates that precede the root
(the root travels only as a hint: the verifier uses its pinned copy). A comment, the XML declaration, attribute
order or quoting, whitespace inside tags and around the base64 are not part of that meaning; a DTD, a second
signature or a signature with more than SignedInfo, SignatureValue and KeyInfo makes every byte count."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type information

REQUEST = 37  # the GET_MEASUREMENTS request: version, code, param1, param2, nonce (4..35), slot
RECORD = REQUEST + 8  # the response's version, code, param1, param2, NumberOfBlocks, u24 record length
NONCE = 32
SIGNATURE = 96
DSIG = "{http://www.w3.org/2000/09/xmldsig#}"


@dataclass(frozen=True)
class GpuLayout:
    """Offsets of one report: the measurement record `RECORD:record_end` with each block's start in `blocks`, the
    opaque data `opaque:signature` with each TLV's start in `tlvs`, the signature `signature:end`."""

    record_end: int
    blocks: tuple[int, ...]
    opaque: int
    tlvs: tuple[int, ...]
    signature: int
    end: int


def gpu_layout(report: bytes) -> GpuLayout | None:
    """The layout from the length fields; None when they do not fit the bytes."""
    if len(report) < RECORD:
        return None
    record_end = RECORD + int.from_bytes(report[42:45], "little")
    length_at = record_end + NONCE
    if length_at + 2 > len(report):
        return None
    opaque = length_at + 2
    signature = opaque + int(struct.unpack_from("<H", report, length_at)[0])
    end = signature + SIGNATURE
    if end > len(report):
        return None
    return GpuLayout(
        record_end, _walk(report, RECORD, record_end), opaque, _walk(report, opaque, signature), signature, end
    )


def _walk(report: bytes, start: int, end: int) -> tuple[int, ...]:
    """Starts of the items in `start:end` whose 4-byte header ends with their u16 size (a measurement block: Index,
    MeasurementSpecification, MeasurementSize; an opaque TLV: type, size), as far as they fit."""
    starts, pos = [], start
    while pos + 4 <= end:
        starts.append(pos)
        pos += 4 + int(struct.unpack_from("<H", report, pos + 2)[0])
    return tuple(starts)


def gpu_signed(report: bytes) -> bytes | None:
    """The signed bytes and the signature (module docstring); None when they cannot be located."""
    layout = gpu_layout(report)
    return report[: layout.end] if layout is not None else None


def gpu_focus(report: bytes) -> tuple[int, int]:
    layout = gpu_layout(report)
    return 0, layout.end if layout is not None else len(report)


def targeted_gpu(report: bytes) -> list[tuple[str, bytes]]:
    """Deterministic mutations of one real report: bit flips at every header field, at each measurement block's and
    opaque TLV's header, at a stride through the signed bytes and in r and s; truncations at every structure
    boundary; extensions after the signature (unsigned, and refused)."""
    layout = gpu_layout(report)
    assert layout is not None, "a genuine report has a layout"
    cases: list[tuple[str, bytes]] = []

    def flip(pos: int, mask: int = 0x01) -> None:
        if 0 <= pos < len(report):
            out = bytearray(report)
            out[pos] ^= mask
            cases.append((f"xor {pos:#x} {mask:#04x}", bytes(out)))

    for pos in (*range(0, 5), 35, 36, *range(37, 45)):  # request header, nonce ends, slot, response header
        flip(pos)
        flip(pos, 0x80)
    for start in (*layout.blocks[:3], layout.blocks[-1]):
        for pos in range(start, start + 7):  # Index, specification, size, DMTF value type and size
            flip(pos)
    for start in layout.tlvs:
        flip(start)  # type
        flip(start + 2, 0x80)  # size
        flip(start + 4)  # first value byte
    for pos in (layout.record_end, layout.record_end + NONCE, layout.record_end + NONCE + 1):  # responder nonce, L2
        flip(pos)
    for pos in range(0, layout.signature, 41):
        flip(pos)
    for pos in (layout.signature, layout.signature + 47, layout.signature + 48, layout.end - 1):  # r and s
        flip(pos)
        flip(pos, 0x80)
    for cut in (0, 1, REQUEST, RECORD, layout.record_end, layout.opaque, layout.signature, layout.end - 1):
        cases.append((f"truncate {cut:#x}", report[:cut]))
    cases.append(("extend 00", report + b"\x00"))
    cases.append(("extend ff*64", report + b"\xff" * 64))
    cases.append(("doubled", report + report))
    return [(label, ev) for label, ev in cases if ev]


# --- RIMs ---------------------------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def rim_content(data: bytes, genuine: bytes) -> object:
    """The meaning of a RIM (module docstring), compared with the `genuine` file it replaces; the raw bytes when it
    is not one enveloped signature of that shape."""
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return data
    info = root.getroottree().docinfo
    signatures = list(root.iter(DSIG + "Signature"))
    if info.doctype or info.internalDTD is not None or len(signatures) != 1 or signatures[0].getparent() is not root:
        return data
    signature = signatures[0]
    parts = [c for c in signature if isinstance(c.tag, str)]
    if [c.tag for c in parts] != [DSIG + "SignedInfo", DSIG + "SignatureValue", DSIG + "KeyInfo"]:
        return data
    signed_info = etree.tostring(parts[0], method="c14n", with_comments=False)
    try:
        value = base64.b64decode("".join((parts[1].text or "").split()), validate=True)
        certs = [
            base64.b64decode("".join((c.text or "").split()), validate=True)
            for c in parts[2].iter(DSIG + "X509Certificate")
        ]
    except ValueError:
        return data
    _remove(signature)
    return (
        etree.tostring(root, method="c14n", with_comments=False),
        signed_info,
        value,
        tuple(certs[: _issued(genuine)]),
    )


def _remove(element: etree._Element) -> None:
    """Remove `element` as the enveloped-signature transform does: the text after it stays."""
    parent, previous = element.getparent(), element.getprevious()
    tail = element.tail or ""
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    parent.remove(element)


def _issued(genuine: bytes) -> int:
    """How many KeyInfo certificates of the genuine RIM come before its (self-issued) root."""
    from cryptography import x509

    root = etree.fromstring(genuine, _parser())
    certs = [
        x509.load_der_x509_certificate(base64.b64decode("".join((c.text or "").split())))
        for c in root.iter(DSIG + "X509Certificate")
    ]
    return next((i for i, c in enumerate(certs) if c.issuer == c.subject), len(certs))
