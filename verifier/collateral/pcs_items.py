"""Intel PCS v4 / PCCS collateral items (Intel Trusted Services API, "Provisioning Certification Service for ECDSA
Attestation"): their keys, the item envelope, and until when an item may be cached. No HTTP here (the client is
verifier.collateral.pcs) and no TEE types: the TDX verifier (verifier.tee.tdx.pcs) asks for these keys and opens
these envelopes, the client builds its URLs from the keys and wraps what it fetched.

Item data is a JSON envelope {"body": <JSON text, or hex of the DER CRL>, "issuer_chain": "<PEM>"}; nothing is
verified here (verifier.tee.tdx.collateral does), items only have to parse. `next_update` is the item's own
nextUpdate. The keys' cache ids are collateral_cache row ids (tests/unit/collateral/test_collateral_key_strings.py).
"""

from __future__ import annotations

import datetime as dt
import json

from ..clock import parse_iso_utc
from ..trust.certs import crl_next_update, pem_crl_der
from .base import CollateralKey, CollateralUnavailableError
from .signed_json import SignedJsonError, split_signed_json

KIND_TCB_INFO, KIND_QE_IDENTITY = "intel.tcb_info", "intel.qe_identity"
KIND_PCK_CRL, KIND_ROOT_CA_CRL = "intel.pck_crl", "intel.root_ca_crl"
CAS = ("platform", "processor")
# The signed JSON kinds and the member that holds each document (the other kinds are CRLs).
MEMBERS = {KIND_TCB_INFO: "tcbInfo", KIND_QE_IDENTITY: "enclaveIdentity"}
# The error code the TDX verifier gives a document that does not split (verifier.tee.tdx.collateral_documents
# MALFORMED): next_update's message has named it since before the split of this module out of verifier.tee.tdx.
_DOCUMENT_CODE = "TDX_COLLATERAL_MALFORMED"


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
    """The item data: {"body": JSON text or CRL hex, "issuer_chain": PEM}. Raises CollateralUnavailableError
    COLLATERAL_MALFORMED when a JSON body is not UTF-8 or a CRL body is bad PEM or hex."""
    try:
        text = body.decode("utf-8") if kind in MEMBERS else _crl_der(body).hex()
    except ValueError as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{kind} does not parse: {error}") from None
    return json.dumps({"body": text, "issuer_chain": issuer_chain}).encode()


def open_envelope(kind: str, data: bytes) -> tuple[bytes, bytes]:
    """(body bytes: JSON text or DER CRL, issuer chain PEM) of an item made by `envelope`. Raises
    CollateralUnavailableError COLLATERAL_MALFORMED for anything else."""
    try:
        doc = json.loads(data)
        body, chain = doc["body"], doc["issuer_chain"]
        if not isinstance(body, str) or not isinstance(chain, str):
            raise TypeError("body and issuer_chain must be strings")
        raw = body.encode() if kind in MEMBERS else bytes.fromhex(body)
    except (ValueError, KeyError, TypeError) as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"not a PCS collateral envelope: {error}") from None
    return raw, chain.encode()


def next_update(kind: str, data: bytes) -> dt.datetime:
    """nextUpdate (UTC) of the TCB info / QE identity JSON or of the CRL in the envelope `data`. Raises
    CollateralUnavailableError COLLATERAL_MALFORMED when the envelope, the signed JSON document or the CRL does not
    parse, or has no nextUpdate."""
    body, _ = open_envelope(kind, data)
    try:
        if kind in MEMBERS:
            value = split_signed_json(body, MEMBERS[kind]).data.get("nextUpdate")
            return parse_iso_utc(str(value))  # ValueError (bad or out-of-range date): COLLATERAL_MALFORMED below
        crl_next = crl_next_update(body)
        if crl_next is None:
            raise ValueError("CRL without nextUpdate")
        return crl_next
    except SignedJsonError as error:
        raise CollateralUnavailableError(
            "COLLATERAL_MALFORMED", f"{kind} from PCS does not parse: {_DOCUMENT_CODE}: {error.message}"
        ) from None
    except ValueError as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{kind} from PCS does not parse: {error}") from None
