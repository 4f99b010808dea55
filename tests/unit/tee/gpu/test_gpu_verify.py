"""GpuVerifier (verifier/tee/gpu/verify.py, device.py, fwid.py) on reports and chains minted by the fake NVIDIA PKI:
a genuine report verifies (Hopper and Blackwell), and each attack is refused with its own stable code."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.nvidia_pki import FakeNvidiaPki, blackwell_extension, der, fwid_entry, hopper_extension
from verifier.errors import EvidenceError
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.gpu import fwid
from verifier.tee.gpu.facts import GpuFacts
from verifier.tee.gpu.verify import GpuVerifier, ocsp_responses

HOPPER = FakeNvidiaPki()
BLACKWELL = FakeNvidiaPki("blackwell")
VERIFIER = GpuVerifier()


def _verify(pki: FakeNvidiaPki, evidence: bytes | None = None, **collateral: Any) -> VerifiedEvidence:
    files = collateral.pop("files", None)
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=files if files is not None else pki.collateral())
    return VERIFIER.verify(evidence if evidence is not None else pki.mint(), ctx)


def _code(pki: FakeNvidiaPki, evidence: bytes | None = None, **collateral: Any) -> str:
    result = _verify(pki, evidence, **collateral)
    assert result.failure is not None
    return result.failure.code


@pytest.mark.parametrize("pki", [HOPPER, BLACKWELL], ids=["hopper", "blackwell"])
def test_a_genuine_report_verifies(pki: FakeNvidiaPki) -> None:
    result = _verify(pki, pki.mint(nonce=b"\x07" * 32))
    assert result.failure is None
    facts = result.facts
    assert isinstance(facts, GpuFacts)
    assert facts.architecture == pki.architecture and facts.fwid_checked
    assert facts.leaf_fwid is not None and facts.leaf_fwid.fwid == pki.fwid
    assert [c.subject for c in facts.chain] == [c.subject for c in pki.chain]
    assert result.claims["nonce"] == "07" * 32 and result.claims["fwid"] == pki.fwid.hex()
    assert result.claims["architecture"] == pki.architecture and result.claims["ueid"] == str(pki.leaf.serial_number)
    assert result.claims["hwmodel"] == f"{(pki.architecture == 'hopper' and 'GH100') or 'GB100'} A01 GSP BROM"
    # no RIM in the request and the default (offline) source: incomplete, never affirming
    assert result.incomplete == "COLLATERAL_OFFLINE" and facts.driver.rim is None
    assert [entry.item for entry in result.collateral] == ["nvidia.cert_chain"]


def test_a_tampered_byte_fails_the_signature() -> None:
    data = bytearray(HOPPER.mint())
    data[45 + 4 + 3 + 10] ^= 0x01  # a byte of the first measurement value: still parses
    assert _code(HOPPER, bytes(data)) == "GPU_SIGNATURE_INVALID"
    nonce = bytearray(HOPPER.mint())
    nonce[4] ^= 0x80  # the verifier's nonce is signed too
    assert _code(HOPPER, bytes(nonce)) == "GPU_SIGNATURE_INVALID"
    assert _code(HOPPER, HOPPER.mint(signature=bytes(96))) == "GPU_SIGNATURE_INVALID"
    assert _code(HOPPER, HOPPER.mint(key=ec.generate_private_key(ec.SECP384R1()))) == "GPU_SIGNATURE_INVALID"


def test_a_high_s_signature_is_accepted() -> None:
    from verifier.trust.ecdsa import P384_ORDER, complement

    data = HOPPER.mint()
    s = int.from_bytes(data[-48:], "big")
    assert _verify(HOPPER, data[:-48] + complement(s, P384_ORDER).to_bytes(48, "big")).failure is None


def test_a_chain_under_a_foreign_root_is_not_recognized() -> None:
    foreign = HOPPER.foreign()
    assert _code(HOPPER, foreign.mint(), files=foreign.collateral()) == "CHAIN_ROOT_UNTRUSTED"
    # the pinned root by name stands in for an unpinned copy: then the Identity's signature fails
    mixed = [foreign.leaf, foreign.brom, foreign.ica, foreign.identity, HOPPER.root]
    assert _code(HOPPER, foreign.mint(), files=HOPPER.collateral(mixed)) == "CHAIN_SIGNATURE_INVALID"
    with_anchor = VerifyContext(
        at=HOPPER.now, anchors=HOPPER.anchors(certificates=True), collateral=foreign.collateral()
    )
    failure = VERIFIER.verify(foreign.mint(), with_anchor).failure
    assert failure is not None and failure.code == "CHAIN_SIGNATURE_INVALID"


def test_the_pinned_root_replaces_an_unpinned_copy_of_the_same_name() -> None:
    copy = HOPPER.foreign().root  # same name, other key: not pinned
    files = HOPPER.collateral([*HOPPER.chain[:4], copy])
    ctx = VerifyContext(at=HOPPER.now, anchors=HOPPER.anchors(certificates=True), collateral=files)
    assert VERIFIER.verify(HOPPER.mint(), ctx).failure is None


@pytest.mark.parametrize(
    "which",
    [
        ("brom", "ica", "identity", "root"),  # every signature verifies, but the first certificate did not sign
        ("leaf", "ica", "identity", "root"),
        ("leaf", "brom", "identity", "root"),
        ("leaf", "brom", "ica", "identity"),
        ("root",),
        ("leaf", "brom", "ica", "identity", "root", "root"),
    ],
    ids=lambda w: "-".join(w),
)
def test_a_chain_missing_or_adding_a_certificate_is_refused(which: tuple[str, ...]) -> None:
    certs = [getattr(HOPPER, name) for name in which]
    assert _code(HOPPER, files=HOPPER.collateral(certs)) == "GPU_CERT_CHAIN_LENGTH"


def test_a_chain_out_of_order_fails_name_chaining() -> None:
    certs = [HOPPER.leaf, HOPPER.ica, HOPPER.brom, HOPPER.identity, HOPPER.root]
    assert _code(HOPPER, files=HOPPER.collateral(certs)) == "CHAIN_NAME_MISMATCH"


def test_no_chain_or_a_malformed_one() -> None:
    assert _code(HOPPER, files={}) == "GPU_CERT_CHAIN_MISSING"
    assert _code(
        HOPPER, files={"cert_chain.pem": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}
    ) == ("CERT_MALFORMED")
    result = _verify(HOPPER, files={})
    assert result.claims["nonce"] == "42" * 32 and "ueid" not in result.claims  # the report is still read


def test_a_leaf_fwid_other_than_the_reports_is_refused() -> None:
    pki = FakeNvidiaPki(leaf_fwid=b"\x01" * 48)
    assert _code(pki) == "GPU_FWID_MISMATCH"
    assert _verify(pki, pki.mint(fwid=b"\x01" * 48)).failure is None
    blackwell = FakeNvidiaPki("blackwell", leaf_fwid=b"\x02" * 48)
    assert _code(blackwell) == "GPU_FWID_MISMATCH"


def test_a_report_without_fwid_is_not_compared_and_a_leaf_without_one_is_refused() -> None:
    result = _verify(HOPPER, HOPPER.mint(fwid=fwid_omit()))
    assert result.failure is None and isinstance(result.facts, GpuFacts) and not result.facts.fwid_checked
    no_extension = FakeNvidiaPki(leaf_extension=False)
    assert _code(no_extension) == "GPU_FWID_EXTENSION_MISSING"
    assert _verify(no_extension, no_extension.mint(fwid=fwid_omit())).failure is None


def fwid_omit() -> Any:
    from tests.fakes.nvidia_pki import OMIT

    return OMIT


def test_a_leaf_that_is_not_p384_is_refused() -> None:
    pki = FakeNvidiaPki(leaf_curve=ec.SECP256R1())
    data = pki.mint(key=ec.generate_private_key(ec.SECP384R1()))
    assert _code(pki, data) == "GPU_KEY_TYPE"


def test_the_header_is_checked_before_the_chain_and_claims_survive() -> None:
    result = _verify(HOPPER, HOPPER.mint(request_version=0x10))
    assert result.failure is not None and result.failure.code == "GPU_SPDM_VERSION_UNSUPPORTED"
    assert result.claims["driver_version"] == "550.90.07" and result.parsed is not None


def test_a_parse_failure_reads_nothing() -> None:
    result = _verify(HOPPER, HOPPER.mint(trailing=b"\0"))
    assert result.failure is not None and result.failure.code == "GPU_REPORT_TRAILING_BYTES"
    assert (result.parsed, result.claims) == (None, {})


# --- the FWID extensions --------------------------------------------------------------------------------------


def test_the_blackwell_fwid_is_fwids_0_not_the_last_48_bytes() -> None:
    value = blackwell_extension(b"\xaa" * 48)
    assert fwid.blackwell_fwid(value) == b"\xaa" * 48 and value[-48:] != b"\xaa" * 48


@pytest.mark.parametrize(
    "value",
    [
        b"",
        der(0x04, b"x"),  # not a SEQUENCE
        der(0x30, b"") + b"\0",  # bytes after it
        der(0x30, der(0x02, b"\x02") + der(0x30, b"") + fwid_entry(bytes(48))),  # version 2
        der(0x30, der(0x02, b"\x01") + der(0x30, b"") + der(0x30, der(0x06, b"\x2a") + der(0x04, bytes(48)))),
        der(
            0x30,
            der(0x02, b"\x01")
            + der(0x30, b"")
            + der(0x30, bytes.fromhex("0609608648016503040202") + der(0x04, bytes(47))),
        ),
        b"\x30\x81\x05" + bytes(5),  # a non-minimal length
        b"\x30\x82\x00\x05" + bytes(5),
        b"\x30\x85" + bytes(5),  # too many length bytes
        b"\x30\x05\x02\x01",  # runs past the end
        b"\x1f\x01\x00",  # a multi-byte tag
    ],
)
def test_a_malformed_hopper_extension(value: bytes) -> None:
    with pytest.raises(EvidenceError) as raised:
        fwid.hopper_fwid(value)
    assert raised.value.code == "GPU_FWID_EXTENSION_INVALID"


@pytest.mark.parametrize(
    "value",
    [
        der(0x30, der(0x80, b"NVIDIA")),  # no fwids
        der(0x30, der(0xA6, b"")),  # empty fwids
        der(0x30, der(0xA6, fwid_entry(bytes(48))) + der(0xA6, fwid_entry(bytes(48)))),  # [6] twice
        der(0x30, der(0x04, b"x") + der(0xA6, fwid_entry(bytes(48)))),  # a universal tag in TcbInfo
        der(0x30, der(0xA6, fwid_entry(bytes(48)) + der(0x30, b""))),  # a second FWID that is not one
    ],
)
def test_a_malformed_blackwell_extension(value: bytes) -> None:
    with pytest.raises(EvidenceError) as raised:
        fwid.blackwell_fwid(value)
    assert raised.value.code == "GPU_FWID_EXTENSION_INVALID"


def test_a_leaf_with_both_extensions_is_refused() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "both")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(HOPPER.now)
        .not_valid_after(HOPPER.now.replace(year=2030))
        .add_extension(
            x509.UnrecognizedExtension(fwid.HOPPER_OID, hopper_extension(key.public_key(), bytes(48))), False
        )
        .add_extension(x509.UnrecognizedExtension(fwid.BLACKWELL_OID, blackwell_extension(bytes(48))), False)
        .sign(key, hashes.SHA384())
    )
    with pytest.raises(EvidenceError) as raised:
        fwid.leaf_fwid(cert)
    assert raised.value.code == "GPU_FWID_EXTENSION_INVALID"


def test_ocsp_responses_are_read_by_name() -> None:
    files = {"ocsp/a.der": b"a", "ocsp-b.der": b"b", "cert_chain.pem": b"c", "ocsp.txt": b"d"}
    assert ocsp_responses(files) == (b"b", b"a")
