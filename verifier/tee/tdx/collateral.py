"""Intel TDX collateral: signed TCB info / QE identity JSON, issuer chains and CRLs, and their verification.

Intel Trusted Services API (PCS v4): GET /tdx/certification/v4/tcb and /tdx/certification/v4/qe/identity return
{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}; the ECDSA P-256 / SHA-256 signature by the
"Intel SGX TCB Signing" certificate covers the exact bytes of the member value as served, so `SignedJson.raw` is
cut out of the original text and never re-serialised. The issuer chain must be exactly [Intel SGX TCB Signing,
PINNED Intel SGX Root CA], validated at `at` (the TCB signing cert is re-issued and never pinned; no other
certificate, a PCK or PCK CA least of all, may sign collateral: `tcb_signer`), and the root CA CRL must not revoke
it. CRLs ("SGX PCK Certificate and CRL Profile"): the root CA CRL is signed by the root, the PCK CRL by its PCK
Platform/Processor CA. Each item is verified on its own; where the request and the verifier's source both hold an
item, both copies are verified and the newer decides (freshness.py).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID, NameOID

from verifier.clock import to_rfc3339 as _rfc3339
from verifier.collateral.base import CollateralUnavailableError
from verifier.errors import EvidenceError, VerifierError
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.certs import load_crl, load_pem_certificates
from verifier.trust.chain import VerifiedLinks, check_ca, check_issued_by, check_validity, validate_chain
from verifier.trust.crl import INTEL_SGX, check_crl, is_revoked
from verifier.trust.crl import check_collateral_window as _window

from .freshness import (
    FROM_REQUEST,
    FROM_VENDOR,
    ITEMS,
    PCK_CRL,
    QE_IDENTITY,
    ROOT_CA_CRL,
    TCB_INFO,
    Candidate,
    ItemFacts,
    Superseded,
    newer,
)
from .pck import SGX_EXTENSION_OID
from .tcbinfo import QeIdentity, TcbInfo, parse_qe_identity, parse_tcb_info

log = logging.getLogger(__name__)
VENDOR = "intel-sgx"
MALFORMED = "TDX_COLLATERAL_MALFORMED"
SIGNER_INVALID = "TDX_COLLATERAL_SIGNER_INVALID"
TCB_SIGNING_CN = "Intel SGX TCB Signing"
SIGNER_RULE = (
    f"[{TCB_SIGNING_CN}, pinned Intel SGX Root CA]: issued by the root, CN={TCB_SIGNING_CN}, not a CA, no SGX extension"
)
BASIC_CONSTRAINTS = ExtensionOID.BASIC_CONSTRAINTS.dotted_string
MAX_DOC_BYTES = 1 << 20
MAX_CHAIN = 5
FILES = (
    "tcb_info.json",
    "tcb_info_issuer_chain.pem",
    "qe_identity.json",
    "qe_identity_issuer_chain.pem",
    "pck_crl.der",
    "pck_crl_issuer_chain.pem",
    "root_ca_crl.der",
)
ITEM_FILES = {TCB_INFO: FILES[0:2], QE_IDENTITY: FILES[2:4], PCK_CRL: FILES[4:6], ROOT_CA_CRL: FILES[6:7]}
Chain = tuple[x509.Certificate, ...]
C = TypeVar("C")


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
        """The names (`FILES`) of the documents and issuer chains that are absent or empty, in `FILES` order. Never
        raises."""
        items = dict(
            zip(
                FILES,
                (
                    self.tcb_info,
                    self.tcb_info_issuer_chain,
                    self.qe_identity,
                    self.qe_identity_issuer_chain,
                    self.pck_crl,
                    self.pck_crl_issuer_chain,
                    self.root_ca_crl,
                ),
                strict=True,
            )
        )
        return [name for name, value in items.items() if not value]

    @property
    def complete(self) -> bool:
        """True when nothing is `missing()`: TCB info, QE identity, both CRLs and their issuer chains. Never raises."""
        return not self.missing()

    def has(self, item: str) -> bool:
        """The document of `item` (freshness.ITEMS) and its issuer chain are present."""
        missing = self.missing()
        return not any(name in missing for name in ITEM_FILES[item])


@dataclass(frozen=True)
class VerifiedCollateral:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    pck_crl: x509.CertificateRevocationList
    root_ca_crl: x509.CertificateRevocationList
    next_update: datetime.datetime  # earliest nextUpdate of the four items
    items: tuple[ItemFacts, ...] = ()  # the copies used: TCB info, QE identity, PCK CRL, root CA CRL
    superseded: tuple[Superseded, ...] = ()  # request copies older than the verifier's


class _Memo:
    """A bounded, thread-safe LRU of pure parse results (certificate chains, CRLs, TCB info / QE identity models)
    keyed by the SHA-256 of the bytes they were parsed from: collateral repeats across appraisals, and parsing is a
    pure function of those bytes. Failures are never kept; checks that depend on `at` always run."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], C]) -> C:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return value


