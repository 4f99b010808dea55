"""The vocabulary of AMD KDS collateral keys (AMD pub. 57230 "VCEK Certificate and KDS Interface Specification"):
item kinds, the product names and signers KDS serves, and the SPL query parameters in the order the VCEK URL
carries them. No HTTP and no TEE types: the SEV-SNP verifier builds its keys from these
(verifier.tee.sevsnp.collateral_keys), the KDS client (verifier.collateral.kds) reads the keys with them.

The key params are plain strings, e.g. ("amd.vcek", (("product", "Milan"), ("hwid", "<hex>"), ("blSPL", "2"), ...));
`CollateralKey.cache_id()` of them is the collateral_cache row id, so none of these strings may change.
"""

from __future__ import annotations

KIND_VCEK = "amd.vcek"
KIND_VLEK = "amd.vlek"
KIND_CERT_CHAIN = "amd.cert_chain"
KIND_CRL = "amd.crl"
# KDS {product_name}: the values of verifier.tee.sevsnp.tcb.Product (tests/unit/tee/sevsnp pins them equal).
PRODUCTS = ("Milan", "Genoa", "Turin")
SIGNERS = ("vcek", "vlek")
# The VCEK query parameters in URL order (fmcSPL first, Turin only; go-sev-guest builds them so).
SPL_PARAMS = ("fmcSPL", "blSPL", "teeSPL", "snpSPL", "ucodeSPL")


def product_name(name: str) -> str:
    """`name` if KDS serves that product (ValueError, no error code, otherwise)."""
    if name not in PRODUCTS:
        raise ValueError(f"{name!r} is not a valid Product")
    return name


def signer_name(signer: str) -> str:
    """`signer` if it is "vcek" or "vlek" (ValueError, no error code, otherwise)."""
    if signer not in SIGNERS:
        raise ValueError(f"signer must be 'vcek' or 'vlek', not {signer!r}")
    return signer
