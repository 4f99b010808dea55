"""The GPU appraiser (verifier/appraisal/gpu.py) on reports of the fake NVIDIA PKI, RIMs of the fake RIM PKI and
OCSP responses of the fake responder: RIM comparison, revocation under the policy's `gpu.ocsp`, the nonce binding,
and each way the firmware goes unrecognized or contraindicated with its own code."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from tests.fakes.nvidia_pki import FakeNvidiaPki
from tests.fakes.nvidia_rim import FakeRimPki, tamper_hash
from verifier.appraisal import gpu as gpu_appraisal
from verifier.appraisal import registry
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy
from verifier.appraisal.policy_model import GpuRules
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.errors import EvidenceError
from verifier.reference_values.model import ReferenceValue
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.gpu.verify import GpuVerifier
from verifier.trust.anchors import TrustAnchors

DEVICE = FakeNvidiaPki()
RIMS = FakeRimPki()
DRIVER_INDICES = (7, *range(21, 41))
VBIOS_INDICES = (*range(0, 7), *range(8, 13))
BEST_EFFORT = Policy(gpu=GpuRules(ocsp="best-effort"))


def _golden(indices: Sequence[int], **override: list[bytes]) -> dict[int, list[bytes]]:
    values = {block.index - 1: [block.value] for block in DEVICE.blocks()}
    return {i: override.get(str(i), values[i]) for i in indices}


DRIVER_RIM = RIMS.mint(version="550.90.07", active=_golden(DRIVER_INDICES))
VBIOS_RIM = RIMS.mint(version="96.00.9F.00.01", active=_golden(VBIOS_INDICES))


def _rim_ocsp(**status: str) -> dict[str, bytes]:
    """Good OCSP responses (unless `status` says) for the RIM signing chain: signer, L3 CA, product CA."""
    from tests.fakes.nvidia_ocsp import Issued, ocsp_response

    pairs = {
        "leaf": (RIMS.leaf, Issued(RIMS.l3_ca, RIMS.l3_key)),
        "l3": (RIMS.l3_ca, Issued(RIMS.product_ca, RIMS.product_key)),
        "product": (RIMS.product_ca, Issued(RIMS.root, RIMS.root_key)),
    }
    return {
        f"ocsp-rim-{name}.der": ocsp_response(cert, issuer, status=status.get(name, "good"))  # type: ignore[arg-type]
        for name, (cert, issuer) in pairs.items()
    }


def _anchors() -> TrustAnchors:
    return TrustAnchors(pins={**DEVICE.pins, **RIMS.pins})


def _verify(
    evidence: bytes | None = None, files: Mapping[str, bytes] | None = None, *, ocsp: bool = True, source: Any = None
) -> VerifiedEvidence:
    """`evidence` (a fresh report by default) with both RIMs, `files` replacing or adding (empty bytes: removed),
    the device chain and, with `ocsp`, good OCSP responses for every chain."""
    collateral = {"driver_rim.xml": DRIVER_RIM, "vbios_rim.xml": VBIOS_RIM, **(files or {})}
    collateral = {name: data for name, data in collateral.items() if data}
    if ocsp:
        collateral = {**DEVICE.ocsp(), **_rim_ocsp(), **collateral}
    collateral.update(DEVICE.collateral())
    extra = {"source": source} if source is not None else {}
    ctx = VerifyContext(at=DEVICE.now, anchors=_anchors(), collateral=collateral, **extra)
    return GpuVerifier().verify(evidence or DEVICE.mint(), ctx)


def _appraise(verified: VerifiedEvidence, policy: Policy | None = None) -> tuple[Tier, list[Finding], Any]:
    baseline, findings, _ = gpu_appraisal.appraise(verified, policy or Policy(), [], DEVICE.now)
    vector = combine(baseline, findings)
    return vector.status, findings, vector


def _codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_matching_rims_and_good_ocsp_affirm() -> None:
    verified = _verify()
    assert verified.failure is None and verified.incomplete is None and verified.revocation == "checked"
    status, findings, vector = _appraise(verified)
    assert (status, findings) == (Tier.AFFIRMING, [])
    assert vector.to_json() == {"instance-identity": 2, "hardware": 2, "executables": 2}
    items = [(c.item, c.source) for c in verified.collateral]
    assert items == [
        ("nvidia.cert_chain", "request"),
        ("nvidia.ocsp", "request"),
        ("nvidia.rim.driver", "request"),
        ("nvidia.rim.vbios", "request"),
    ]
    assert verified.collateral[1].next_update == "2025-03-02T00:00:00Z"  # the responses' nextUpdate


def test_unavailable_ocsp_fails_closed_by_default_and_is_a_note_when_best_effort() -> None:
    verified = _verify(ocsp=False)
    assert verified.failure is None and verified.revocation == "unavailable"
    status, findings, _ = _appraise(verified)
    assert status is Tier.CONTRAINDICATED and _codes(findings) == ["GPU_OCSP_UNAVAILABLE"]
    assert (findings[0].claim, findings[0].value) == (Claim.HARDWARE, CONTRAINDICATED)
    status, findings, _ = _appraise(verified, BEST_EFFORT)
    assert status is Tier.AFFIRMING and _codes(findings) == ["GPU_REVOCATION_UNCHECKED"]
    assert findings[0].value == 0 and "unavailable" in findings[0].actual


def test_a_revoked_device_certificate_is_contraindicated() -> None:
    from verifier.findings import evidence_finding

    pki = FakeNvidiaPki()  # its own: a revoked status is cached by the verifier that saw it
    files = pki.ocsp({"ica": "revoked"})
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral(**files))
    verifier = GpuVerifier()
    verified = verifier.verify(pki.mint(), ctx)
    assert verified.failure is not None and verified.failure.code == "GPU_CERT_REVOKED"
    assert "Provisioner ICA" in verified.failure.message
    finding = evidence_finding(registry.get_scheme("gpu"), verified.failure)
    assert (finding.claim, finding.value) == (Claim.INSTANCE_IDENTITY, CONTRAINDICATED)
    held = pki.ocsp({"brom": "revoked"}, reason=x509.ReasonFlags.certificate_hold)
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral(**held))
    failure = GpuVerifier().verify(pki.mint(), ctx).failure
    assert failure is not None and failure.code == "GPU_CERT_REVOKED"  # certificateHold included
    # the verifier remembers a revoked status: without responses it is still revoked
    failure = verifier.verify(
        pki.mint(), VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral())
    ).failure
    assert failure is not None and failure.code == "GPU_CERT_REVOKED"


def test_a_rim_for_another_version_is_contraindicated() -> None:
    other = RIMS.mint(version="550.54.15", active=_golden(DRIVER_INDICES))
    status, findings, _ = _appraise(_verify(files={"driver_rim.xml": other}))
    assert status is Tier.CONTRAINDICATED and _codes(findings) == ["GPU_RIM_VERSION_MISMATCH"]
    assert (findings[0].expected, findings[0].actual, findings[0].claim) == (
        "550.54.15",
        "550.90.07",
        Claim.EXECUTABLES,
    )


def test_the_vbios_version_is_compared_ignoring_case() -> None:
    lower = RIMS.mint(version="96.00.9f.00.01", active=_golden(VBIOS_INDICES))
    assert _appraise(_verify(files={"vbios_rim.xml": lower}))[0] is Tier.AFFIRMING


def test_a_rim_with_a_broken_signature_is_contraindicated() -> None:
    broken = tamper_hash(DRIVER_RIM, 7)
    status, findings, _ = _appraise(_verify(files={"driver_rim.xml": broken}))
    assert status is Tier.CONTRAINDICATED and _codes(findings) == ["GPU_RIM_SIGNATURE_INVALID"]
    assert "driver RIM" in findings[0].message and findings[0].value == CONTRAINDICATED


def test_a_rim_under_a_foreign_root_is_contraindicated() -> None:
    foreign = RIMS.foreign().mint(version="96.00.9F.00.01", active=_golden(VBIOS_INDICES))
    status, findings, _ = _appraise(_verify(files={"vbios_rim.xml": foreign}))
    assert status is Tier.CONTRAINDICATED and _codes(findings) == ["GPU_RIM_CHAIN_INVALID"]


def test_a_measurement_mismatch_names_the_block_and_alternatives_are_honoured() -> None:
    wrong = _golden(VBIOS_INDICES, **{"3": [b"\x01" * 48, b"\x02" * 48]})
    status, findings, vector = _appraise(
        _verify(files={"vbios_rim.xml": RIMS.mint(version="96.00.9F.00.01", active=wrong)})
    )
    assert status is Tier.CONTRAINDICATED and _codes(findings) == ["GPU_MEASUREMENT_MISMATCH"]
    assert "block 4 (RIM index 3, vbios RIM)" in findings[0].message
    assert findings[0].expected == f"{'01' * 48} | {'02' * 48}" and findings[0].actual == DEVICE.blocks()[3].value.hex()
    assert vector.to_json()["executables"] == CONTRAINDICATED
    right = _golden(VBIOS_INDICES, **{"3": [b"\x01" * 48, DEVICE.blocks()[3].value]})
    assert _appraise(_verify(files={"vbios_rim.xml": RIMS.mint(version="96.00.9F.00.01", active=right)}))[1] == []


def test_an_absent_block_and_an_index_conflict() -> None:
    report = DEVICE.mint(blocks=DEVICE.blocks(40))  # blocks 1..40: RIM index 40 (block 41) is absent
    _, findings, _ = _appraise(_verify(report))
    assert _codes(findings) == ["GPU_MEASUREMENT_MISMATCH"] and findings[0].actual == "absent"
    both = RIMS.mint(version="96.00.9F.00.01", active=_golden((*VBIOS_INDICES, 7)))
    _, findings, _ = _appraise(_verify(files={"vbios_rim.xml": both}))
    assert _codes(findings) == ["GPU_RIM_INDEX_CONFLICT"] and findings[0].actual == "7"


def test_more_golden_entries_than_blocks() -> None:
    report = DEVICE.mint(blocks=DEVICE.blocks(30))
    _, findings, _ = _appraise(_verify(report))
    assert "GPU_RIM_TOO_MANY_MEASUREMENTS" in _codes(findings)


def test_a_missing_rim_is_never_affirming() -> None:
    offline = _verify(files={"driver_rim.xml": b""})
    assert offline.incomplete == "COLLATERAL_OFFLINE"
    status, findings, _ = _appraise(offline)
    assert status is Tier.CONTRAINDICATED and _codes(findings) == ["GPU_RIM_MISSING"]
    assert findings[0].expected == "NV_GPU_DRIVER_GH100_550.90.07" and findings[0].actual == "COLLATERAL_OFFLINE"
    not_found = _verify(files={"driver_rim.xml": b""}, source=Source({}))
    assert not_found.incomplete is None and _codes(_appraise(not_found)[1]) == ["GPU_RIM_MISSING"]


def test_rims_come_from_the_source_by_id_and_a_bad_one_is_rejected() -> None:
    source = Source({"NV_GPU_DRIVER_GH100_550.90.07": DRIVER_RIM, "NV_GPU_VBIOS_1010_0200_882_96009F0001": VBIOS_RIM})
    verified = _verify(files={"driver_rim.xml": b"", "vbios_rim.xml": b""}, source=source)
    assert _appraise(verified)[0] is Tier.AFFIRMING
    assert [c.source for c in verified.collateral] == ["request", "request", "fake", "fake"]
    bad = Source({"NV_GPU_DRIVER_GH100_550.90.07": tamper_hash(DRIVER_RIM, 7)})
    verified = _verify(files={"driver_rim.xml": b""}, source=bad)
    assert _codes(_appraise(verified)[1]) == ["GPU_RIM_SIGNATURE_INVALID"] and bad.rejected == [
        "GPU_RIM_SIGNATURE_INVALID"
    ]


def test_a_revoked_rim_signer_makes_that_rim_unusable() -> None:
    _, findings, _ = _appraise(_verify(files=_rim_ocsp(leaf="revoked")), BEST_EFFORT)
    assert "GPU_CERT_REVOKED" in _codes(findings)
    assert next(f for f in findings if f.code == "GPU_CERT_REVOKED").claim is Claim.EXECUTABLES


def test_failed_or_foreign_evidence_is_never_appraised() -> None:
    failed = VerifiedEvidence("gpu", None, {}, EvidenceError("GPU_SIGNATURE_INVALID", "x"))
    baseline, findings, _ = gpu_appraisal.appraise(failed, Policy(), [], DEVICE.now)
    assert baseline == {} and _codes(findings) == ["GPU_EVIDENCE_UNVERIFIED"]
    good = _verify()
    stripped = dataclasses.replace(good, facts=None)
    assert _codes(gpu_appraisal.appraise(stripped, Policy(), [], DEVICE.now)[1]) == ["GPU_EVIDENCE_UNVERIFIED"]


# --- the nonce binding and the service -------------------------------------------------------------------------

BINDING = gpu_appraisal.SpdmNonceBinding()


def test_the_binding_rule() -> None:
    claims = {"nonce": "07" * 32}
    assert BINDING.check(claims, b"\x07" * 32, None, "sha512") == []
    assert _codes(BINDING.check(claims, b"\x08" * 32, None, "sha512")) == ["NONCE_MISMATCH"]
    assert _codes(BINDING.check(claims, b"\x07" * 33, None, "raw")) == ["NONCE_MISMATCH"]
    assert _codes(BINDING.check(claims, b"\x07" * 32, b"key", "sha512")) == ["RUNTIME_DATA_NOT_BOUND"]
    assert not BINDING.covers_key(claims, b"\x07" * 32, b"key", "sha512") and BINDING.evidence_key(claims) is None


class Source:
    """A collateral source serving RIMs by id (COLLATERAL_NOT_FOUND otherwise), remembering rejections."""

    def __init__(self, rims: Mapping[str, bytes]) -> None:
        self.rims, self.rejected = dict(rims), list[str]()

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        data = self.rims.get(key.param("id")) if key.kind == "nvidia.rim" else None
        if data is None:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", key.cache_id())
        return CollateralItem(key, data, at, None, "fake")

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected.append(reason)


class NoReferences:
    def active(self, kinds: Sequence[str], at: dt.datetime) -> list[ReferenceValue]:
        return []


class Clock:
    def now(self) -> dt.datetime:
        return DEVICE.now


def _service() -> VerifierService:
    return VerifierService(
        clock=Clock(), anchors=_anchors(), references=NoReferences(), signer=ResultSigner([ephemeral_key()])
    )


def _request(**kw: Any) -> AppraisalRequest:
    files = {
        "driver_rim.xml": DRIVER_RIM,
        "vbios_rim.xml": VBIOS_RIM,
        **DEVICE.collateral(**DEVICE.ocsp(), **_rim_ocsp()),
    }
    return AppraisalRequest(
        tee=kw.pop("tee", "gpu"),
        evidence=kw.pop("evidence", DEVICE.mint()),
        collateral=kw.pop("collateral", files),
        **kw,
    )


def test_through_the_service_with_the_nonce() -> None:
    nonce = b"\x07" * 32
    result = _service().appraise(_request(tee="nvidia-gpu", evidence=DEVICE.mint(nonce=nonce), nonce=nonce))
    appraisal = result.appraisal
    assert appraisal.tee == "gpu" and appraisal.status is Tier.AFFIRMING, appraisal.findings
    assert appraisal.revocation == "checked" and appraisal.claims["nonce"] == nonce.hex()
    other = _service().appraise(_request(evidence=DEVICE.mint(nonce=nonce), nonce=b"\x08" * 32)).appraisal
    assert _codes(list(other.findings)) == ["NONCE_MISMATCH"] and other.status is Tier.CONTRAINDICATED
    keyed = _service().appraise(_request(evidence=DEVICE.mint(nonce=nonce), nonce=nonce, runtime_data=b"k" * 65))
    assert _codes(list(keyed.appraisal.findings)) == ["RUNTIME_DATA_NOT_BOUND"]


def test_the_scheme_is_registered_and_detects_its_evidence() -> None:
    from verifier.appraisal.detect import detect_tee

    scheme = registry.get_scheme("NVIDIA-GPU")
    assert scheme.name == "gpu" and scheme.verifier.tee == "gpu"
    assert detect_tee(DEVICE.mint()) == "gpu" and detect_tee(FakeNvidiaPki("blackwell").mint()) == "gpu"
    assert scheme.looks_like(DEVICE.mint(request_version=0x10)) and not scheme.looks_like(b"\x11\xe0")
    assert scheme.measurement({"fwid": "ab" * 48}) == "ab" * 48
    assert AFFIRMING == 2
