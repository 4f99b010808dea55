"""Intel PCS v4 (Intel Trusted Services API, "Provisioning Certification Service for ECDSA Attestation") and PCCS
client: a `CollateralSource` for TDX collateral (the HTTP side; keys and the item envelope are
`verifier.collateral.pcs_items`).

    GET {base}/tdx/certification/v4/tcb?fmspc=<FMSPC>   TCB info JSON, header TCB-Info-Issuer-Chain
    GET {base}/tdx/certification/v4/qe/identity          TD_QE identity JSON, header SGX-Enclave-Identity-Issuer-Chain
    GET {base}/sgx/certification/v4/pckcrl?ca=<platform|processor>&encoding=der   PCK CRL, SGX-PCK-CRL-Issuer-Chain
    GET {root_ca_crl_url}   Intel SGX Root CA CRL (DER; a PCCS /sgx/certification/v4/rootcacrl answers hex)

Issuer chains are URL-encoded PEM. A PCCS serves the same paths under its own base URL. Item data is the JSON envelope
of `verifier.collateral.pcs_items.envelope`; nothing is verified here (verifier.tee.tdx.collateral does), responses only
have to parse.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable
from email.message import Message

from .base import CollateralItem, CollateralKey, CollateralUnavailableError
from .http import HttpClient, check_base_url
from .pcs_items import (
    KIND_PCK_CRL,
    KIND_QE_IDENTITY,
    KIND_ROOT_CA_CRL,
    KIND_TCB_INFO,
    envelope,
    next_update,
    pck_crl_key,
    tcb_info_key,
)

DEFAULT_BASE_URL = "https://api.trustedservices.intel.com"
DEFAULT_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
_CHAIN_HEADERS = {
    KIND_TCB_INFO: ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"),
    KIND_QE_IDENTITY: ("SGX-Enclave-Identity-Issuer-Chain",),
    KIND_PCK_CRL: ("SGX-PCK-CRL-Issuer-Chain",),
}


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
