"""The AMD KDS collateral keys of an SEV-SNP report (AMD pub. 57230 "VCEK Certificate and KDS Interface
Specification"): plain `CollateralKey`s of strings, which the KDS client (verifier.collateral.kds) turns into

    GET {base}/vcek/v1/{product}/{hwid}?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..   VCEK (DER)
    GET {base}/{vcek|vlek}/v1/{product}/cert_chain        ASK or ASVK, then ARK (PEM)
    GET {base}/{vcek|vlek}/v1/{product}/crl               CRL (DER)

without knowing `Product` or `TcbVersion`. The SPLs are those of REPORTED_TCB (the VCEK is issued for it). Turin's
hwid is the first 8 bytes of CHIP_ID and its query adds fmcSPL. The cache ids of these keys are collateral_cache row
ids (tests/unit/collateral/test_collateral_key_strings.py pins them).
"""

from __future__ import annotations

from typing import Literal

from verifier.collateral.base import CollateralKey
from verifier.collateral.kds_keys import KIND_CERT_CHAIN, KIND_CRL, KIND_VCEK, SPL_PARAMS, signer_name

from .tcb import Product, TcbVersion

Signer = Literal["vcek", "vlek"]
# TcbVersion.components() names -> the KDS query parameter of each SVN
_SPL_NAMES = {"fmc": "fmcSPL", "bootloader": "blSPL", "tee": "teeSPL", "snp": "snpSPL", "microcode": "ucodeSPL"}
_TURIN_HWID_BYTES = 8
_CHIP_ID_BYTES = 64


def vcek_key(product: Product, hwid: bytes, tcb: TcbVersion) -> CollateralKey:
    """The VCEK for CHIP_ID `hwid` at REPORTED_TCB `tcb` (pub. 57230, the vcek/v1 interface; Turin: the first
    8 bytes of CHIP_ID are used). Raises ValueError (no error code: a caller bug) for an unknown product, a hwid of
    the wrong length, or a Turin TCB without fmc."""
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
    ordered = tuple((name, spl[name]) for name in SPL_PARAMS if name in spl)
    return CollateralKey(KIND_VCEK, (("product", product.value), ("hwid", hwid.hex()), *ordered))


def cert_chain_key(product: Product, signer: Signer = "vcek") -> CollateralKey:
    """The ASK (vcek) or ASVK (vlek) plus ARK of `product` (pub. 57230, cert_chain). Raises ValueError (no
    error code) for an unknown product or signer."""
    return CollateralKey(KIND_CERT_CHAIN, (("product", Product(product).value), ("signer", signer_name(signer))))


def crl_key(product: Product, signer: Signer = "vcek") -> CollateralKey:
    """The CRL the ARK issues for the ASK (vcek) or ASVK (vlek) of `product` (pub. 57230, crl). Raises
    ValueError (no error code) for an unknown product or signer."""
    return CollateralKey(KIND_CRL, (("product", Product(product).value), ("signer", signer_name(signer))))
