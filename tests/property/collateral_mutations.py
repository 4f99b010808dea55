"""Deterministic structural mutations of the certificates and CRLs that travel with real evidence: in collateral
files (PEM bundles, DER certificates and CRLs, dcap-qvl's collateral.json) and in the PCK chain inside a TDX quote.
Each makes `cryptography` raise while it decodes a part lazily (tests/fakes/x509_mutations.py: an invalid version,
a duplicated extension, a name that is not UTF-8, an unknown signature algorithm). And hostile variants of the NVIDIA
RIMs (XML) that travel with GPU evidence (`targeted_rims`)."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Iterator

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes import x509_mutations as xm
from tests.property.fuzz_support import Vector, tdx_layout

CERT_MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "version 4": xm.version,
    "version 3 (v4)": lambda der: xm.version(der, 3),
    "duplicate extension": xm.duplicate_extension,
    "subject not UTF-8": xm.bad_name,
    "issuer not UTF-8": lambda der: xm.bad_name(der, "issuer"),
    "unknown signature algorithm": xm.unknown_signature_algorithm,
}
CRL_MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "CRL duplicate extension": xm.crl_duplicate_extension,
    "CRL duplicate entry extension": xm.crl_duplicate_entry_extension,
    "CRL issuer not UTF-8": xm.crl_bad_issuer,
    "CRL unknown signature algorithm": xm.unknown_signature_algorithm,
}
# Files that supply the same item: a mutated one is sent without its alternatives, so that it is the one read.
ALTERNATIVES = {
    "vcek.pem": {"vcek.der"},
    "vcek.der": {"vcek.pem"},
    "vlek.pem": {"vlek.der"},
    "vlek.der": {"vlek.pem"},
    "collateral.json": {
        "tcb_info.json",
        "tcb_info_issuer_chain.pem",
        "qe_identity.json",
        "qe_identity_issuer_chain.pem",
        "pck_crl.der",
        "pck_crl_issuer_chain.pem",
        "root_ca_crl.der",
    },
}
for _name in ALTERNATIVES["collateral.json"]:
    ALTERNATIVES[_name] = {"collateral.json"}


def _apply(change: Callable[[bytes], bytes], der: bytes) -> bytes | None:
    try:
        return change(der)
    except (AssertionError, StopIteration, IndexError, ValueError):
        return None  # this structure has nothing the mutation could change


def _pem_variants(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Each certificate of a PEM bundle mutated in turn, the others kept."""
    try:
        ders = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
    except Exception:
        return
    for index, der in enumerate(ders):
        for label, change in CERT_MUTATIONS.items():
            mutated = _apply(change, der)
            if mutated is not None:
                bundle = [*ders[:index], mutated, *ders[index + 1 :]]
                yield f"cert {index} {label}", b"".join(_pem(d) for d in bundle)


