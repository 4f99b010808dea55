"""The appraisal orchestrator: one request, one appraisal time, numbered steps (ARCHITECTURE.md pipeline).

Untrustworthy evidence never raises: it becomes a signed `contraindicated` result whose findings say why. Only a
malformed request (RequestError), a missing dependency (UnavailableError) or a bug escapes as an exception."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from . import composite
from .appraisal.model import Appraisal
from .appraisal.policy import Policy, PolicySet, policy_sha256
from .appraisal.registry import get_scheme
from .background import BestEffortWorker
from .blocking import no_blocking
from .challenges import Challenge, ChallengeStore
from .clock import Clock
from .collateral.base import CollateralSource, OfflineSource, guarded
from .errors import AccessDeniedError, RequestError, UnavailableError
from .evaluation import Evaluation, conclude, overall
from .evaluation_claims import ear_claims
from .findings import challenge_outcome, consume_challenge, evidence_finding, policy_freshness
from .ids import uuid7, uuid7_hex
from .keeping import EvidenceKeeper, keep_after, workload_description
from .recording import AppraisalRecord, Done, NotRecorded, Recorder, RecordingUnit, StaleReadError
from .reference_values.model import ReferenceValueReader
from .requests import (
    DEFAULT_NONCE,
    MAX_COLLATERAL_BYTES,
    MAX_EVIDENCE_BYTES,
    MAX_NONCE,
    MAX_RUNTIME_DATA,
    MIN_NONCE,
    AppraisalRequest,
    AppraisalResult,
    Ids,
    Prepared,
    Recorded,
    check_bounds,
)
from .results.ear import DEFAULT_LIFETIME
from .results.signer import ResultSigner
from .tee.base import VerifyContext
from .trust.anchors import TrustAnchors
from .workload_policies import WorkloadPolicies
from .workloads.matching import select
from .workloads.model import WorkloadCatalog

# The request/result types and bounds live in verifier.requests, the added findings in verifier.findings; they are
# re-exported here for the callers that import them from the service.
__all__ = [
    "MAX_COLLATERAL_BYTES",
    "MAX_EVIDENCE_BYTES",
    "MAX_RUNTIME_DATA",
    "AppraisalRequest",
    "AppraisalResult",
    "EvidenceKeeper",
    "VerifierService",
    "evidence_finding",
    "workload_description",
]

log = logging.getLogger(__name__)

STALE_TRIES = 3  # evaluations of one appraisal while the reference set keeps moving under it


class ServiceObserver(Protocol):
    """What the service reports (`verifier.metrics.Metrics` implements it); its methods never raise."""

    def challenge(self, outcome: str) -> None:
        """A challenge was issued ("issued") or a nonce consumed ("consumed", "unknown", "expired", "replayed")."""
        ...

    def appraised(self, appraisal: Appraisal) -> None:
        """An appraisal was recorded and its token is about to be returned."""
        ...


@dataclass
class VerifierService:
    """Composed by `bootstrap`; every dependency is injected."""

    clock: Clock
    anchors: TrustAnchors
    references: ReferenceValueReader
    signer: ResultSigner
    challenges: ChallengeStore | None = None
    # The appraisal unit of work (challenge consumption, appraisal row and audit row in one transaction, on the
    # database `challenges` stores in); None: nothing is recorded and the challenge store consumes on its own.
    appraisals: Recorder | None = None
    issuer: str = "tee-verifier"
    token_lifetime: dt.timedelta = DEFAULT_LIFETIME
    challenge_ttl: dt.timedelta = dt.timedelta(minutes=2)
    policies: PolicySet = field(default_factory=PolicySet)
    collateral_source: CollateralSource = field(default_factory=OfflineSource)
    # Vendor revocation lists are checked unless explicitly turned off (fail closed; policy decides when absent).
    check_crl: bool = True
    # After an appraisal is recorded its evidence is kept here (bounded) for `verifier.impact`.
    kept: EvidenceKeeper | None = None
    # Reads the reference-set version (one row) for the token and the audit log; None: not reported.
    reference_set_version: Callable[[], int] | None = None
    # One appraisal's reads pinned to one reference-set version, which it yields (the hot cache's
    # `verifier.storage.hot_cache.HotCache.pinned`: one freshness read, then policies, reference values and
    # workloads from memory); None: `reference_set_version` is read and each read goes to its store.
    reads: Callable[..., AbstractContextManager[int]] | None = None
    # The policy a request that names none is appraised under (default: the built-in "default").
    default_policy: str | None = None
    # Workload metadata (TEE, policy, revoked versions); None: every label is an implicit workload under the
    # default policy.
    workloads: WorkloadCatalog | None = None
    # Policy names a request may select; None: any known policy. A request naming another is PERMISSION_DENIED
    # (POLICY_NOT_ALLOWED), so a client cannot pick the most lenient policy the verifier happens to know.
    selectable_policies: frozenset[str] | None = None
    # Where best-effort work (keeping evidence) runs; None: inline, before the answer (the CLI, tests).
    background: BestEffortWorker | None = None
    # The request's policy replaces the workloads' policies (the local `verifier verify --policy` of an operator,
    # who could set any workload's policy anyway); never for remote requests.
    operator_policy: bool = False
    # Told of challenges and recorded appraisals (the server's metrics); None: nothing is reported.
    observer: ServiceObserver | None = None

    def create_challenge(self, size: int = DEFAULT_NONCE) -> Challenge:
        """A new single-use challenge of `size` random bytes (0: DEFAULT_NONCE), valid for `challenge_ttl`. Raises
        RequestError CHALLENGES_DISABLED (no store) or NONCE_SIZE (not MIN_NONCE..MAX_NONCE); the store's errors
        (`ChallengeStore.create`) pass through."""
        if self.challenges is None:
            raise RequestError("CHALLENGES_DISABLED", "this verifier has no challenge store")
        size = size or DEFAULT_NONCE
        if not MIN_NONCE <= size <= MAX_NONCE:
            raise RequestError("NONCE_SIZE", f"nonce size must be {MIN_NONCE}..{MAX_NONCE} bytes, got {size}")
        challenge = self.challenges.create(secrets.token_bytes(size), now=self.clock.now(), ttl=self.challenge_ttl)
        if self.observer is not None:
            self.observer.challenge("issued")
        return challenge

    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517 section 5) of the result-signing keys' public halves, to verify result tokens with.
        Never raises."""
        return self.signer.jwks()

    def appraise(
        self, request: AppraisalRequest, *, require_challenge: bool = False, allow_incomplete: bool = False
    ) -> AppraisalResult:
        """Appraise one piece of evidence and record it: the challenge's consumption, the appraisal row and its
        audit entry commit in one unit of work (`appraisals`, ../shared/ARCHITECTURE.md "Recording") before the
        token is returned. When recording fails nothing is committed (the nonce is not spent) and its
        UnavailableError (DATABASE_*) propagates, as does SIGNING_KEY_EXPIRED from the signer. When vendor
        collateral is unavailable the result is incomplete: that raises UnavailableError unless `allow_incomplete`
        (the CLI prints it and exits 3). A malformed request raises RequestError, a policy the request may not
        select AccessDeniedError POLICY_NOT_ALLOWED, a nonce without a challenge store CHALLENGES_DISABLED."""
        # Step 1: resolve the evidence kind and bound the request; one appraisal time for everything below.
        at = self.clock.now()
        policy_name = self._policy_name(request.policy)  # POLICY_NOT_ALLOWED before anything is read
        recorder = self.appraisals if self.appraisals is not None else NotRecorded(self.challenges)
        # With a recorder that checks the reference-set version where it commits, the snapshot held is used without
        # a read, and the appraisal is evaluated again on a fresh read when the version moved (StaleReadError).
        validated = self.reads is not None and recorder.validates_version
        for attempt in range(STALE_TRIES):
            try:
                evaluation, ids, outcome = self._appraise_once(
                    request,
                    at,
                    policy_name,
                    recorder,
                    fresh=attempt > 0 or not validated,
                    validated=validated,
                    challenge=require_challenge,
                    allow_incomplete=allow_incomplete,
                )
                break
            except StaleReadError as stale:
                log.debug("reference set moved to version %d during an appraisal: evaluating again", stale.version)
        else:
            raise UnavailableError("REFERENCE_SET_CHANGING", "the reference values kept changing; try again")
        return self.finish(Prepared(request, at, evaluation, ids, require_challenge), outcome)

    def prepare_inline(self, request: AppraisalRequest, *, require_challenge: bool = False) -> Prepared | None:
        """Steps 1-8 of `appraise` without any I/O (`verifier.blocking`), on the snapshot held in memory, for
        `record_inline` (the server's event loop does this). None when a step would block (a database read, a
        collateral load that is not a memory hit) or the recorder does not check the snapshot's version where it
        commits: `appraise` then does it all. Raises what `appraise` raises before it records."""
        recorder = self.appraisals
        if recorder is None or self.reads is None or not recorder.validates_version:
            return None
        at = self.clock.now()
        policy_name = self._policy_name(request.policy)
        with no_blocking() as guard:
            try:
                with self.reads(fresh=False) as version:
                    policy = self.policies.get(policy_name)
                    evaluation = self._evaluate(
                        request, policy, at, self.references, freshness=True, allow_incomplete=False
                    )
            except Exception:
                if guard.blocked is None:
                    raise
        if guard.blocked is not None:  # even when a handler on the way swallowed WouldBlockError: not used
            return None
        ids = (uuid7_hex(), uuid7(), policy_sha256(evaluation.policy), version)
        return Prepared(request, at, evaluation, ids, require_challenge)

    def record_inline(self, prepared: Prepared, done: Done[Recorded]) -> None:
        """Steps 7a-10 of `prepared` submitted to the recorder (`Recorder.submit`, the group commit's batch) without
        waiting: `done(recorded, None)` once its unit committed, `done(None, error)` when it failed (StaleReadError
        when the reference set moved since the snapshot: `appraise` then evaluates again), called from the thread
        that ran the unit. Pass `recorded` to `finish`. Never raises."""
        assert self.appraisals is not None
        work = partial(
            self._record,
            request=prepared.request,
            evaluation=prepared.evaluation,
            at=prepared.at,
            ids=prepared.ids,
            challenge=prepared.require_challenge,
        )
        self.appraisals.submit(work, done, version=prepared.ids[3])

    def finish(self, prepared: Prepared, outcome: Recorded) -> AppraisalResult:
        """The result of `prepared` once recorded (`appraise`'s): keep the evidence (optional work outside the
        unit), log, report to the observer. Never raises."""
        request, at, evaluation, ids, require_challenge = prepared
        appraisal, findings, token = outcome
        token_id, appraisal_id = ids[0], ids[1]
        # Committed: only now may the token leave. Keeping the evidence is optional work outside the unit.
        scheme, verified, components = evaluation.scheme, evaluation.verified, evaluation.components
        incomplete = verified.incomplete or next((c.incomplete for c in components if c.incomplete), None)
        keeping = self.appraisals is not None and self.kept is not None
        if keeping and not incomplete and verified.parsed is not None:
            assert self.kept is not None  # optional work never delays the answer (issue 11 item 7): `background`
            workload = workload_description(scheme, verified.claims)
            kept = composite.kept_request(request)  # the GPU reports too
            keep_after(self.kept, self.background, kept, workload, appraisal, appraisal_id, at)
        log.info("appraised %s evidence: %s (%d findings)", appraisal.tee, appraisal.status.value, len(findings))
        if self.observer is not None:
            if require_challenge and request.nonce is not None:
                self.observer.challenge(challenge_outcome(appraisal))
            self.observer.appraised(appraisal)
        return AppraisalResult(appraisal, token, token_id, appraisal_id, at, incomplete, components)

    def _appraise_once(
        self,
        request: AppraisalRequest,
        at: dt.datetime,
        policy_name: str | None,
        recorder: Recorder,
        *,
        fresh: bool,
        validated: bool,
        challenge: bool,
        allow_incomplete: bool,
    ) -> tuple[Evaluation, Ids, Recorded]:
        """Steps 2-10 once: evaluate on one pinned snapshot (read afresh when `fresh`), then record in a unit of
        work (checking the snapshot's version there when `validated`). Raises StaleReadError when that check
        failed, and what `appraise` raises."""
        # The policies, values and workloads read below are those of the version the token names (with `reads`,
        # one snapshot of it and nothing else read).
        with self._reads(fresh) as version:
            policy = self.policies.get(policy_name)
            evaluation = self._evaluate(
                request, policy, at, self.references, freshness=True, allow_incomplete=allow_incomplete
            )
        ids = (uuid7_hex(), uuid7(), policy_sha256(evaluation.policy), version)
        # Steps 7a-10 run in one unit of work, opened only now: no transaction is held while steps 2-8 verify
        # signatures, fetch collateral and read reference values, and nothing else touches the database inside it.
        # The unit may be shared with concurrent requests' (group commit): `_record` runs when its batch does.
        outcome = recorder.run(
            partial(self._record, request=request, evaluation=evaluation, at=at, ids=ids, challenge=challenge),
            version=version if validated else None,
        )
        return evaluation, ids, outcome

    def _record(
        self,
        unit: RecordingUnit,
        *,
        request: AppraisalRequest,
        evaluation: Evaluation,
        at: dt.datetime,
        ids: Ids,
        challenge: bool,
    ) -> Recorded:
        """Steps 7a-10 in `unit` (`appraise`): consume the challenge, conclude, sign and record. `ids` are the token
        id, the appraisal id, the policy's SHA-256 and the reference-set version. Returns the appraisal with the
        composite's status (`overall`), its own findings and the token. Raises UnavailableError (DATABASE_*,
        SIGNING_KEY_EXPIRED), RequestError CHALLENGES_DISABLED."""
        token_id, appraisal_id, policy_hash, version = ids
        # Step 7a: the challenge is consumed even when the evidence is bad (a nonce is single-use), in the same
        # transaction as the recorded (possibly negative) result. After steps 7b-8: its outcome changes no match.
        shared = consume_challenge(unit, request, at, store=self.challenges is not None) if challenge else []
        # Step 9: status is the worst tier of the AR4SI trust vector.
        appraisal, findings = conclude(evaluation, shared)
        # Step 10: sign the EAR and record the appraisal; the commit of the unit is the recording.
        ear = ear_claims(request, evaluation, appraisal, findings, at, self.issuer, self.token_lifetime, ids)
        token = self.signer.sign(ear.claims, payload=ear.payload)
        appraisal = overall(appraisal, evaluation.components)  # the worst of the CPU TEE's and its GPUs'
        unit.record(
            AppraisalRecord(
                appraisal_id=appraisal_id,
                appraised_at=at,
                tee=appraisal.tee,
                status=appraisal.status.value,
                policy_id=evaluation.policy.policy_id,
                evidence_sha256=hashlib.sha256(request.evidence).hexdigest(),
                findings=composite.record_findings(findings, evaluation.components),
                token_id=token_id,
                request_id=request.request_id,
                policy_sha256=policy_hash,
                reference_set_version=version,
            )
        )
        return appraisal, findings, token

    def _reads(self, fresh: bool = True) -> AbstractContextManager[int | None]:
        """Step 1's freshness read: `reads` when configured (without a read of its own unless `fresh`), else the
        reference-set version read once (None when not reported). Raises UnavailableError (DATABASE_*)."""
        if self.reads is not None:
            return self.reads(fresh=fresh)
        return nullcontext(self.reference_set_version() if self.reference_set_version is not None else None)

    def _policy_name(self, name: str | None) -> str | None:
        """The name of the policy a request is appraised under (None: the built-in default), looked up by the
        caller (RequestError POLICY_UNKNOWN for an unknown one). Raises AccessDeniedError POLICY_NOT_ALLOWED for a
        name outside `selectable_policies`."""
        if name and self.selectable_policies is not None and name not in self.selectable_policies:
            raise AccessDeniedError(
                "POLICY_NOT_ALLOWED", f"requests may not select the policy {name[:64]!r} on this verifier"
            )
        return name or self.default_policy

    def reappraise(self, request: AppraisalRequest, *, at: dt.datetime, references: ReferenceValueReader) -> Appraisal:
        """Replay an earlier appraisal for impact analysis: the same steps at the instant `at` against
        `references`, without freshness (no challenge is consumed, no nonce or runtime-data binding is checked:
        that happened when the evidence was first appraised), and nothing is signed, recorded or kept. A kept
        composite (`composite.kept_request`) is replayed with its GPUs. Missing collateral raises UnavailableError."""
        request = composite.unpack_kept(request)
        policy = self.policies.get(request.policy or self.default_policy)
        evaluation = self._evaluate(request, policy, at, references, freshness=False, allow_incomplete=False)
        return overall(conclude(evaluation, [])[0], evaluation.components)

    def _evaluate(
        self,
        request: AppraisalRequest,
        policy: Policy,
        at: dt.datetime,
        references: ReferenceValueReader,
        *,
        freshness: bool,
        allow_incomplete: bool,
    ) -> Evaluation:
        """Steps 2-8 for one request (step 7a, the challenge, is the caller's: `appraise` consumes it in its unit of
        work). `policy` is the request's (or the server's default); the result is appraised under the policy of the
        workload version it matched, which the request's policy can only tighten. Raises RequestError (unknown
        kind, bounds), UnavailableError (incomplete collateral unless `allow_incomplete`, DATABASE_*)."""
        scheme = get_scheme(request.tee)
        check_bounds(request)
        composite.check_request(scheme, request)  # GPU reports only beside SEV-SNP or TDX
        # Steps 2-6: parse, collateral, chains to pinned roots at `at`, signature (the TEE package, no policy).
        context = VerifyContext(
            at=at,
            anchors=self.anchors,
            collateral=request.collateral,
            source=guarded(self.collateral_source),  # inline (prepare_inline): an unknown source blocks
            check_crl=self.check_crl,
        )
        verified = scheme.verifier.verify(request.evidence, context)
        if verified.incomplete and not allow_incomplete:
            raise UnavailableError(
                verified.incomplete,
                f"vendor collateral for this {verified.tee} evidence is unavailable; the appraisal cannot be completed",
                retry_after=verified.retry_after,
            )
        gpus = composite.verify_gpus(request, context, allow_incomplete=allow_incomplete)  # each with its collateral
        nonce = request.nonce if freshness else None
        if verified.failure is not None:
            freshness_findings = policy_freshness(request, scheme, verified, policy) if freshness else []
            leading = (evidence_finding(scheme, verified.failure),)
            components = composite.appraise_gpus(gpus, policy, at, references, nonce)
            return Evaluation(scheme, verified, policy, {}, (), leading, tuple(freshness_findings), (), components)
        # Steps 7b-8: match the approved workload versions (all-of) and appraise under each one's policy.
        workload_policies = WorkloadPolicies(self.policies, self.default_policy, self.operator_policy, self.workloads)
        candidates = workload_policies.candidates(
            scheme, verified, policy, request.policy is not None, at, references, request if freshness else None
        )
        selection = select(composite.with_gpus(candidates, gpus, at, references, nonce))  # and the GPU requirement
        chosen = selection.chosen
        complete = tuple(c.describe() for c in selection.complete)
        findings = tuple(selection.findings)
        return Evaluation(
            scheme, verified, chosen.policy, chosen.baseline, chosen.matched, findings, (), complete, chosen.components
        )