_PARSED = _Memo()


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


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
    """A PEM issuer chain, every certificate fully decoded (EvidenceError CERT_MALFORMED otherwise)."""
    if not pem:
        return ()
    data = _utf8(pem, what) if isinstance(pem, str) else pem
    return _PARSED.get((b"chain", _digest(data)), lambda: load_pem_certificates(data, what, max_count=MAX_CHAIN))


def _utf8(text: str, what: str) -> bytes:
    """UTF-8 of a JSON string value; a lone surrogate (a `\\ud800` escape) is malformed collateral."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _malformed(f"{what} is not valid Unicode") from None


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
        raw, sig = _utf8(text, item), _signature(data.get(f"{item}_signature"), item)
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
    return TdxCollateral(
        items.get("tcb_info.json"),
        items.get("tcb_info_issuer_chain.pem", ()),
        items.get("qe_identity.json"),
        items.get("qe_identity_issuer_chain.pem", ()),
        items.get("pck_crl.der"),
        items.get("pck_crl_issuer_chain.pem", ()),
        items.get("root_ca_crl.der"),
    )


def _root(chain: Chain, anchors: TrustAnchors, what: str) -> tuple[list[x509.Certificate], x509.Certificate]:
    """Split an issuer chain into (certificates below the root, pinned root): `TrustAnchors.root_for`."""
    certs = list(chain)
    top = certs[-1] if certs else None
    if top is not None and top.issuer == top.subject:
        certs = certs[:-1]  # a self-signed root: used when pinned, else replaced by a pinned anchor of its name
    found = anchors.root_for(VENDOR, top, certs[-1].issuer if certs else None)
    if found and found[0] is top:
        return list(chain)[:-1], found[0]
    if not certs or not found:
        raise EvidenceError(
            "CHAIN_ROOT_UNTRUSTED",
            f"the {what} issuer chain does not end at a pinned Intel SGX Root CA",
            expected="pinned intel-sgx fingerprint",
            actual=fingerprint(chain[-1]) if chain else "empty chain",
        )
    return certs, found[0]


def _cn(cert: x509.Certificate) -> str:
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return "+".join(names) if names else cert.subject.rfc4514_string()


def tcb_signer(
    chain: Chain, anchors: TrustAnchors, at: datetime.datetime, what: str, links: VerifiedLinks | None = None
) -> x509.Certificate:
    """The Intel SGX TCB Signing certificate of a TCB info / QE identity issuer chain, validated at `at`.

    Intel PCS v4 (TCB-Info-Issuer-Chain, SGX-Enclave-Identity-Issuer-Chain) and "SGX PCK Certificate and CRL
    Profile": the chain is exactly [Intel SGX TCB Signing, Intel SGX Root CA]. The signer must be issued directly
    by the pinned root, have the subject CN "Intel SGX TCB Signing", not be a CA (basicConstraints absent or cA
    false) and carry no SGX extension (1.2.840.113741.1.13.1, which PCK certificates carry): a PCK key, a PCK CA
    or anything below one never signs collateral. Raises EvidenceError TDX_COLLATERAL_SIGNER_INVALID (expected the
    rule, actual what was found), CHAIN_ROOT_UNTRUSTED, or the codes of `validate_chain` (CERT_EXPIRED...)."""
    certs, root = _root(chain, anchors, what)

    def invalid(message: str, actual: str) -> EvidenceError:
        return EvidenceError(SIGNER_INVALID, f"the {what} signer {message}", expected=SIGNER_RULE, actual=actual)

    if len(certs) != 1:
        raise invalid(
            "chain is not [Intel SGX TCB Signing, pinned root]",
            " <- ".join(_cn(c) for c in (*certs, root)) if certs else f"{_cn(root)} alone",
        )
    signer = certs[0]
    if signer.issuer != root.subject:
        raise invalid("is not issued directly by the pinned root", f"issuer {signer.issuer.rfc4514_string()}")
    if [str(a.value) for a in signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] != [TCB_SIGNING_CN]:
        raise invalid("is not the Intel SGX TCB Signing certificate", f"CN={_cn(signer)}")
    extensions = {ext.oid.dotted_string: ext.value for ext in signer.extensions}
    constraints = extensions.get(BASIC_CONSTRAINTS)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise invalid("is a CA certificate", f"CN={_cn(signer)} basicConstraints cA=true")
    if SGX_EXTENSION_OID in extensions:
        raise invalid("carries the SGX (PCK) extension", f"CN={_cn(signer)} with {SGX_EXTENSION_OID}")
    validate_chain(signer, [], root, at, links)
    return signer


def _check_signature(item: SignedJson, signer: x509.Certificate, what: str, links: VerifiedLinks | None) -> None:
    done = (b"signed-json", hashlib.sha256(item.raw).digest(), item.signature, signer.fingerprint(hashes.SHA256()))
    if links is not None and done in links:  # this exact JSON was verified with this key before (collateral repeats)
        return
    key = signer.public_key()
    der = encode_dss_signature(int.from_bytes(item.signature[:32], "big"), int.from_bytes(item.signature[32:], "big"))
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise InvalidSignature
        key.verify(der, item.raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        raise EvidenceError(
            "TDX_COLLATERAL_SIGNATURE_INVALID",
            f"{what} signature does not verify",
            expected=signer.subject.rfc4514_string(),
            actual=item.signature.hex()[:16],
        ) from None
    if links is not None:
        links.add(done)


def _check_crl(
    data: bytes, issuer: x509.Certificate, at: datetime.datetime, what: str, links: VerifiedLinks | None
) -> x509.CertificateRevocationList:
    """Parse (memoised) and check with the shared checker (`verifier.trust.crl`, profile INTEL_SGX: window first,
    then issuer and ECDSA signature)."""
    crl = _PARSED.get((b"crl", _digest(data)), lambda: load_crl(data, what))
    check_crl(crl, issuer, at, INTEL_SGX, what=what, links=links)
    return crl


def _crl_facts(item: str, crl: x509.CertificateRevocationList, source: str) -> ItemFacts:
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    assert crl.next_update_utc is not None  # _check_crl's window requires it
    return ItemFacts(item, number, crl.last_update_utc, crl.next_update_utc, source)


def _supported(what: str, got: tuple[str, int], want: tuple[str, int]) -> None:
    if got != want:
        raise EvidenceError(
            "TDX_COLLATERAL_UNSUPPORTED",
            f"{what} must be id {want[0]} version {want[1]}",
            expected=f"{want[0]} v{want[1]}",
            actual=f"{got[0]} v{got[1]}",
        )


def check_tcb_info(
    col: TdxCollateral, anchors: TrustAnchors, at: datetime.datetime, source: str, links: VerifiedLinks | None = None
) -> Candidate[tuple[TcbInfo, x509.Certificate]]:
    """The TCB info of `col` (TDX, v3): signer chain (`tcb_signer`), signature over the served bytes, window.
    Raises EvidenceError (see the module docstring); `col` must hold the item."""
    assert col.tcb_info is not None
    signer = tcb_signer(col.tcb_info_issuer_chain, anchors, at, "TCB info", links)
    _check_signature(col.tcb_info, signer, "TCB info", links)
    data = col.tcb_info.data
    info = _PARSED.get((b"tcb_info", _digest(col.tcb_info.raw)), lambda: parse_tcb_info(data))
    _supported("TCB info", (info.id, info.version), ("TDX", 3))
    _window("TCB info", info.issue_date, info.next_update, at)
    facts = ItemFacts(TCB_INFO, info.tcb_evaluation_data_number, info.issue_date, info.next_update, source)
    return Candidate((info, signer), facts)


def check_qe_identity(
    col: TdxCollateral, anchors: TrustAnchors, at: datetime.datetime, source: str, links: VerifiedLinks | None = None
) -> Candidate[tuple[QeIdentity, x509.Certificate]]:
    """The QE identity of `col` (TD_QE, v2), checked like `check_tcb_info`."""
    assert col.qe_identity is not None
    signer = tcb_signer(col.qe_identity_issuer_chain, anchors, at, "QE identity", links)
    _check_signature(col.qe_identity, signer, "QE identity", links)
    data = col.qe_identity.data
    identity = _PARSED.get((b"qe_identity", _digest(col.qe_identity.raw)), lambda: parse_qe_identity(data))
    _supported("QE identity", (identity.id, identity.version), ("TD_QE", 2))
    _window("QE identity", identity.issue_date, identity.next_update, at)
    facts = ItemFacts(
        QE_IDENTITY, identity.tcb_evaluation_data_number, identity.issue_date, identity.next_update, source
    )
    return Candidate((identity, signer), facts)


def check_pck_crl(
    col: TdxCollateral,
    anchors: TrustAnchors,
    at: datetime.datetime,
    source: str,
    *,
    pck_issuer: x509.Name,
    links: VerifiedLinks | None = None,
) -> Candidate[tuple[x509.CertificateRevocationList, x509.Certificate]]:
    """The PCK CRL of `col`: issuer chain [PCK CA, pinned root] at `at`, signature, window, and it is the CRL of
    `pck_issuer`. The value is (CRL, pinned root). Raises EvidenceError TDX_PCK_CRL_CHAIN_INVALID,
    CRL_ISSUER_MISMATCH, CRL_SIGNATURE_INVALID, TDX_COLLATERAL_EXPIRED, chain codes."""
    assert col.pck_crl is not None
    ca_chain, root = _root(col.pck_crl_issuer_chain, anchors, "PCK CRL")
    if len(ca_chain) != 1:
        raise EvidenceError(
            "TDX_PCK_CRL_CHAIN_INVALID",
            "the PCK CRL issuer chain must be PCK CA and root",
            expected="2 certificates",
            actual=str(len(ca_chain) + 1),
        )
    ca = ca_chain[0]
    for cert, issuer in ((root, root), (ca, root)):
        check_issued_by(cert, issuer, links)
        check_validity(cert, at)
    check_ca(ca, ca_below=0)
    crl = _check_crl(col.pck_crl, ca, at, "PCK CRL", links)
    if crl.issuer != pck_issuer:
        raise EvidenceError(
            "CRL_ISSUER_MISMATCH",
            "the PCK CRL is not the CRL of the PCK certificate's issuer",
            expected=pck_issuer.rfc4514_string(),
            actual=crl.issuer.rfc4514_string(),
        )
    return Candidate((crl, root), _crl_facts(PCK_CRL, crl, source))


def check_root_ca_crl(
    col: TdxCollateral,
    root: x509.Certificate,
    at: datetime.datetime,
    source: str,
    links: VerifiedLinks | None = None,
) -> Candidate[x509.CertificateRevocationList]:
    """The root CA CRL of `col`, signed by the pinned `root`, inside its window at `at`."""
    assert col.root_ca_crl is not None
    crl = _check_crl(col.root_ca_crl, root, at, "root CA CRL", links)
    return Candidate(crl, _crl_facts(ROOT_CA_CRL, crl, source))


@dataclass(frozen=True)
class Fetched:
    """What the verifier's collateral source delivered, item by item (see pcs.fetch_collateral)."""

    collateral: TdxCollateral
    sources: Mapping[str, str] = field(default_factory=dict)  # item -> "cache" | "vendor"
    errors: Mapping[str, VerifierError] = field(default_factory=dict)  # item -> why it was not delivered