def _pem(der: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def _file_variants(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    if name.endswith(".pem") and b"CERTIFICATE-----" in data:
        yield from _pem_variants(data)
    elif name.endswith(".der"):
        table = CRL_MUTATIONS if "crl" in name else CERT_MUTATIONS
        for label, change in table.items():
            mutated = _apply(change, data)
            if mutated is not None:
                yield label, mutated
    elif name == "collateral.json":
        doc = json.loads(data)
        for member, value in doc.items():
            if member.endswith("issuer_chain"):
                variants = _pem_variants(value.encode())
                decode: Callable[[bytes], str] = bytes.decode
            elif member.endswith("crl"):
                der = bytes.fromhex(value)
                variants = (
                    (label, m) for label, change in CRL_MUTATIONS.items() if (m := _apply(change, der)) is not None
                )
                decode = bytes.hex
            else:
                continue
            for label, mutated in variants:
                yield f"{member}: {label}", json.dumps({**doc, member: decode(mutated)}).encode()


def targeted_collateral(vector: Vector) -> list[tuple[str, dict[str, bytes]]]:
    """(label, collateral) cases: one certificate or CRL of one file broken, the file's alternatives left out."""
    cases = []
    for name, data in vector.collateral.items():
        others = {n: c for n, c in vector.collateral.items() if n not in ALTERNATIVES.get(name, set())}
        for label, mutated in _file_variants(name, data):
            cases.append((f"{name} {label}", {**others, name: mutated}))
    return cases


def tdx_with_pck_chain(quote: bytes, chain: bytes) -> bytes | None:
    """The quote with its PCK chain replaced and every enclosing length adjusted (None: not laid out so)."""
    at = tdx_layout(quote)
    if at is None:
        return None
    delta = len(chain) - (at.pem_end - at.pem_start)
    out = bytearray(quote[: at.pem_start] + chain + quote[at.pem_end :])
    struct.pack_into("<I", out, at.pem_start - 4, len(chain))
    struct.pack_into("<I", out, at.cert + 2, struct.unpack_from("<I", quote, at.cert + 2)[0] + delta)
    struct.pack_into("<I", out, at.sig_length, at.sig_end - at.sig_length - 4 + delta)
    return bytes(out)


def targeted_quote_chain(vector: Vector) -> list[tuple[str, bytes]]:
    """(label, quote) cases: one certificate of the quote's own PCK chain broken."""
    at = tdx_layout(vector.evidence) if vector.tee == "tdx" else None
    if at is None:
        return []
    cases = []
    for label, chain in _pem_variants(vector.evidence[at.pem_start : at.pem_end]):
        rebuilt = tdx_with_pck_chain(vector.evidence, chain)
        if rebuilt is not None:
            cases.append((f"quote PCK chain {label}", rebuilt))
    return cases


# --- NVIDIA RIMs ----------------------------------------------------------------------------------------------------

RIM_FILES = ("driver_rim.xml", "vbios_rim.xml")  # the RIMs a GPU appraisal reads (others travel unread)
_CERT = re.compile(rb"(<ds:X509Certificate>)(.*?)(</ds:X509Certificate>)", re.DOTALL)
_SIGNATURE = re.compile(rb"<ds:Signature\b.*</ds:Signature>", re.DOTALL)
_DOCTYPE = b'<!DOCTYPE SoftwareIdentity [<!ENTITY a "aaaaaaaaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
_EXTERNAL = b'<!DOCTYPE SoftwareIdentity [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n'


def _b64(der: bytes) -> bytes:
    body = base64.b64encode(der)
    return b"\n".join(body[i : i + 64] for i in range(0, len(body), 64)) + b"\n"


def _root_tag_end(xml: bytes) -> int:
    """The offset just after the root element's start tag (NVIDIA's RIMs have no XML declaration)."""
    return xml.index(b">", xml.index(b"<SoftwareIdentity")) + 1


def _keyinfo_variants(xml: bytes) -> Iterator[tuple[str, bytes]]:
    """Each KeyInfo certificate broken in turn (KeyInfo is not signed: the signature still verifies), and KeyInfo
    lists that are empty, too long, root only or reversed."""
    matches = list(_CERT.finditer(xml))
    for index, match in enumerate(matches):
        der = base64.b64decode(b"".join(match.group(2).split()))
        for label, change in CERT_MUTATIONS.items():
            mutated = _apply(change, der)
            if mutated is not None:
                yield f"KeyInfo cert {index} {label}", xml[: match.start(2)] + _b64(mutated) + xml[match.end(2) :]
    first, last = matches[0].start(), matches[-1].end()
    certs = [m.group(0) for m in matches]
    for label, listed in (
        ("no KeyInfo certificate", []),
        ("KeyInfo 9 certificates", certs * 3),
        ("KeyInfo root only", certs[-1:]),
        ("KeyInfo reversed", certs[::-1]),
    ):
        yield label, xml[:first] + b"".join(listed) + xml[last:]


def _rim_variants(xml: bytes) -> Iterator[tuple[str, bytes]]:
    """Hostile XML around a genuine RIM: DTDs and entities, comments, processing instructions and CDATA in the
    signed content, a second or moved signature, wrapped or duplicated content, other prefixes and encodings,
    whitespace and quoting changes the canonical form drops, depth, size and truncation."""
    at = _root_tag_end(xml)
    signature = _SIGNATURE.search(xml)
    assert signature is not None
    sig = signature.group(0)
    resource = re.search(rb"<ns0:Resource [^>]*/>", xml)
    assert resource is not None
    value = re.search(rb"<ds:SignatureValue>([^<]{20})", xml)
    assert value is not None
    yield "DTD with nested entities", _DOCTYPE + xml[:at] + b"&b;" + xml[at:]
    yield "DTD with an external entity", _EXTERNAL + xml[:at] + b"&x;" + xml[at:]
    yield "comment in the signed content", xml[:at] + b"<!-- not signed -->" + xml[at:]
    yield "processing instruction", xml[:at] + b"<?fuzz here?>" + xml[at:]
    yield "CDATA text", xml[:at] + b"<![CDATA[x]]>" + xml[at:]
    yield "second signature", xml[: signature.end()] + sig + xml[signature.end() :]
    yield "signature first", xml[:at] + sig + xml[at : signature.start()] + xml[signature.end() :]
    wrapped = b"<ds:Object>" + resource.group(0).replace(b'active="False"', b'active="True"') + b"</ds:Object>"
    yield "ds:Object in the signature", xml.replace(b"</ds:KeyInfo>", b"</ds:KeyInfo>" + wrapped, 1)
    yield "resource duplicated", xml[: resource.end()] + resource.group(0) + xml[resource.end() :]
    yield "prefix ns0 renamed", xml.replace(b"ns0:", b"nsq:").replace(b"xmlns:ns0=", b"xmlns:nsq=")
    yield "xml:base on the root", xml[: at - 1] + b' xml:base="http://example.invalid/"' + xml[at - 1 :]
    yield "byte order mark", b"\xef\xbb\xbf" + xml
    yield "XML declaration", b'<?xml version="1.0" encoding="UTF-8"?>\n' + xml
    yield "UTF-16", xml.decode().encode("utf-16")
    yield "newline in SignatureValue", xml.replace(value.group(1), value.group(1)[:10] + b"\n" + value.group(1)[10:])
    yield "tab between attributes", xml.replace(b'" name="', b'"\t\n name="', 1)
    yield "single-quoted attribute", xml.replace(b'active="True"', b"active='True'", 1)
    yield "character reference", xml.replace(b'name="Measurement_', b'name="&#x4D;easurement_', 1)
    yield "nested 3000 deep", xml[:at] + b"<a>" * 3000 + b"</a>" * 3000 + xml[at:]
    yield "attribute of 512 KiB", xml[: at - 1] + b' big="' + b"A" * (512 * 1024) + b'"' + xml[at - 1 :]
    yield "over 1 MiB", xml + b" " * (1024 * 1024)
    yield "element after the root", xml + b"<x/>"
    yield "truncated in half", xml[: len(xml) // 2]
    yield "truncated by one", xml[:-1]
    yield from _keyinfo_variants(xml)


def targeted_rims(vector: Vector) -> list[tuple[str, dict[str, bytes]]]:
    """(label, collateral) cases: one RIM of a GPU vector replaced by each `_rim_variants` case."""
    cases = []
    for name in RIM_FILES:
        if name in vector.collateral:
            for label, xml in _rim_variants(vector.collateral[name]):
                cases.append((f"{name} {label}", {**vector.collateral, name: xml}))
    return cases
