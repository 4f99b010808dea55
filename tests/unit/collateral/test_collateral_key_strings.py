"""Golden collateral keys: the exact `CollateralKey.cache_id()` strings (the primary key of the collateral_cache
table, so a change would orphan every cached row), the vendor URLs built from them (also from a key read back from
its cache id, as the shared cache does), and the errors of the key builders. Written against the code before the
issue-12 split of the key builders out of the vendor clients; it must pass unchanged after it."""

from __future__ import annotations

import pytest

from verifier.collateral.base import CollateralKey, CollateralUnavailableError
from verifier.collateral.kds import AmdKds
from verifier.collateral.kds_keys import PRODUCTS, SPL_PARAMS
from verifier.collateral.pcs import IntelPcs
from verifier.collateral.pcs_items import pck_crl_key, qe_identity_key, root_ca_crl_key, tcb_info_key
from verifier.storage.collateral import key_from_cache_id
from verifier.tee.sevsnp import collateral_keys
from verifier.tee.sevsnp.collateral_keys import cert_chain_key, crl_key, vcek_key
from verifier.tee.sevsnp.tcb import Product, decode_tcb, encode_tcb

CHIP_ID = bytes(range(64))
HEX = CHIP_ID.hex()
MILAN_TCB = decode_tcb(encode_tcb(Product.MILAN, bootloader=3, tee=1, snp=20, microcode=209), Product.MILAN)
GENOA_TCB = decode_tcb(encode_tcb(Product.GENOA, bootloader=9, tee=0, snp=23, microcode=72), Product.GENOA)
TURIN_TCB = decode_tcb(encode_tcb(Product.TURIN, bootloader=1, tee=2, snp=4, microcode=71, fmc=5), Product.TURIN)
KDS = "https://kdsintf.amd.com"
PCS = "https://api.trustedservices.intel.com"

GOLDEN: list[tuple[CollateralKey, str, str]] = [
    (
        vcek_key(Product.MILAN, CHIP_ID, MILAN_TCB),
        f"amd.vcek?product=Milan&hwid={HEX}&blSPL=3&teeSPL=1&snpSPL=20&ucodeSPL=209",
        f"{KDS}/vcek/v1/Milan/{HEX}?blSPL=3&teeSPL=1&snpSPL=20&ucodeSPL=209",
    ),
    (
        vcek_key(Product.GENOA, CHIP_ID, GENOA_TCB),
        f"amd.vcek?product=Genoa&hwid={HEX}&blSPL=9&teeSPL=0&snpSPL=23&ucodeSPL=72",
        f"{KDS}/vcek/v1/Genoa/{HEX}?blSPL=9&teeSPL=0&snpSPL=23&ucodeSPL=72",
    ),
    (
        vcek_key(Product.TURIN, CHIP_ID, TURIN_TCB),
        "amd.vcek?product=Turin&hwid=0001020304050607&fmcSPL=5&blSPL=1&teeSPL=2&snpSPL=4&ucodeSPL=71",
        f"{KDS}/vcek/v1/Turin/0001020304050607?fmcSPL=5&blSPL=1&teeSPL=2&snpSPL=4&ucodeSPL=71",
    ),
    (
        vcek_key(Product.TURIN, CHIP_ID[:8], TURIN_TCB),
        "amd.vcek?product=Turin&hwid=0001020304050607&fmcSPL=5&blSPL=1&teeSPL=2&snpSPL=4&ucodeSPL=71",
        f"{KDS}/vcek/v1/Turin/0001020304050607?fmcSPL=5&blSPL=1&teeSPL=2&snpSPL=4&ucodeSPL=71",
    ),
    # a Milan key from a TCB decoded as Turin (fmc set): fmcSPL is dropped
    (
        vcek_key(Product.MILAN, CHIP_ID, TURIN_TCB),
        f"amd.vcek?product=Milan&hwid={HEX}&blSPL=1&teeSPL=2&snpSPL=4&ucodeSPL=71",
        f"{KDS}/vcek/v1/Milan/{HEX}?blSPL=1&teeSPL=2&snpSPL=4&ucodeSPL=71",
    ),
    *(
        (
            builder(product, signer),  # type: ignore[operator]
            f"amd.{leaf}?product={product.value}&signer={signer}",
            f"{KDS}/{signer}/v1/{product.value}/{leaf}",
        )
        for builder, leaf in ((cert_chain_key, "cert_chain"), (crl_key, "crl"))
        for product in Product
        for signer in ("vcek", "vlek")
    ),
    (cert_chain_key(Product.GENOA), "amd.cert_chain?product=Genoa&signer=vcek", f"{KDS}/vcek/v1/Genoa/cert_chain"),
    (crl_key(Product.TURIN), "amd.crl?product=Turin&signer=vcek", f"{KDS}/vcek/v1/Turin/crl"),
    (
        tcb_info_key(bytes.fromhex("00906ea10000")),
        "intel.tcb_info?fmspc=00906EA10000",
        f"{PCS}/tdx/certification/v4/tcb?fmspc=00906EA10000",
    ),
    (qe_identity_key(), "intel.qe_identity", f"{PCS}/tdx/certification/v4/qe/identity"),
    (
        pck_crl_key("platform"),
        "intel.pck_crl?ca=platform",
        f"{PCS}/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
    ),
    (
        pck_crl_key("processor"),
        "intel.pck_crl?ca=processor",
        f"{PCS}/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
    ),
    (
        root_ca_crl_key(),
        "intel.root_ca_crl",
        "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
    ),
]