NOTHING_FETCHED = Fetched(TdxCollateral(None, (), None, (), None, (), None))


def _same(item: str, a: TdxCollateral, b: TdxCollateral) -> bool:
    """Both hold byte-identical copies of `item` (then one verification serves both)."""
    if item == TCB_INFO:
        return bool(
            a.tcb_info
            and b.tcb_info
            and a.tcb_info.raw == b.tcb_info.raw
            and a.tcb_info.signature == b.tcb_info.signature
            and a.tcb_info_issuer_chain == b.tcb_info_issuer_chain
        )
    if item == QE_IDENTITY:
        return bool(
            a.qe_identity
            and b.qe_identity
            and a.qe_identity.raw == b.qe_identity.raw
            and a.qe_identity.signature == b.qe_identity.signature
            and a.qe_identity_issuer_chain == b.qe_identity_issuer_chain
        )
    if item == PCK_CRL:
        return a.pck_crl == b.pck_crl and a.pck_crl_issuer_chain == b.pck_crl_issuer_chain
    return a.root_ca_crl == b.root_ca_crl


def _decide(
    item: str,
    request: TdxCollateral,
    fetched: Fetched,
    at: datetime.datetime,
    check: Callable[[TdxCollateral, str], Candidate[C]],
) -> tuple[Candidate[C], Superseded | None]:
    """Both copies verified, the newer decides (freshness.newer). The request's copy must verify whenever it is
    present; the source's copy is ignored when it does not verify and the request has one (as when unavailable)."""
    theirs, ours = request.has(item), fetched.collateral.has(item)
    source = fetched.sources.get(item, FROM_VENDOR)
    if theirs and ours and _same(item, request, fetched.collateral):
        return check(fetched.collateral, source), None
    candidate = check(request, FROM_REQUEST) if theirs else None
    verifier: Candidate[C] | None = None
    if ours:
        try:
            verifier = check(fetched.collateral, source)
        except EvidenceError as exc:
            if candidate is None:
                raise
            level = logging.DEBUG if exc.code == "TDX_COLLATERAL_EXPIRED" else logging.WARNING
            log.log(
                level,
                "the verifier's %s does not verify at %s (%s); the request's copy is used",
                item,
                _rfc3339(at),
                exc.code,
            )
    return newer(candidate, verifier)


