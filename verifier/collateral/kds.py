"""AMD Key Distribution Service client (AMD pub. 57230 "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
Interface Specification", and the VLEK specification).

    GET {base}/vcek/v1/{product}/{hwid}?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..   VCEK (DER)
    GET {base}/{vcek|vlek}/v1/{product}/cert_chain        ASK or ASVK, then ARK (PEM)
    GET {base}/{vcek|vlek}/v1/{product}/crl               CRL (DER)

The SPLs are those of REPORTED_TCB (the VCEK is issued for it). Turin's hwid is the first 8 bytes of CHIP_ID and
its query adds fmcSPL (first, as go-sev-guest builds it). VLEKs are provisioned to cloud providers and cannot be
downloaded. Nothing is validated cryptographically here; responses only have to parse as the expected type.

The URL is built from the key alone: its params are the strings of `verifier.collateral.kds_keys` (the SEV-SNP
verifier makes them in verifier.tee.sevsnp.collateral_keys), so nothing here imports a TEE type.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable

from ..trust.certs import certificate_not_after, crl_next_update, pem_certificate_ders
from .base import CollateralItem, CollateralKey, CollateralUnavailableError
from .http import HttpClient, check_base_url
from .kds_keys import KIND_CERT_CHAIN, KIND_CRL, KIND_VCEK, KIND_VLEK, SPL_PARAMS, product_name, signer_name

DEFAULT_BASE_URL = "https://kdsintf.amd.com"
CRL_DEFAULT_MAX_AGE = dt.timedelta(days=1)


class AmdKds:
    """A `CollateralSource` for AMD KDS. `retries`/`max_wait` bound the 429/503 Retry-After handling."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._http = HttpClient(timeout=timeout, retries=retries, max_wait=max_wait, sleep=sleep)

    def url(self, key: CollateralKey) -> str:
        """The KDS URL for `key` (CollateralUnavailableError for kinds KDS does not serve)."""
        try:
            product = urllib.parse.quote(product_name(key.param("product")))
            if key.kind == KIND_VCEK:
                hwid = bytes.fromhex(key.param("hwid")).hex()
                query = urllib.parse.urlencode([(k, str(int(v))) for k, v in key.params if k in SPL_PARAMS])
                return f"{self.base_url}/vcek/v1/{product}/{hwid}?{query}"
            if key.kind in (KIND_CERT_CHAIN, KIND_CRL):
                leaf = "cert_chain" if key.kind == KIND_CERT_CHAIN else "crl"
                return f"{self.base_url}/{signer_name(key.param('signer'))}/v1/{product}/{leaf}"
        except (KeyError, ValueError) as error:
            raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"{key.cache_id()}: {error}") from None
        if key.kind == KIND_VLEK:
            raise CollateralUnavailableError(
                "COLLATERAL_NOT_DOWNLOADABLE",
                "VLEKs are provisioned to the cloud provider and cannot be downloaded "
                "from AMD KDS; the VLEK must come with the evidence",
            )
        raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"AMD KDS does not serve {key.kind}")

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        data = self._http.get(self.url(key))  # no Accept header, as go-sev-guest and virtee/sev send none
        fetched_at = dt.datetime.now(dt.UTC)
        return CollateralItem(
            key=key, data=data, fetched_at=fetched_at, next_update=next_update(key.kind, data, fetched_at), source="kds"
        )


def next_update(kind: str, data: bytes, fetched_at: dt.datetime) -> dt.datetime:
    """Until when `data` may be cached: VCEK notAfter, the earliest notAfter of a chain, a CRL's nextUpdate
    (fetched_at + 1 day without one). COLLATERAL_MALFORMED when `data` does not parse as `kind`."""
    try:
        if kind == KIND_VCEK:
            return certificate_not_after(data)
        if kind == KIND_CERT_CHAIN:
            certs = pem_certificate_ders(data)
            if not certs:
                raise ValueError("no certificate in the PEM chain")
            return min(certificate_not_after(der) for der in certs)
        if kind == KIND_CRL:
            return crl_next_update(data) or fetched_at + CRL_DEFAULT_MAX_AGE
    except ValueError as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{kind} from KDS does not parse: {error}") from None
    raise ValueError(f"unknown kind {kind}")
