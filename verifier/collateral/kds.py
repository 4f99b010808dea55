"""AMD Key Distribution Service client (AMD pub. 57230 "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
Interface Specification", and the VLEK specification).

    GET {base}/vcek/v1/{product}/{hwid}?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..   VCEK (DER)
    GET {base}/{vcek|vlek}/v1/{product}/cert_chain        ASK or ASVK, then ARK (PEM)
    GET {base}/{vcek|vlek}/v1/{product}/crl               CRL (DER)

The SPLs are those of REPORTED_TCB (the VCEK is issued for it). Turin's hwid is the first 8 bytes of CHIP_ID and
its query adds fmcSPL (first, as go-sev-guest builds it). VLEKs are provisioned to cloud providers and cannot be
downloaded. Nothing is validated cryptographically here; responses only have to parse as the expected type.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from collections.abc import Callable
from typing import Literal

from ..tee.sevsnp.tcb import Product, TcbVersion
from ..trust.certs import certificate_not_after, crl_next_update, pem_certificate_ders
from .base import CollateralItem, CollateralKey, CollateralUnavailableError
from .http import HttpClient, check_base_url

DEFAULT_BASE_URL = "https://kdsintf.amd.com"
KIND_VCEK = "amd.vcek"
KIND_VLEK = "amd.vlek"
KIND_CERT_CHAIN = "amd.cert_chain"
KIND_CRL = "amd.crl"
CRL_DEFAULT_MAX_AGE = dt.timedelta(days=1)

Signer = Literal["vcek", "vlek"]
_SPL_NAMES = {"fmc": "fmcSPL", "bootloader": "blSPL", "tee": "teeSPL", "snp": "snpSPL", "microcode": "ucodeSPL"}
_SPL_ORDER = ("fmcSPL", "blSPL", "teeSPL", "snpSPL", "ucodeSPL")
_TURIN_HWID_BYTES = 8
_CHIP_ID_BYTES = 64


def vcek_key(product: Product, hwid: bytes, tcb: TcbVersion) -> CollateralKey:
    """The VCEK for CHIP_ID `hwid` at REPORTED_TCB `tcb` (Turin: the first 8 bytes of CHIP_ID are used)."""
    product = Product(product)
    if product is Product.TURIN:
        if len(hwid) not in (_TURIN_HWID_BYTES, _CHIP_ID_BYTES):
            raise ValueError(f"Turin hwid must be 8 bytes (or the 64-byte CHIP_ID), got {len(hwid)}")
        hwid = hwid[:_TURIN_HWID_BYTES]
        if tcb.fmc is None:
            raise ValueError("a Turin TCB must carry fmc")
    elif len(hwid) != _CHIP_ID_BYTES:
        raise ValueError(f"{product} hwid must be the 64-byte CHIP_ID, got {len(hwid)}")
    spl = {_SPL_NAMES[name]: str(value) for name, value in tcb.components().items()}
    if product is not Product.TURIN:
        spl.pop("fmcSPL", None)
    ordered = tuple((name, spl[name]) for name in _SPL_ORDER if name in spl)
    return CollateralKey(KIND_VCEK, (("product", product.value), ("hwid", hwid.hex()), *ordered))


def cert_chain_key(product: Product, signer: Signer = "vcek") -> CollateralKey:
    """The ASK (vcek) or ASVK (vlek) plus ARK of `product`."""
    return CollateralKey(KIND_CERT_CHAIN, (("product", Product(product).value), ("signer", _signer(signer))))


def crl_key(product: Product, signer: Signer = "vcek") -> CollateralKey:
    """The CRL the ARK issues for the ASK (vcek) or ASVK (vlek) of `product`."""
    return CollateralKey(KIND_CRL, (("product", Product(product).value), ("signer", _signer(signer))))


def _signer(signer: str) -> str:
    if signer not in ("vcek", "vlek"):
        raise ValueError(f"signer must be 'vcek' or 'vlek', not {signer!r}")
    return signer


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
            product = urllib.parse.quote(Product(key.param("product")).value)
            if key.kind == KIND_VCEK:
                hwid = bytes.fromhex(key.param("hwid")).hex()
                query = urllib.parse.urlencode([(k, str(int(v))) for k, v in key.params if k in _SPL_ORDER])
                return f"{self.base_url}/vcek/v1/{product}/{hwid}?{query}"
            if key.kind in (KIND_CERT_CHAIN, KIND_CRL):
                leaf = "cert_chain" if key.kind == KIND_CERT_CHAIN else "crl"
                return f"{self.base_url}/{_signer(key.param('signer'))}/v1/{product}/{leaf}"
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
