"""Intel PCS v4 (Intel Trusted Services API, "Provisioning Certification Service for ECDSA Attestation") and PCCS
client: a `CollateralSource` for TDX collateral.

    GET {base}/tdx/certification/v4/tcb?fmspc=<FMSPC>   TCB info JSON, header TCB-Info-Issuer-Chain
    GET {base}/tdx/certification/v4/qe/identity          TD_QE identity JSON, header SGX-Enclave-Identity-Issuer-Chain
    GET {base}/sgx/certification/v4/pckcrl?ca=<platform|processor>&encoding=der   PCK CRL, SGX-PCK-CRL-Issuer-Chain
    GET {root_ca_crl_url}   Intel SGX Root CA CRL (DER; a PCCS /sgx/certification/v4/rootcacrl answers hex)

Issuer chains are URL-encoded PEM. A PCCS serves the same paths under its own base URL. Item data is a JSON envelope
{"body": <JSON text, or hex of the DER CRL>, "issuer_chain": "<PEM>"}; nothing is verified here (collateral.py
does), responses only have to parse. `next_update` is the item's own nextUpdate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
import urllib.parse
from collections.abc import Callable
from email.message import Message

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.collateral.base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError
from verifier.collateral.http import HttpClient, check_base_url
from verifier.errors import EvidenceError, UnavailableError, VerifierError

from .collateral import NOTHING_FETCHED, Fetched, TdxCollateral, collateral_from_files, parse_signed_json
from .freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO, source_label

DEFAULT_BASE_URL = "https://api.trustedservices.intel.com"
DEFAULT_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
KIND_TCB_INFO, KIND_QE_IDENTITY = "intel.tcb_info", "intel.qe_identity"
KIND_PCK_CRL, KIND_ROOT_CA_CRL = "intel.pck_crl", "intel.root_ca_crl"
CAS = ("platform", "processor")
_CHAIN_HEADERS = {
    KIND_TCB_INFO: ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"),
    KIND_QE_IDENTITY: ("SGX-Enclave-Identity-Issuer-Chain",),
    KIND_PCK_CRL: ("SGX-PCK-CRL-Issuer-Chain",),
}
_MEMBERS = {KIND_TCB_INFO: "tcbInfo", KIND_QE_IDENTITY: "enclaveIdentity"}


def tcb_info_key(fmspc: bytes) -> CollateralKey:
    if len(fmspc) != 6:
        raise ValueError(f"FMSPC must be 6 bytes, got {len(fmspc)}")
    return CollateralKey(KIND_TCB_INFO, (("fmspc", fmspc.hex().upper()),))


def qe_identity_key() -> CollateralKey:
    return CollateralKey(KIND_QE_IDENTITY)


def pck_crl_key(ca: str) -> CollateralKey:
    if ca not in CAS:
        raise ValueError(f"ca must be 'platform' or 'processor', not {ca!r}")
    return CollateralKey(KIND_PCK_CRL, (("ca", ca),))


def root_ca_crl_key() -> CollateralKey:
    return CollateralKey(KIND_ROOT_CA_CRL)


class IntelPcs:
    """A `CollateralSource` for Intel PCS v4 or a PCCS (`base_url`); `retries`/`max_wait` bound 429/503 handling."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        root_ca_crl_url: str = DEFAULT_ROOT_CA_CRL_URL,
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.root_ca_crl_url = check_base_url(root_ca_crl_url)
        self._http = HttpClient(timeout=timeout, retries=retries, max_wait=max_wait, sleep=sleep)

    def url(self, key: CollateralKey) -> str:
        """The PCS URL for `key` (CollateralUnavailableError COLLATERAL_KEY_INVALID for anything else)."""
        try:
            if key.kind == KIND_TCB_INFO:
                fmspc = bytes.fromhex(key.param("fmspc"))
                return f"{self.base_url}/tdx/certification/v4/tcb?fmspc={tcb_info_key(fmspc).param('fmspc')}"
            if key.kind == KIND_PCK_CRL:
                return (
                    f"{self.base_url}/sgx/certification/v4/pckcrl?ca={pck_crl_key(key.param('ca')).param('ca')}"
                    "&encoding=der"
                )
        except (KeyError, ValueError) as error:
            raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"{key.cache_id()}: {error}") from None
        if key.kind == KIND_QE_IDENTITY:
            return f"{self.base_url}/tdx/certification/v4/qe/identity"
        if key.kind == KIND_ROOT_CA_CRL:
            return self.root_ca_crl_url
        raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"Intel PCS does not serve {key.kind}")

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        body, headers = self._http.get_with_headers(self.url(key))
        data = envelope(key.kind, body, _issuer_chain(key.kind, headers))
        return CollateralItem(
            key=key,
            data=data,
            fetched_at=dt.datetime.now(dt.UTC),
            next_update=next_update(key.kind, data),
            source="pcs",
        )


def _issuer_chain(kind: str, headers: Message) -> str:
    names = _CHAIN_HEADERS.get(kind, ())
    value = next((headers[name] for name in names if headers.get(name)), None)
    if names and value is None:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{kind}: no {names[0]} header in the response")
    return urllib.parse.unquote(value) if value else ""


