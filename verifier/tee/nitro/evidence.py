"""The Nitro verifier behind the TEE seam: parse and verify the attestation document (no policy), like the SEV-SNP
and TDX verifiers in tee/sevsnp/evidence.py and tee/tdx/evidence.py."""

from __future__ import annotations

from ...errors import EvidenceError, ParseError
from ...trust.chain import VerifiedLinks
from ..base import VerifiedEvidence, VerifyContext
from ..parse_memo import ParseMemo
from . import claims as nitro_claims
from . import parse as nitro_parse
from . import verify as nitro_verify

_PARSED = ParseMemo("Nitro documents", nitro_parse.parse)


class NitroVerifier:
    """AWS Nitro Enclaves attestation documents (COSE_Sign1, aws-nitro-enclaves-nsm-api attestation_process.md)."""

    tee = "nitro"

    def __init__(self, links: VerifiedLinks | None = None) -> None:
        """`links`: the cache of verified signatures (the composition root may share one); a fresh one by default."""
        self.links = links if links is not None else VerifiedLinks()

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence[nitro_parse.NitroEvidence, None]:
        """Parse and verify the document; never raises for bad evidence (the first error is `failure`). Nitro has
        no facts of its own beyond `revocation`: AWS publishes no CRL or OCSP for the Nitro attestation PKI (its
        leaf certificates live for hours)."""
        try:
            parsed = _PARSED(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        claims = nitro_claims.claims(parsed.document)
        failure: EvidenceError | None = None
        try:
            nitro_verify.verify(parsed, ctx.anchors, ctx.at, self.links)
        except EvidenceError as exc:
            failure = exc
        return VerifiedEvidence(self.tee, parsed, claims, failure, revocation="not-applicable")