def _available(request: TdxCollateral, fetched: Fetched) -> None:
    """Every item from the request or the source, else the source's reason (e.g. COLLATERAL_OFFLINE)."""
    lacking = [item for item in ITEMS if not request.has(item) and not fetched.collateral.has(item)]
    if not lacking:
        return
    errors = [fetched.errors[item] for item in lacking if item in fetched.errors]
    unavailable = [e for e in errors if isinstance(e, CollateralUnavailableError)]
    if unavailable or errors:
        raise (unavailable or errors)[0]
    missing = [name for name in request.missing() if any(name in ITEM_FILES[item] for item in lacking)]
    raise CollateralUnavailableError("COLLATERAL_MISSING", f"TDX collateral incomplete: {', '.join(missing)}")


def _check_signers(
    signers: tuple[tuple[str, x509.Certificate], ...],
    root_ca_crl: x509.CertificateRevocationList,
) -> None:
    """The TCB Signing certificate is revoked through the root CA CRL ("SGX PCK Certificate and CRL Profile")."""
    for what, signer in signers:
        if is_revoked(root_ca_crl, signer):
            raise EvidenceError(
                "TDX_COLLATERAL_SIGNER_REVOKED",
                f"the {what} signer is revoked by the root CA CRL",
                expected="not revoked",
                actual=f"serial {signer.serial_number:x}",
            )