def _crl_der(body: bytes) -> bytes:
    """DER as served by PCS, PEM, or the hex text a PCCS answers for the root CA CRL."""
    text = body.strip()
    if text.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(text).public_bytes(Encoding.DER)
    if text and all(c in b"0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text.decode())
    return body


def envelope(kind: str, body: bytes, issuer_chain: str) -> bytes:
    """The item data: {"body": JSON text or CRL hex, "issuer_chain": PEM}."""
    try:
        text = body.decode("utf-8") if kind in _MEMBERS else _crl_der(body).hex()
    except ValueError as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{kind} does not parse: {error}") from None
    return json.dumps({"body": text, "issuer_chain": issuer_chain}).encode()


def open_envelope(kind: str, data: bytes) -> tuple[bytes, bytes]:
    """(body bytes: JSON text or DER CRL, issuer chain PEM) of an item made by `envelope`."""
    try:
        doc = json.loads(data)
        body, chain = doc["body"], doc["issuer_chain"]
        if not isinstance(body, str) or not isinstance(chain, str):
            raise TypeError("body and issuer_chain must be strings")
        raw = body.encode() if kind in _MEMBERS else bytes.fromhex(body)
    except (ValueError, KeyError, TypeError) as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"not a PCS collateral envelope: {error}") from None
    return raw, chain.encode()


def next_update(kind: str, data: bytes) -> dt.datetime:
    """nextUpdate of the TCB info / QE identity JSON or of the CRL in the envelope `data`."""
    body, _ = open_envelope(kind, data)
    try:
        if kind in _MEMBERS:
            value = parse_signed_json(body, _MEMBERS[kind]).data.get("nextUpdate")
            when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
        crl = x509.load_der_x509_crl(body)
        if crl.next_update_utc is None:
            raise ValueError("CRL without nextUpdate")
        return crl.next_update_utc
    except (ValueError, EvidenceError) as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{kind} from PCS does not parse: {error}") from None


def collateral_from_source(source: CollateralSource, fmspc: bytes, ca: str, at: dt.datetime) -> TdxCollateral:
    """Fetch TCB info (for `fmspc`), QE identity, PCK CRL (of the `ca` PCK CA) and root CA CRL."""
    files: dict[str, bytes] = {}
    for key, name in (
        (tcb_info_key(fmspc), "tcb_info"),
        (qe_identity_key(), "qe_identity"),
        (pck_crl_key(ca), "pck_crl"),
        (root_ca_crl_key(), "root_ca_crl"),
    ):
        body, chain = open_envelope(key.kind, source.fetch(key, at=at).data)
        files[f"{name}.json" if key.kind in _MEMBERS else f"{name}.der"] = body
        if chain:
            files[f"{name}_issuer_chain.pem"] = chain
    return collateral_from_files(files)


def _keys(fmspc: bytes, ca: str) -> tuple[tuple[str, CollateralKey, str], ...]:
    return (
        (TCB_INFO, tcb_info_key(fmspc), "tcb_info"),
        (QE_IDENTITY, qe_identity_key(), "qe_identity"),
        (PCK_CRL, pck_crl_key(ca), "pck_crl"),
        (ROOT_CA_CRL, root_ca_crl_key(), "root_ca_crl"),
    )


@functools.lru_cache(maxsize=64)
def _item_collateral(kind: str, name: str, data: bytes) -> TdxCollateral:
    """One item's envelope as collateral (memoised by the envelope bytes: a cache serves the same item to many
    appraisals). Raises CollateralUnavailableError COLLATERAL_MALFORMED or EvidenceError like the request's."""
    body, chain = open_envelope(kind, data)
    files = {f"{name}.json" if kind in _MEMBERS else f"{name}.der": body}
    if chain:
        files[f"{name}_issuer_chain.pem"] = chain
    return collateral_from_files(files)


def _merge(parts: list[TdxCollateral]) -> TdxCollateral:
    merged = NOTHING_FETCHED.collateral
    for part in parts:
        merged = dataclasses.replace(
            merged, **{f.name: getattr(part, f.name) for f in dataclasses.fields(part) if getattr(part, f.name)}
        )
    return merged


def fetch_collateral(source: CollateralSource, fmspc: bytes, ca: str, at: dt.datetime) -> Fetched:
    """Ask `source` for each of TCB info (for `fmspc`), QE identity, PCK CRL (of the `ca` PCK CA) and root CA CRL.
    Never raises for an item: what the source cannot deliver (UnavailableError, e.g. COLLATERAL_OFFLINE) or
    delivers unparseable (EvidenceError) is recorded in `errors`; `sources` says "cache" or "vendor" per item."""
    parts: list[TdxCollateral] = []
    sources: dict[str, str] = {}
    errors: dict[str, VerifierError] = {}
    for item, key, name in _keys(fmspc, ca):
        try:
            fetched = source.fetch(key, at=at)
            parts.append(_item_collateral(key.kind, name, fetched.data))
        except (UnavailableError, EvidenceError) as error:
            errors[item] = error
            continue
        sources[item] = source_label(fetched.source)
    return Fetched(_merge(parts), sources, errors)
