"""The vocabulary of NVIDIA collateral keys, and the OCSP fetcher over a collateral source. No HTTP here: the GPU
verifier (verifier.tee.gpu) imports this module, the HTTP clients are `verifier.collateral.nvidia`.

    ("nvidia.rim", (("id", "NV_GPU_DRIVER_GH100_550.90.07"),))          a RIM from NVIDIA's RIM service (XML bytes)
    ("nvidia.ocsp", (("hash", "sha384"), ("issuer_name_hash", "<hex>"),
                     ("issuer_key_hash", "<hex>"), ("serial", "<hex>")))  an OCSP answer for that CertID

An "nvidia.ocsp" item's data is the JSON envelope of `ocsp_envelope`: the DER OCSPResponse (base64) and the nonce
its request carried (hex, or null), so that a cached answer is checked for the nonce echo like a fresh one
(`verifier.trust.ocsp`). `CollateralKey.cache_id()` of these keys is the collateral_cache row id: none of these
strings may change.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from ..trust.ocsp import CertId, FetchedOcsp
from ..trust.ocsp_response import CERT_ID_HASHES
from .base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError, reject

KIND_RIM = "nvidia.rim"
KIND_OCSP = "nvidia.ocsp"
# RIM ids as NVIDIA names them (NV_GPU_DRIVER_GH100_<version>, NV_GPU_VBIOS_<project>_<sku>_<chip sku>_<version>,
# NV_GPU_CC_DRIVER_<chip>_<version>): letters, digits, '.', '_', '-'.
RIM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_ENVELOPE_BYTES = 128 * 1024


def rim_key(rim_id: str) -> CollateralKey:
    """The key of the RIM `rim_id`. Raises ValueError (no error code) for an id NVIDIA's scheme does not form."""
    if not RIM_ID.fullmatch(rim_id):
        raise ValueError(f"{rim_id[:140]!r} is not a RIM id")
    return CollateralKey(KIND_RIM, (("id", rim_id),))


def ocsp_key(cid: CertId) -> CollateralKey:
    """The key of the OCSP answer for `cid`."""
    return CollateralKey(
        KIND_OCSP,
        (
            ("hash", cid.algorithm),
            ("issuer_name_hash", cid.issuer_name_hash.hex()),
            ("issuer_key_hash", cid.issuer_key_hash.hex()),
            ("serial", f"{cid.serial:x}"),
        ),
    )


def cert_id_of(key: CollateralKey) -> CertId:
    """The CertID an "nvidia.ocsp" key names. Raises KeyError / ValueError (no error code) for a key `ocsp_key`
    did not make."""
    algorithm = key.param("hash")
    size = CERT_ID_HASHES[algorithm]().digest_size
    name_hash, key_hash = bytes.fromhex(key.param("issuer_name_hash")), bytes.fromhex(key.param("issuer_key_hash"))
    serial = key.param("serial")
    if key.kind != KIND_OCSP or len(name_hash) != size or len(key_hash) != size or not 0 < len(serial) <= 64:
        raise ValueError("not an nvidia.ocsp key")
    return CertId(algorithm, name_hash, key_hash, int(serial, 16))


def ocsp_envelope(response: bytes, nonce: bytes | None) -> bytes:
    """The item data of an OCSP answer: {"nonce": hex | null, "response": base64 DER}, sorted keys."""
    body = {"nonce": nonce.hex() if nonce is not None else None, "response": base64.b64encode(response).decode()}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def open_envelope(data: bytes) -> tuple[bytes, bytes | None]:
    """(DER OCSPResponse, nonce) of `ocsp_envelope` data. Raises ValueError (no error code) for anything else."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"envelope exceeds {MAX_ENVELOPE_BYTES} bytes")
    try:
        body: Any = json.loads(data)
        if not isinstance(body, dict) or set(body) != {"nonce", "response"}:
            raise ValueError("not an OCSP envelope")
        nonce, response = body["nonce"], body["response"]
        if not isinstance(response, str) or not (nonce is None or isinstance(nonce, str)):
            raise ValueError("not an OCSP envelope")
        return base64.b64decode(response, validate=True), bytes.fromhex(nonce) if nonce is not None else None
    except RecursionError:  # every other decoding error is a ValueError already
        raise ValueError("not an OCSP envelope: nested too deeply") from None


class SourceOcspFetcher:
    """`verifier.trust.ocsp.OcspFetcher` over a collateral source (the cache in front of NVIDIA's responder, or
    offline): answers come as "nvidia.ocsp" items, one that fails verification is rejected back to the source."""

    def __init__(self, source: CollateralSource) -> None:
        self._source = source

    def fetch_ocsp(self, cid: CertId, *, at: dt.datetime) -> FetchedOcsp:
        """The source's answer for `cid`. Raises CollateralUnavailableError: the source's error, or
        COLLATERAL_MALFORMED for an item that is not an OCSP envelope (then rejected)."""
        item = self._source.fetch(ocsp_key(cid), at=at)
        try:
            response, nonce = open_envelope(item.data)
        except ValueError as error:
            reject(self._source, item, reason="COLLATERAL_MALFORMED")
            raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{KIND_OCSP}: {error}") from None
        return FetchedOcsp(response, nonce, handle=item)

    def reject_ocsp(self, fetched: FetchedOcsp, *, reason: str) -> None:
        """Hand the item behind `fetched` back to the source as failing with `reason`. Never raises."""
        if isinstance(fetched.handle, CollateralItem):
            reject(self._source, fetched.handle, reason=reason)
