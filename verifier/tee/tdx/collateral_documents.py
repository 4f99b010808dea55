"""Intel TDX collateral documents: the model of one request's or one source's collateral and its parsing.

Intel Trusted Services API (PCS v4): GET /tdx/certification/v4/tcb and /tdx/certification/v4/qe/identity return
{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}; the ECDSA P-256 / SHA-256 signature by the
"Intel SGX TCB Signing" certificate covers the exact bytes of the member value as served, so `SignedJson.raw` is
cut out of the original text and never re-serialised. Nothing is verified here (collateral_checks.py does); parse
results are memoised by the digest of their bytes (`_PARSED`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509

from verifier.errors import EvidenceError
from verifier.trust.certs import load_pem_certificates

from .freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO

MALFORMED = "TDX_COLLATERAL_MALFORMED"
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
