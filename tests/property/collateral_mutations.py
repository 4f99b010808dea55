"""Deterministic structural mutations of the certificates and CRLs that travel with real evidence: in collateral
files (PEM bundles, DER certificates and CRLs, dcap-qvl's collateral.json) and in the PCK chain inside a TDX quote.
Each makes `cryptography` raise while it decodes a part lazily (tests/fakes/x509_mutations.py: an invalid version,
a duplicated extension, a name that is not UTF-8, an unknown signature algorithm)."""

from __future__ import annotations

import json
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
