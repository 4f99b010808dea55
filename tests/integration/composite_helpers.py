"""Composite evidence test helpers: a stand-in GPU scheme (registered as "gpu" for the test's duration), GPU reports
it accepts, and CPU evidence (fake AMD / Intel PKIs) whose REPORT_DATA binds them.

The stand-in keeps the real report's shape where the composite rules read it: the SPDM GET_MEASUREMENTS request
(37 bytes: version 0x11, code 0xE0, the verifier's 32-byte nonce at offset 4) comes first, so the claim `nonce` is
bytes 4..35. After it: a device id, a firmware tag (1 = firmware its RIMs approve) and an HMAC standing in for the
device signature (another key = another vendor's device). The real scheme (tee/gpu/, tests/fakes/nvidia_pki.py)
checks far more; what the composite rules need from a GPU scheme is its verdict and its `nonce` claim."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from verifier.appraisal import registry
from verifier.appraisal.binding import DocumentBinding, composite_report_data
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, Claim, Finding
from verifier.appraisal.scheme import TeeScheme
from verifier.errors import EvidenceError
from verifier.requests import GpuEvidence
from verifier.tee.base import VerifiedEvidence, VerifyContext

DEVICE_KEY = b"fake-nvidia-device-key"
CHAIN = b"-----BEGIN CERTIFICATE-----\nfake GH100 chain\n-----END CERTIFICATE-----\n"
MAGIC = b"FAKEGPU1"
APPROVED, UNAPPROVED = 1, 2
MEASUREMENT = hashlib.sha384(b"measurement").digest()  # FakeAmdPki's default launch measurement


def gpu_report(nonce: bytes, *, device: int = 1, firmware: int = APPROVED, key: bytes = DEVICE_KEY) -> bytes:
    """A stand-in GPU report for `nonce` (32 bytes) from GPU `device` (module docstring)."""
    request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce.ljust(32, b"\0")[:32] + b"\x00"
    body = request + MAGIC + device.to_bytes(16, "big") + bytes([firmware])
    return body + hmac.new(key, body, hashlib.sha384).digest()


def gpu(nonce: bytes, **kw: Any) -> GpuEvidence:
    return GpuEvidence(gpu_report(nonce, **kw), {"cert_chain.pem": CHAIN})


class FakeGpuVerifier:
    tee = "gpu"

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        if len(evidence) != 37 + len(MAGIC) + 17 + 48 or evidence[37:45] != MAGIC:
            return VerifiedEvidence("gpu", None, {}, EvidenceError("GPU_REPORT_TRUNCATED", "not a stand-in report"))
        body, tag = evidence[:-48], evidence[-48:]
        device = int.from_bytes(body[45:61], "big")
        claims = {
            "nonce": body[4:36].hex(),
            "spdm_version": "1.1",
            "driver_version": "550.90.07",
            "vbios_version": "96.00.9f.00.01",
            "architecture": "hopper",
            "hwmodel": "GH100 A01 GSP BROM",
            "ueid": str(10**40 + device),
            "number_of_blocks": 64,
            "measurements": {str(i): hashlib.sha384(bytes([i, body[61]])).hexdigest() for i in range(1, 65)},
        }
        if ctx.collateral.get("cert_chain.pem") != CHAIN:
            failure = EvidenceError("GPU_CERT_CHAIN_MISSING", "no device certificate chain")
            return VerifiedEvidence("gpu", body, claims, failure)
        if not hmac.compare_digest(tag, hmac.new(DEVICE_KEY, body, hashlib.sha384).digest()):
            return VerifiedEvidence("gpu", body, claims, EvidenceError("GPU_SIGNATURE_INVALID", "bad signature"))
        return VerifiedEvidence("gpu", body, claims, revocation="checked", facts={"firmware": body[61]})


def appraise_fake_gpu(verified: VerifiedEvidence, policy: Any, references: Sequence[Any], at: Any) -> Any:
    baseline = {Claim.INSTANCE_IDENTITY: AFFIRMING, Claim.HARDWARE: AFFIRMING}
    findings = []
    if (verified.facts or {}).get("firmware") == APPROVED:
        baseline[Claim.EXECUTABLES] = AFFIRMING
    else:
        findings.append(
            Finding(
                "GPU_MEASUREMENT_MISMATCH",
                Claim.EXECUTABLES,
                CONTRAINDICATED,
                "block 10 is none of the RIM's alternatives",
                "7f3e9382" * 12,
                "059b32e7" * 12,
            )
        )
    return baseline, findings, []


FAKE_GPU = TeeScheme(
    "gpu",
    FakeGpuVerifier(),
    appraise_fake_gpu,
    DocumentBinding(),
    "fwid",
    aliases=("nvidia-gpu",),
    proto_kind="EVIDENCE_KIND_NVIDIA_GPU",
)


@contextmanager
def fake_gpu_scheme() -> Iterator[TeeScheme]:
    """The stand-in registered as "gpu" (the real scheme, if any, put back afterwards)."""
    real = registry._SCHEMES.get("gpu")
    registry.unregister("gpu")
    registry.register(FAKE_GPU)
    try:
        yield FAKE_GPU
    finally:
        registry.unregister("gpu")
        if real is not None:
            registry.register(real)


class WorkloadKey:
    """The CVM's key: a P-256 pair whose public key (DER SPKI) is the runtime data bound into REPORT_DATA."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def decrypt(self, token: str) -> bytes:
        from jwcrypto import jwe, jwk

        key = jwk.JWK.from_pem(
            self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        message = jwe.JWE()
        message.deserialize(token, key=key)
        return bytes(message.payload)


def snp_files(pki: FakeAmdPki) -> dict[str, bytes]:
    return {
        "vcek.der": pki.vcek.public_bytes(Encoding.DER),
        "ask.pem": pki.ask.public_bytes(Encoding.PEM),
        "ark.pem": pki.ark.public_bytes(Encoding.PEM),
    }


def snp_report(pki: FakeAmdPki, nonce: bytes, runtime: bytes | None, gpus: Sequence[GpuEvidence]) -> bytes:
    """A fake SEV-SNP report whose REPORT_DATA binds `nonce`, `runtime` and the GPU reports (the composite rule)."""
    return pki.report(report_data=composite_report_data(nonce, runtime, [g.evidence for g in gpus]))


# --- the real GPU scheme (tee/gpu/) on the fake NVIDIA device, RIM and OCSP PKIs ------------------------------------

DRIVER_INDICES = (7, *range(21, 41))  # the RIM indices an H100 driver RIM covers (../shared/vectors/README.md)
VBIOS_INDICES = (*range(0, 7), *range(8, 13))


class NvidiaWorld:
    """`devices` fake NVIDIA GPUs (one device PKI each, every root pinned, as NVIDIA's one root would be), NVIDIA-signed
    RIMs for the driver and VBIOS their reports run, and good OCSP responses for every chain."""

    def __init__(self, now: Any, devices: int = 3) -> None:
        from tests.fakes.nvidia_ocsp import Issued, ocsp_response
        from tests.fakes.nvidia_pki import FakeNvidiaPki
        from tests.fakes.nvidia_rim import FakeRimPki

        self.devices = [FakeNvidiaPki(now=now) for _ in range(devices)]
        self.rims = FakeRimPki(now=now)
        golden = {block.index - 1: [block.value] for block in FakeNvidiaPki.blocks()}
        self.driver_rim = self.rims.mint(version="550.90.07", active={i: golden[i] for i in DRIVER_INDICES})
        self.vbios_rim = self.rims.mint(version="96.00.9F.00.01", active={i: golden[i] for i in VBIOS_INDICES})
        rims = self.rims
        pairs = {
            "leaf": (rims.leaf, Issued(rims.l3_ca, rims.l3_key)),
            "l3": (rims.l3_ca, Issued(rims.product_ca, rims.product_key)),
            "product": (rims.product_ca, Issued(rims.root, rims.root_key)),
        }
        self.rim_ocsp = {f"ocsp-rim-{n}.der": ocsp_response(c, i) for n, (c, i) in pairs.items()}  # type: ignore[arg-type]
        self.device_ocsp = [device.ocsp() for device in self.devices]

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        roots = frozenset().union(*(device.pins["nvidia-device"] for device in self.devices))
        return {"nvidia-device": roots, **self.rims.pins}

    def gpu(self, nonce: bytes, *, device: int = 0, approved: bool = True) -> GpuEvidence:
        """A report of GPU `device` for `nonce` with its collateral; not `approved`: SPDM block 10 (VBIOS RIM index 9)
        differs from the RIM, as a VBIOS NVIDIA has not measured would."""
        pki = self.devices[device]
        blocks = pki.blocks()
        if not approved:
            blocks[9] = type(blocks[9])(10, hashlib.sha384(b"unmeasured vbios").digest())
        evidence = pki.mint(nonce=nonce, blocks=blocks, responder_nonce=hashlib.sha256(b"gpu%d" % device).digest())
        collateral = {**self.device_ocsp[device], **self.rim_ocsp, **pki.collateral()}
        return GpuEvidence(evidence, {**collateral, "driver_rim.xml": self.driver_rim, "vbios_rim.xml": self.vbios_rim})
