"""Intel TDX collateral: signed TCB info / QE identity JSON, issuer chains and CRLs, and their verification.

Intel Trusted Services API (PCS v4): GET /tdx/certification/v4/tcb and /tdx/certification/v4/qe/identity return
{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}; the ECDSA P-256 / SHA-256 signature by the
"Intel SGX TCB Signing" certificate covers the exact bytes of the member value as served, so `SignedJson.raw` is
cut out of the original text and never re-serialised. The issuer chains (TCB signing cert, root) are validated to
the PINNED Intel SGX Root CA at `at` (the TCB signing cert is re-issued and never pinned). CRLs ("SGX PCK
Certificate and CRL Profile"): the root CA CRL is signed by the root, the PCK CRL by its PCK Platform/Processor CA.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.clock import to_rfc3339 as _rfc3339
from verifier.collateral.base import CollateralUnavailableError
from verifier.errors import EvidenceError
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.chain import VERIFIED_LINKS, check_ca, check_issued_by, check_validity, validate_chain
from verifier.trust.crl import load_crl

from .tcbinfo import QeIdentity, TcbInfo, parse_qe_identity, parse_tcb_info

VENDOR = "intel-sgx"
MALFORMED = "TDX_COLLATERAL_MALFORMED"
MAX_DOC_BYTES = 1 << 20
MAX_CHAIN = 5
FILES = ("tcb_info.json", "tcb_info_issuer_chain.pem", "qe_identity.json", "qe_identity_issuer_chain.pem",
         "pck_crl.der", "pck_crl_issuer_chain.pem", "root_ca_crl.der")
Chain = tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class SignedJson:
    raw: bytes  # exact bytes of the signed member value
    signature: bytes  # ECDSA r||s, 64 bytes
    data: dict[str, Any]


@dataclass(frozen=True)
class TdxCollateral:
    tcb_info: SignedJson | None
    tcb_info_issuer_chain: Chain
    qe_identity: SignedJson | None
    qe_identity_issuer_chain: Chain
    pck_crl: bytes | None
    pck_crl_issuer_chain: Chain
    root_ca_crl: bytes | None

    def missing(self) -> list[str]:
        items = dict(zip(FILES, (self.tcb_info, self.tcb_info_issuer_chain, self.qe_identity,
                                 self.qe_identity_issuer_chain, self.pck_crl, self.pck_crl_issuer_chain,
                                 self.root_ca_crl), strict=True))
        return [name for name, value in items.items() if not value]

    @property
    def complete(self) -> bool:
        return not self.missing()


@dataclass(frozen=True)
class VerifiedCollateral:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    pck_crl: x509.CertificateRevocationList
    root_ca_crl: x509.CertificateRevocationList
    next_update: datetime.datetime  # earliest nextUpdate of the four items


def _malformed(message: str, actual: str = "") -> EvidenceError:
    return EvidenceError(MALFORMED, message, actual=actual[:200])


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=lambda name: float(f"{name}x"))


def _member_dict(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _malformed(f"{what} is not JSON", str(exc)) from None
    if isinstance(data, dict):
        return data
    raise _malformed(f"{what} is not a JSON object")


def _signature(value: Any, what: str) -> bytes:
    try:
        sig = bytes.fromhex(value) if isinstance(value, str) and len(value) == 128 else b""
    except ValueError:
        sig = b""
    if len(sig) == 64:
        return sig
    raise _malformed(f"{what} signature must be 64 bytes r||s as hex", repr(value))


_WS = " \t\r\n"


def _skip(text: str, pos: int) -> int:
    return len(text) - len(text[pos:].lstrip(_WS))


def parse_signed_json(doc: bytes, member: str) -> SignedJson:
    """Split `{"<member>": {...}, "signature": "<hex>"}` keeping the member value's exact bytes."""
    if len(doc) > MAX_DOC_BYTES:
        raise _malformed(f"{member} document too large", str(len(doc)))
    try:
        text = doc.decode("utf-8")
        spans: dict[str, tuple[int, int]] = {}
        pos = _skip(text, 0)
        if text[pos : pos + 1] != "{":
            raise ValueError("not a JSON object")
        sep = ","
        while sep == ",":
            key, pos = _DECODER.raw_decode(text, _skip(text, pos + 1))
            if not isinstance(key, str) or key in spans:
                raise ValueError(f"bad or duplicate key {key!r}")
            pos = _skip(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError("':' expected")
            start = _skip(text, pos + 1)
            _, end = _DECODER.raw_decode(text, start)
            spans[key], pos = (start, end), _skip(text, end)
            sep = text[pos : pos + 1]
        if sep != "}" or text[pos + 1 :].strip(_WS):
            raise ValueError("'}' expected at the end")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"{member} document is not a signed JSON object", str(exc)) from None
    if member not in spans or "signature" not in spans:
        raise _malformed(f"{member} document needs '{member}' and 'signature'", ",".join(spans))
    start, end = spans[member]
    raw = text[start:end].encode("utf-8")
    sig_start, sig_end = spans["signature"]
    return SignedJson(raw, _signature(json.loads(text[sig_start:sig_end]), member), _member_dict(raw, member))


