"""TEE verifiers by evidence kind. SEV-SNP and TDX register here beside Nitro."""

from __future__ import annotations

from ..errors import EvidenceError, ParseError, RequestError
from ..trust.chain import VerifiedLinks
from .base import TeeVerifier, VerifiedEvidence, VerifyContext
from .nitro import claims as nitro_claims
from .nitro import parse as nitro_parse
from .nitro import verify as nitro_verify
from .sevsnp.evidence import SnpVerifier
from .tdx.evidence import TdxVerifier


class NitroVerifier:
    """AWS Nitro Enclaves attestation documents (COSE_Sign1, aws-nitro-enclaves-nsm-api attestation_process.md)."""

    tee = "nitro"

    def __init__(self, links: VerifiedLinks | None = None) -> None:
        """`links`: the cache of verified signatures (the composition root may share one); a fresh one by default."""
        self.links = links if links is not None else VerifiedLinks()

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        try:
            parsed = nitro_parse.parse(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        claims = nitro_claims.claims(parsed.document)
        # AWS publishes no CRL or OCSP for the Nitro attestation PKI (its leaf certificates live for hours).
        details = {"revocation": "not-applicable"}
        try:
            nitro_verify.verify(parsed, ctx.anchors, ctx.at, self.links)
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, parsed, claims, exc, details)
        return VerifiedEvidence(self.tee, parsed, claims, None, details)


_VERIFIERS: dict[str, TeeVerifier] = {"nitro": NitroVerifier(), "snp": SnpVerifier(), "tdx": TdxVerifier()}
ALIASES = {"aws-nitro": "nitro", "sev-snp": "snp", "sevsnp": "snp", "intel-tdx": "tdx"}


def tee_names() -> list[str]:
    return sorted(_VERIFIERS)


def get_verifier(tee: str) -> TeeVerifier:
    name = ALIASES.get(tee.lower(), tee.lower())
    try:
        return _VERIFIERS[name]
    except KeyError:
        raise RequestError(
            "EVIDENCE_KIND_UNSUPPORTED", f"evidence kind {tee!r} is not supported (supported: {tee_names()})"
        ) from None
