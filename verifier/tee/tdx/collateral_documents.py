"""Intel TDX collateral documents: the model of one request's or one source's collateral and its parsing.

Intel Trusted Services API (PCS v4): GET /tdx/certification/v4/tcb and /tdx/certification/v4/qe/identity return
{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}; the ECDSA P-256 / SHA-256 signature by the
"Intel SGX TCB Signing" certificate covers the exact bytes of the member value as served, so `SignedJson.raw` is
cut out of the original text and never re-serialised. That split (strict JSON, exact signed bytes, size bound) is
written once, in verifier.collateral.signed_json, which the PCS client uses too; here its SignedJsonError becomes
EvidenceError TDX_COLLATERAL_MALFORMED with the same message. Nothing is verified here (collateral_checks.py does);
parse results are memoised by the digest of their bytes (`_PARSED`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509

from verifier.collateral import signed_json
from verifier.collateral.signed_json import MAX_DOC_BYTES as MAX_DOC_BYTES
from verifier.collateral.signed_json import SignedJson as SignedJson
from verifier.collateral.signed_json import SignedJsonError, split_signed_json
from verifier.errors import EvidenceError
from verifier.trust.certs import load_pem_certificates

from .freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO

MALFORMED = "TDX_COLLATERAL_MALFORMED"
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


def parse_signed_json(doc: bytes, member: str) -> SignedJson:
    """Split `{"<member>": {...}, "signature": "<hex>"}` keeping the member value's exact bytes (Intel Trusted
    Services API, PCS v4 TCB info / QE identity): verifier.collateral.signed_json.split_signed_json. Raises
    EvidenceError TDX_COLLATERAL_MALFORMED with its SignedJsonError's message and actual (too large, not strict
    JSON, not one object, `member` or "signature" missing, a signature not 64 bytes of hex, a member not an
    object)."""
    return _PARSED.get((b"signed-json", _digest(doc), member.encode()), lambda: _split(doc, member))


def _split(doc: bytes, member: str) -> SignedJson:
    try:
        return split_signed_json(doc, member)
    except SignedJsonError as error:
        raise _malformed(error.message, error.actual) from None


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
    """dcap-qvl QuoteCollateralV3 JSON: member JSON as strings, signatures and CRLs as hex, chains as PEM (parsed
    once per content: a new dict of the memoised items)."""
    if len(doc) > 4 * MAX_DOC_BYTES:
        raise _malformed("collateral.json too large", str(len(doc)))
    items: dict[str, Any] = _PARSED.get((b"dcap-qvl", _digest(doc)), lambda: _parse_dcap_qvl(doc))
    return dict(items)


def _parse_dcap_qvl(doc: bytes) -> dict[str, Any]:
    if len(doc) > 4 * MAX_DOC_BYTES:
        raise _malformed("collateral.json too large", str(len(doc)))
    try:
        data = signed_json.member_dict(doc, "collateral.json")
        out: dict[str, Any] = {}
        for item, member in (("tcb_info", "tcbInfo"), ("qe_identity", "enclaveIdentity")):
            text = data.get(item)
            if text is None:
                continue
            if not isinstance(text, str):
                raise _malformed(f"collateral.json {item} must be a JSON string")
            raw, sig = _utf8(text, item), signed_json.signature(data.get(f"{item}_signature"), item)
            out[f"{item}.json"] = SignedJson(raw, sig, signed_json.member_dict(raw, member))
    except SignedJsonError as error:
        raise _malformed(error.message, error.actual) from None
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