def verify_collateral(
    col: TdxCollateral,
    anchors: TrustAnchors,
    at: datetime.datetime,
    *,
    pck_issuer: x509.Name,
    fetched: Fetched = NOTHING_FETCHED,
    links: VerifiedLinks | None = None,
) -> VerifiedCollateral:
    """Chains, signatures, id/version, validity windows and CRLs of the request's collateral `col` and of what the
    verifier's source delivered (`fetched`) at `at`; per item the newer verified copy decides (freshness.py).

    Raises CollateralUnavailableError when an item is in neither (the source's code, else COLLATERAL_MISSING),
    EvidenceError when a used or requested item does not verify (module docstring, `tcb_signer`), and
    TDX_COLLATERAL_SIGNER_REVOKED when the root CA CRL revokes a TCB Signing certificate used."""
    _available(col, fetched)
    at = at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)
    tcb, tcb_old = _decide(TCB_INFO, col, fetched, at, lambda c, s: check_tcb_info(c, anchors, at, s, links))
    qe, qe_old = _decide(QE_IDENTITY, col, fetched, at, lambda c, s: check_qe_identity(c, anchors, at, s, links))
    pck, pck_old = _decide(
        PCK_CRL, col, fetched, at, lambda c, s: check_pck_crl(c, anchors, at, s, pck_issuer=pck_issuer, links=links)
    )
    (pck_crl, root) = pck.value
    root_crl, root_old = _decide(ROOT_CA_CRL, col, fetched, at, lambda c, s: check_root_ca_crl(c, root, at, s, links))
    _check_signers((("TCB info", tcb.value[1]), ("QE identity", qe.value[1])), root_crl.value)
    items = (tcb.facts, qe.facts, pck.facts, root_crl.facts)
    return VerifiedCollateral(
        tcb.value[0],
        qe.value[0],
        pck_crl,
        root_crl.value,
        min(facts.next_update for facts in items),
        items,
        tuple(s for s in (tcb_old, qe_old, pck_old, root_old) if s is not None),
    )