def _url(key: CollateralKey) -> str:
    return AmdKds().url(key) if key.kind.startswith("amd.") else IntelPcs().url(key)


@pytest.mark.parametrize(("key", "cache_id", "url"), GOLDEN, ids=[cache_id for _, cache_id, _ in GOLDEN])
def test_cache_id_and_url(key: CollateralKey, cache_id: str, url: str) -> None:
    assert key.cache_id() == cache_id
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in key.params)
    assert _url(key) == url
    read_back = key_from_cache_id(cache_id)
    assert read_back == key
    assert _url(read_back) == url


def test_builders_accept_the_product_name() -> None:
    assert vcek_key("Milan", CHIP_ID, MILAN_TCB) == vcek_key(Product.MILAN, CHIP_ID, MILAN_TCB)  # type: ignore[arg-type]
    assert cert_chain_key("Genoa", "vlek") == cert_chain_key(Product.GENOA, "vlek")  # type: ignore[arg-type]
    assert crl_key("Turin") == crl_key(Product.TURIN)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: vcek_key(Product.MILAN, CHIP_ID[:8], MILAN_TCB), "Milan hwid must be the 64-byte CHIP_ID, got 8"),
        (lambda: vcek_key(Product.GENOA, CHIP_ID[:63], GENOA_TCB), "Genoa hwid must be the 64-byte CHIP_ID, got 63"),
        (
            lambda: vcek_key(Product.TURIN, CHIP_ID[:16], TURIN_TCB),
            "Turin hwid must be 8 bytes (or the 64-byte CHIP_ID), got 16",
        ),
        (lambda: vcek_key(Product.TURIN, CHIP_ID, MILAN_TCB), "a Turin TCB must carry fmc"),
        (lambda: cert_chain_key(Product.MILAN, "ask"), "signer must be 'vcek' or 'vlek', not 'ask'"),  # type: ignore[arg-type]
        (lambda: crl_key(Product.MILAN, "VCEK"), "signer must be 'vcek' or 'vlek', not 'VCEK'"),  # type: ignore[arg-type]
        (lambda: crl_key("Naples"), "'Naples' is not a valid Product"),  # type: ignore[arg-type]
        (lambda: tcb_info_key(bytes(5)), "FMSPC must be 6 bytes, got 5"),
        (lambda: pck_crl_key("root"), "ca must be 'platform' or 'processor', not 'root'"),
    ],
)
def test_builder_errors(build: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build()  # type: ignore[operator]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("key", "code", "message"),
    [
        (
            CollateralKey("amd.crl", (("product", "Naples"), ("signer", "vcek"))),
            "COLLATERAL_KEY_INVALID",
            "amd.crl?product=Naples&signer=vcek: 'Naples' is not a valid Product",
        ),
        (
            CollateralKey("amd.crl", (("product", "Milan"), ("signer", "ask"))),
            "COLLATERAL_KEY_INVALID",
            "amd.crl?product=Milan&signer=ask: signer must be 'vcek' or 'vlek', not 'ask'",
        ),
        (
            CollateralKey("amd.vcek", (("product", "Milan"), ("hwid", "zz"))),
            "COLLATERAL_KEY_INVALID",
            "amd.vcek?product=Milan&hwid=zz: non-hexadecimal number found in fromhex() arg at position 0",
        ),
        (
            CollateralKey("amd.vcek", (("product", "Milan"),)),
            "COLLATERAL_KEY_INVALID",
            "amd.vcek?product=Milan: 'hwid'",
        ),
        (
            CollateralKey("amd.vlek", (("product", "Milan"),)),
            "COLLATERAL_NOT_DOWNLOADABLE",
            "VLEKs are provisioned to the cloud provider and cannot be downloaded from AMD KDS; the VLEK must come "
            "with the evidence",
        ),
        (CollateralKey("amd.ark", (("product", "Milan"),)), "COLLATERAL_KEY_INVALID", "AMD KDS does not serve amd.ark"),
        (
            CollateralKey("intel.tcb_info", (("fmspc", "00"),)),
            "COLLATERAL_KEY_INVALID",
            "intel.tcb_info?fmspc=00: FMSPC must be 6 bytes, got 1",
        ),
        (
            CollateralKey("intel.pck_crl", (("ca", "root"),)),
            "COLLATERAL_KEY_INVALID",
            "intel.pck_crl?ca=root: ca must be 'platform' or 'processor', not 'root'",
        ),
        (CollateralKey("intel.tdx_module"), "COLLATERAL_KEY_INVALID", "Intel PCS does not serve intel.tdx_module"),
    ],
)
def test_client_refuses_keys(key: CollateralKey, code: str, message: str) -> None:
    with pytest.raises(CollateralUnavailableError) as info:
        _url(key)
    assert (info.value.code, info.value.message) == (code, message)


def test_the_kds_vocabulary_matches_the_tee_types() -> None:
    """The KDS client knows products and SVN names only as strings (collateral/kds_keys.py): they must be exactly
    those of verifier.tee.sevsnp (a product missing there would make every key of it COLLATERAL_KEY_INVALID)."""
    assert tuple(p.value for p in Product) == PRODUCTS
    assert set(collateral_keys._SPL_NAMES) == set(TURIN_TCB.components())
    assert set(collateral_keys._SPL_NAMES.values()) == set(SPL_PARAMS)