def _chain(pem: bytes | str | None, what: str) -> Chain:
    if not pem:
        return ()
    try:
        certs = x509.load_pem_x509_certificates(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise _malformed(f"{what} is not a PEM certificate chain", str(exc)) from None
    if len(certs) > MAX_CHAIN:
        raise _malformed(f"{what} is too long", str(len(certs)))
    return tuple(certs)


def _crl_bytes(value: bytes | str | None, what: str) -> bytes | None:
    if not value:
        return None
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _malformed(f"{what} is not hex", value[:40]) from None
    return value


def _from_dcap_qvl(doc: bytes) -> dict[str, Any]:
    """dcap-qvl QuoteCollateralV3 JSON: member JSON as strings, signatures and CRLs as hex, chains as PEM."""
    if len(doc) > 4 * MAX_DOC_BYTES:
        raise _malformed("collateral.json too large", str(len(doc)))
    data = _member_dict(doc, "collateral.json")
    out: dict[str, Any] = {}
    for item, member in (("tcb_info", "tcbInfo"), ("qe_identity", "enclaveIdentity")):
        text = data.get(item)
        if text is None:
            continue
        if not isinstance(text, str):
            raise _malformed(f"collateral.json {item} must be a JSON string")
        raw, sig = text.encode("utf-8"), _signature(data.get(f"{item}_signature"), item)
        out[f"{item}.json"] = SignedJson(raw, sig, _member_dict(raw, member))
    for name in FILES:
        key = name.split(".")[0]
        value = data.get(key)
        if name.endswith(".json") or value is None:
            continue
        if not isinstance(value, str):
            raise _malformed(f"collateral.json {key} must be a string")
        out[name] = _chain(value, key) if name.endswith(".pem") else _crl_bytes(value, key)
    return out


def collateral_from_files(files: Mapping[str, bytes]) -> TdxCollateral:
    """Collateral from the vector file names and/or dcap-qvl's collateral.json (files win, item by item)."""
    items = _from_dcap_qvl(files["collateral.json"]) if "collateral.json" in files else {}
    for name, member in (("tcb_info.json", "tcbInfo"), ("qe_identity.json", "enclaveIdentity")):
        if name in files:
            items[name] = parse_signed_json(files[name], member)
    for name in FILES[1::2]:
        if name in files:
            items[name] = _chain(files[name], name)
    for name in ("pck_crl.der", "root_ca_crl.der"):
        if name in files:
            items[name] = _crl_bytes(files[name], name)
    return TdxCollateral(items.get("tcb_info.json"), items.get("tcb_info_issuer_chain.pem", ()),
                         items.get("qe_identity.json"), items.get("qe_identity_issuer_chain.pem", ()),
                         items.get("pck_crl.der"), items.get("pck_crl_issuer_chain.pem", ()),
                         items.get("root_ca_crl.der"))


def _window(what: str, start: datetime.datetime, end: datetime.datetime | None, at: datetime.datetime) -> None:
    if end is None or not start <= at < end:
        raise EvidenceError("TDX_COLLATERAL_EXPIRED", f"{what} is not valid at the appraisal time",
                            expected=f"{_rfc3339(start)} <= at < {_rfc3339(end) if end else 'nextUpdate'}",
                            actual=_rfc3339(at))


def _root(chain: Chain, anchors: TrustAnchors, what: str) -> tuple[list[x509.Certificate], x509.Certificate]:
    """Split an issuer chain into (certificates below the root, pinned root)."""
    certs = list(chain)
    if certs and anchors.is_pinned(VENDOR, certs[-1]):
        return certs[:-1], certs[-1]
    if certs and certs[-1].issuer == certs[-1].subject:
        certs = certs[:-1]  # an unpinned self-signed root: replaced by a pinned anchor of the same name, if any
    issuer = certs[-1].issuer if certs else None
    found = [c for c in anchors.roots(VENDOR) if c.subject == issuer]
    if not certs or not found:
        raise EvidenceError("CHAIN_ROOT_UNTRUSTED", f"the {what} issuer chain does not end at a pinned Intel SGX "
                            "Root CA", expected="pinned intel-sgx fingerprint",
                            actual=fingerprint(chain[-1]) if chain else "empty chain")
    return certs, found[0]


def _check_signed(item: SignedJson, chain: Chain, anchors: TrustAnchors, at: datetime.datetime, what: str) -> None:
    certs, root = _root(chain, anchors, what)
    leaf = validate_chain(certs[0], certs[1:], root, at)[0] if certs else root
    done = (b"signed-json", hashlib.sha256(item.raw).digest(), item.signature, leaf.fingerprint(hashes.SHA256()))
    if done in VERIFIED_LINKS:  # this exact JSON was verified with this key before (collateral repeats)
        return
    key = leaf.public_key()
    der = encode_dss_signature(int.from_bytes(item.signature[:32], "big"), int.from_bytes(item.signature[32:], "big"))
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise InvalidSignature
        key.verify(der, item.raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        raise EvidenceError("TDX_COLLATERAL_SIGNATURE_INVALID", f"{what} signature does not verify",
                            expected=leaf.subject.rfc4514_string(), actual=item.signature.hex()[:16]) from None
    VERIFIED_LINKS.add(done)


def _check_crl(data: bytes, issuer: x509.Certificate, at: datetime.datetime,
               what: str) -> x509.CertificateRevocationList:
    crl = load_crl(data)
    _window(what, crl.last_update_utc, crl.next_update_utc, at)
    if crl.issuer != issuer.subject:
        raise EvidenceError("CRL_ISSUER_MISMATCH", f"{what} issuer is not its signing CA",
                            expected=issuer.subject.rfc4514_string(), actual=crl.issuer.rfc4514_string())
    done = (b"crl", hashlib.sha256(data).digest(), issuer.fingerprint(hashes.SHA256()))
    if done in VERIFIED_LINKS:
        return crl
    key = issuer.public_key()
    try:
        valid = isinstance(key, ec.EllipticCurvePublicKey) and crl.is_signature_valid(key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if valid:
        VERIFIED_LINKS.add(done)
    else:
        raise EvidenceError("CRL_SIGNATURE_INVALID", f"{what} signature does not verify with the issuer key",
                            expected=issuer.subject.rfc4514_string(), actual=crl.signature_algorithm_oid.dotted_string)
    return crl


def verify_collateral(col: TdxCollateral, anchors: TrustAnchors, at: datetime.datetime, *,
                      pck_issuer: x509.Name) -> VerifiedCollateral:
    """Chains, signatures, id/version, validity windows and CRLs of `col` at `at` (see the module docstring)."""
    missing = col.missing()
    if missing:
        raise CollateralUnavailableError("COLLATERAL_MISSING", f"TDX collateral incomplete: {', '.join(missing)}")
    assert col.tcb_info and col.qe_identity and col.pck_crl and col.root_ca_crl
    at = at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)
    _check_signed(col.tcb_info, col.tcb_info_issuer_chain, anchors, at, "TCB info")
    _check_signed(col.qe_identity, col.qe_identity_issuer_chain, anchors, at, "QE identity")
    tcb_info, qe_identity = parse_tcb_info(col.tcb_info.data), parse_qe_identity(col.qe_identity.data)
    for what, got, want in (("TCB info", (tcb_info.id, tcb_info.version), ("TDX", 3)),
                            ("QE identity", (qe_identity.id, qe_identity.version), ("TD_QE", 2))):
        if got != want:
            raise EvidenceError("TDX_COLLATERAL_UNSUPPORTED", f"{what} must be id {want[0]} version {want[1]}",
                                expected=f"{want[0]} v{want[1]}", actual=f"{got[0]} v{got[1]}")
    _window("TCB info", tcb_info.issue_date, tcb_info.next_update, at)
    _window("QE identity", qe_identity.issue_date, qe_identity.next_update, at)
    ca_chain, root = _root(col.pck_crl_issuer_chain, anchors, "PCK CRL")
    if len(ca_chain) != 1:
        raise EvidenceError("TDX_PCK_CRL_CHAIN_INVALID", "the PCK CRL issuer chain must be PCK CA and root",
                            expected="2 certificates", actual=str(len(ca_chain) + 1))
    ca = ca_chain[0]
    for cert, issuer in ((root, root), (ca, root)):
        check_issued_by(cert, issuer)
        check_validity(cert, at)
    check_ca(ca, ca_below=0)
    root_ca_crl = _check_crl(col.root_ca_crl, root, at, "root CA CRL")
    pck_crl = _check_crl(col.pck_crl, ca, at, "PCK CRL")
    if pck_crl.issuer != pck_issuer:
        raise EvidenceError("CRL_ISSUER_MISMATCH", "the PCK CRL is not the CRL of the PCK certificate's issuer",
                            expected=pck_issuer.rfc4514_string(), actual=pck_crl.issuer.rfc4514_string())
    ends = [tcb_info.next_update, qe_identity.next_update, pck_crl.next_update_utc, root_ca_crl.next_update_utc]
    return VerifiedCollateral(tcb_info, qe_identity, pck_crl, root_ca_crl, min(e for e in ends if e is not None))
