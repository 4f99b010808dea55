"""Step 10's claims: the EAR (draft-ietf-rats-ear-04, `verifier.results.ear`) of one concluded appraisal."""

from __future__ import annotations

import datetime as dt

from . import __version__
from .appraisal.model import Appraisal, Finding
from .evaluation import Evaluation
from .findings import bound_key
from .requests import AppraisalRequest
from .results.ear import EncodedEar, encode_ear


def ear_claims(
    request: AppraisalRequest,
    evaluation: Evaluation,
    appraisal: Appraisal,
    findings: list[Finding],
    at: dt.datetime,
    issuer: str,
    lifetime: dt.timedelta,
    ids: tuple[str, str, str, int | None],
) -> EncodedEar:
    """The EAR claims of `appraisal` and their JSON, to be signed (`encode_ear`, a submodule per GPU of a composite);
    `ids` are the token id, the appraisal id, the policy's SHA-256 and the reference-set version. `cnf` only when
    the evidence binds the workload's key (`findings.bound_key`). Raises VerifierError EAR_CLAIMS_NOT_JSON (a bug)."""
    token_id, _, policy_hash, version = ids
    every = [*findings, *(f for c in evaluation.components for f in c.appraisal.findings)]
    return encode_ear(
        appraisal,
        issuer=issuer,
        issued_at=at,
        lifetime=lifetime,
        nonce=request.nonce,
        token_id=token_id,
        verifier_build=__version__,
        cnf_jwk=bound_key(request, evaluation.scheme, evaluation.verified, every, evaluation.policy),
        policy_sha256=policy_hash,
        reference_set_version=version,
        components=evaluation.components,
    )
