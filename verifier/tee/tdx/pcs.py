"""Intel PCS v4 / PCCS collateral items for TDX: their keys, the item envelope, and turning delivered items into
`TdxCollateral`. No HTTP here: the client that fetches them (`IntelPcs`) is `verifier.collateral.pcs`, beside the
AMD KDS client, so nothing under verifier/tee/ imports an HTTP module.

Item data is a JSON envelope {"body": <JSON text, or hex of the DER CRL>, "issuer_chain": "<PEM>"}; nothing is
verified here (collateral.py does), items only have to parse. `next_update` is the item's own nextUpdate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json

from verifier.collateral.base import CollateralKey, CollateralSource, CollateralUnavailableError
from verifier.errors import EvidenceError, UnavailableError, VerifierError
from verifier.trust.certs import crl_next_update, pem_crl_der

from .collateral import NOTHING_FETCHED, Fetched
from .collateral_documents import TdxCollateral, collateral_from_files, parse_signed_json
from .freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO, source_label

KIND_TCB_INFO, KIND_QE_IDENTITY = "intel.tcb_info", "intel.qe_identity"
KIND_PCK_CRL, KIND_ROOT_CA_CRL = "intel.pck_crl", "intel.root_ca_crl"
CAS = ("platform", "processor")
_MEMBERS = {KIND_TCB_INFO: "tcbInfo", KIND_QE_IDENTITY: "enclaveIdentity"}


def tcb_info_key(fmspc: bytes) -> CollateralKey:
    """The key of the TCB info for `fmspc` (Intel PCS v4 GET /tdx/certification/v4/tcb?fmspc=, upper-case hex).
    Raises ValueError (no error code: a caller bug) unless `fmspc` is 6 bytes."""
    if len(fmspc) != 6:
        raise ValueError(f"FMSPC must be 6 bytes, got {len(fmspc)}")
    return CollateralKey(KIND_TCB_INFO, (("fmspc", fmspc.hex().upper()),))


def qe_identity_key() -> CollateralKey:
    """The key of the TD QE identity (Intel PCS v4 GET /tdx/certification/v4/qe/identity). Never raises."""
    return CollateralKey(KIND_QE_IDENTITY)


def pck_crl_key(ca: str) -> CollateralKey:
    """The key of the PCK CRL of one CA (Intel PCS v4 GET /sgx/certification/v4/pckcrl?ca=). Raises ValueError (no
    error code: a caller bug) unless `ca` is "platform" or "processor"."""
    if ca not in CAS:
        raise ValueError(f"ca must be 'platform' or 'processor', not {ca!r}")
    return CollateralKey(KIND_PCK_CRL, (("ca", ca),))


def root_ca_crl_key() -> CollateralKey:
    """The key of the Intel SGX Root CA CRL (IntelSGXRootCA.der, or a PCCS's /sgx/certification/v4/rootcacrl).
    Never raises."""
    return CollateralKey(KIND_ROOT_CA_CRL)


def _crl_der(body: bytes) -> bytes:
    """DER as served by PCS, PEM, or the hex text a PCCS answers for the root CA CRL."""
    text = body.strip()
    if text.startswith(b"-----BEGIN"):
        return pem_crl_der(text)
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
        crl_next = crl_next_update(body)
        if crl_next is None:
            raise ValueError("CRL without nextUpdate")
        return crl_next
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
