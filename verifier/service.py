"""The appraisal orchestrator: one request, one appraisal time, numbered steps (ARCHITECTURE.md pipeline).

Untrustworthy evidence never raises: it becomes a signed `contraindicated` result whose findings say why. Only a
malformed request (RequestError), a missing dependency (UnavailableError) or a bug escapes as an exception."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from . import __version__
from .appraisal.binding import check_binding, key_is_bound
from .appraisal.model import (
    CONTRAINDICATED,
    CRYPTO_FAILED,
    Appraisal,
    Claim,
    Finding,
    combine,
)
from .appraisal.policy import Policy, PolicySet, policy_sha256, weakenings
from .appraisal.registry import get_scheme
from .appraisal.scheme import Scheme, Verified
from .background import BestEffortWorker
from .challenges import Challenge, ChallengeStore, ConsumeOutcome
from .clock import Clock
from .collateral.base import CollateralSource, OfflineSource
from .error_catalog import code_info
from .errors import AccessDeniedError, EvidenceError, RequestError, UnavailableError, VerifierError
from .recording import AppraisalRecord, NotRecorded, Recorder, RecordingUnit
from .reference_values.kinds import known_kinds
from .reference_values.model import ReferenceValue, ReferenceValueReader
from .results.cnf import runtime_key_jwk
from .results.ear import DEFAULT_LIFETIME, build_ear
from .results.signer import ResultSigner
from .tee.base import VerifyContext
from .trust.anchors import TrustAnchors
from .workloads.matching import Candidate, select
from .workloads.model import WorkloadCatalog, WorkloadVersion, group_versions

log = logging.getLogger(__name__)

MAX_EVIDENCE_BYTES = 1024 * 1024
MAX_COLLATERAL_BYTES = 4 * 1024 * 1024
MIN_NONCE, MAX_NONCE, DEFAULT_NONCE = 8, 64, 32
MAX_RUNTIME_DATA = 4096


class EvidenceKeeper(Protocol):
    """Keeps recent evidence for impact analysis (`verifier.storage.kept_evidence.SqlKeptEvidence`)."""

    def keep(
        self,
        *,
        received_at: dt.datetime,
        tee: str,
        evidence: bytes,
        collateral: Mapping[str, bytes],
        policy: str | None,
        status: str,
        appraisal_id: str,
        workload: str,
    ) -> str | None:
        """Keep the evidence and collateral of one appraisal; return the kept item's id, or None when keeping is off or
        the item is over the bounds. Raises UnavailableError (DATABASE_*); the service logs it and goes on."""
        ...


@dataclass(frozen=True)
class AppraisalRequest:
    tee: str
    evidence: bytes
    collateral: Mapping[str, bytes] = field(default_factory=dict)
    nonce: bytes | None = None
    runtime_data: bytes | None = None
    policy: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class AppraisalResult:
    appraisal: Appraisal
    token: str
    token_id: str
    appraisal_id: str
    appraised_at: dt.datetime
    # Set when collateral was unavailable and the appraisal is incomplete (never affirming): its error code.
    incomplete: str | None = None


@dataclass(frozen=True)
class _Evaluation:
    """Steps 2-8 of one request: everything but its challenge (step 7a) and its status (step 9). The findings are
    `leading`, then the challenge's, then `trailing`; `complete` describes every workload version matched completely
    (the first is the result's workload)."""

    scheme: Scheme
    verified: Verified
    policy: Policy  # the policy the result is appraised under
    baseline: Mapping[Claim, int]
    matched: tuple[ReferenceValue, ...]
    leading: tuple[Finding, ...]
    trailing: tuple[Finding, ...] = ()
    complete: tuple[dict[str, Any], ...] = ()

    @property
    def workload(self) -> dict[str, Any] | None:
        return self.complete[0] if self.complete else None


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

    def create_challenge(self, size: int = DEFAULT_NONCE) -> Challenge:
        """A new single-use challenge of `size` random bytes (0: DEFAULT_NONCE), valid for `challenge_ttl`. Raises
        RequestError CHALLENGES_DISABLED (no store) or NONCE_SIZE (not MIN_NONCE..MAX_NONCE); the store's errors
        (`ChallengeStore.create`) pass through."""
        if self.challenges is None:
            raise RequestError("CHALLENGES_DISABLED", "this verifier has no challenge store")
        size = size or DEFAULT_NONCE
        if not MIN_NONCE <= size <= MAX_NONCE:
            raise RequestError("NONCE_SIZE", f"nonce size must be {MIN_NONCE}..{MAX_NONCE} bytes, got {size}")
        return self.challenges.create(secrets.token_bytes(size), now=self.clock.now(), ttl=self.challenge_ttl)

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
        policy = self._policy(request.policy)
        # Read before the reference values: the token names a version the values read are at least as new as.
        version = self.reference_set_version() if self.reference_set_version is not None else None
        evaluation = self._evaluate(
            request, policy, at, self.references, freshness=True, allow_incomplete=allow_incomplete
        )
        token_id, appraisal_id = uuid.uuid4().hex, str(uuid.uuid4())
        policy_hash = policy_sha256(evaluation.policy)
        # Steps 7a-10 run in one unit of work, opened only now: no transaction is held while steps 2-8 verify
        # signatures, fetch collateral and read reference values, and nothing else touches the database inside it.
        recorder = self.appraisals if self.appraisals is not None else NotRecorded(self.challenges)
        with recorder.begin() as unit:
            # Step 7a: the challenge is consumed even when the evidence is bad (a nonce is single-use), in the same
            # transaction as the recorded (possibly negative) result. After steps 7b-8: its outcome changes no match.
            shared = self._challenge(unit, request, at) if require_challenge else []
            # Step 9: status is the worst tier of the AR4SI trust vector.
            appraisal, findings = self._conclude(evaluation, shared)
            # Step 10: sign the EAR and record the appraisal; the commit at the end of the block is the recording.
            token = self._token(request, evaluation, appraisal, findings, at, (token_id, policy_hash, version))
            unit.record(
                AppraisalRecord(
                    appraisal_id=appraisal_id,
                    appraised_at=at,
                    tee=appraisal.tee,
                    status=appraisal.status.value,
                    policy_id=evaluation.policy.policy_id,
                    evidence_sha256=hashlib.sha256(request.evidence).hexdigest(),
                    findings=tuple(f.to_json() for f in findings),
                    token_id=token_id,
                    request_id=request.request_id,
                    policy_sha256=policy_hash,
                    reference_set_version=version,
                )
            )
        # Committed: only now may the token leave. Keeping the evidence is optional work outside the unit.
        scheme, verified = evaluation.scheme, evaluation.verified
        keeping = self.appraisals is not None and self.kept is not None
        if keeping and not verified.incomplete and verified.parsed is not None:
            if self.background is not None:  # optional work never delays the answer (issue 11 item 7)
                self.background.submit(lambda: self._keep(request, scheme, verified, appraisal, appraisal_id, at))
            else:
                self._keep(request, scheme, verified, appraisal, appraisal_id, at)
        log.info("appraised %s evidence: %s (%d findings)", appraisal.tee, appraisal.status.value, len(findings))
        return AppraisalResult(appraisal, token, token_id, appraisal_id, at, verified.incomplete)

    def _token(
        self,
        request: AppraisalRequest,
        evaluation: _Evaluation,
        appraisal: Appraisal,
        findings: list[Finding],
        at: dt.datetime,
        ids: tuple[str, str, int | None],
    ) -> str:
        """Step 10: the signed EAR of `appraisal` (`build_ear`); `ids` are the token id, the policy's SHA-256 and
        the reference-set version. Raises UnavailableError SIGNING_KEY_EXPIRED."""
        scheme, verified, policy = evaluation.scheme, evaluation.verified, evaluation.policy
        token_id, policy_hash, version = ids
        claims = build_ear(
            appraisal,
            issuer=self.issuer,
            issued_at=at,
            lifetime=self.token_lifetime,
            nonce=request.nonce,
            token_id=token_id,
            verifier_build=__version__,
            cnf_jwk=_bound_key(request, scheme, verified, findings, policy),
            policy_sha256=policy_hash,
            reference_set_version=version,
        )
        return self.signer.sign(claims)

    def _policy(self, name: str | None) -> Policy:
        """The policy a request is appraised under. Raises AccessDeniedError POLICY_NOT_ALLOWED for a name outside
        `selectable_policies`, RequestError POLICY_UNKNOWN for an unknown one."""
        if name and self.selectable_policies is not None and name not in self.selectable_policies:
            raise AccessDeniedError(
                "POLICY_NOT_ALLOWED", f"requests may not select the policy {name[:64]!r} on this verifier"
            )
        return self.policies.get(name or self.default_policy)

    def reappraise(self, request: AppraisalRequest, *, at: dt.datetime, references: ReferenceValueReader) -> Appraisal:
        """Replay an earlier appraisal for impact analysis: the same steps at the instant `at` against
        `references`, without freshness (no challenge is consumed, no nonce or runtime-data binding is checked:
        that happened when the evidence was first appraised), and nothing is signed, recorded or kept. Missing
        collateral raises UnavailableError."""
        policy = self.policies.get(request.policy or self.default_policy)
        evaluation = self._evaluate(request, policy, at, references, freshness=False, allow_incomplete=False)
        return self._conclude(evaluation, [])[0]

    def _evaluate(
        self,
        request: AppraisalRequest,
        policy: Policy,
        at: dt.datetime,
        references: ReferenceValueReader,
        *,
        freshness: bool,
        allow_incomplete: bool,
    ) -> _Evaluation:
        """Steps 2-8 for one request (step 7a, the challenge, is the caller's: `appraise` consumes it in its unit of
        work). `policy` is the request's (or the server's default); the result is appraised under the policy of the
        workload version it matched, which the request's policy can only tighten. Raises RequestError (unknown
        kind, bounds), UnavailableError (incomplete collateral unless `allow_incomplete`, DATABASE_*)."""
        scheme = get_scheme(request.tee)
        _check_bounds(request)
        # Steps 2-6: parse, collateral, chains to pinned roots at `at`, signature (the TEE package, no policy).
        context = VerifyContext(
            at=at,
            anchors=self.anchors,
            collateral=request.collateral,
            source=self.collateral_source,
            check_crl=self.check_crl,
        )
        verified = scheme.verifier.verify(request.evidence, context)
        if verified.incomplete and not allow_incomplete:
            raise UnavailableError(
                verified.incomplete,
                f"vendor collateral for this {verified.tee} evidence is unavailable; the appraisal cannot be completed",
                retry_after=verified.retry_after,
            )
        if verified.failure is not None:
            freshness_findings = self._policy_freshness(request, scheme, verified, policy) if freshness else []
            leading = (_evidence_finding(scheme, verified.failure),)
            return _Evaluation(scheme, verified, policy, {}, (), leading, tuple(freshness_findings))
        # Steps 7b-8: match the approved workload versions (all-of) and appraise under each one's policy.
        selection = select(
            self._candidates(
                scheme, verified, policy, request.policy is not None, at, references, request if freshness else None
            )
        )
        chosen = selection.chosen
        complete = tuple(c.describe() for c in selection.complete)
        return _Evaluation(
            scheme, verified, chosen.policy, chosen.baseline, chosen.matched, tuple(selection.findings), (), complete
        )

    @staticmethod
    def _conclude(evaluation: _Evaluation, challenge: Sequence[Finding]) -> tuple[Appraisal, list[Finding]]:
        """Step 9: the appraisal of `evaluation` with the findings of its challenge (step 7a); its status is the
        worst tier of the AR4SI trust vector (`combine`). Returns it with its findings in order."""
        findings = [*evaluation.leading, *challenge, *evaluation.trailing]
        vector = combine(dict(evaluation.baseline), findings)
        verified, workload, complete = evaluation.verified, evaluation.workload, evaluation.complete
        appraisal = Appraisal(
            tee=verified.tee,
            status=vector.status,
            trust_vector=vector,
            claims=verified.claims,
            findings=tuple(findings),
            policy_id=evaluation.policy.policy_id,
            matched_reference_values=tuple(f"{r.kind}:{r.label}:{r.id}" for r in evaluation.matched),
            matched_labels=(workload["name"],) if workload is not None else (),
            collateral=tuple(item.to_json() for item in verified.collateral),
            revocation=verified.revocation,
            workload=workload,
            workloads=complete,
        )
        return appraisal, findings

    def _candidates(
        self,
        scheme: Scheme,
        verified: Verified,
        requested: Policy,
        explicit: bool,
        at: dt.datetime,
        reader: ReferenceValueReader,
        request: AppraisalRequest | None,
    ) -> list[Candidate]:
        """Every live workload version of the TEE appraised under its own policy (one candidate without a workload
        when none is registered, so the result says which reference values are missing)."""
        tee = verified.tee
        kinds = [k for k in known_kinds() if scheme.owns_kind(k)]
        references = [r for r in reader.active(kinds, at) if scheme.owns_kind(r.kind)]
        all_members = getattr(reader, "members", None)  # readers without it (impact candidates) give active only
        members = all_members(kinds, at) if callable(all_members) else references
        labels = {r.label for r in (*references, *members) if r.label}
        catalog = dict(self.workloads.metadata(labels)) if self.workloads is not None and labels else {}
        candidates = []
        versions: list[WorkloadVersion | None] = [*group_versions(tee, references, catalog, at, members=members)] or [
            None
        ]
        for version in versions:
            policy, notes = self._policy_for(version, requested, explicit)
            # The version's own kinds are required of the evidence on top of the policy's (the token still names
            # the policy as configured).
            strict = (
                policy
                if version is None
                else replace(
                    policy,
                    required_kinds={
                        **policy.required_kinds,
                        tee: tuple(dict.fromkeys([*policy.required(tee), *sorted(version.required)])),
                    },
                )
            )
            # The scheme's appraiser (appraisal/<kind>.py) under the policy with this version's values.
            baseline, findings, matched = scheme.appraise(
                verified, strict, version.values if version is not None else [], at
            )
            if request is not None:
                findings.extend(self._policy_freshness(request, scheme, verified, policy))
            candidates.append(Candidate(version, policy, baseline, (*findings, *notes), tuple(matched)))
        return candidates

    def _policy_for(
        self, version: WorkloadVersion | None, requested: Policy, explicit: bool
    ) -> tuple[Policy, list[Finding]]:
        """The policy a workload version is appraised under: its own (else the server's default). A policy named
        in the request applies only when it is at least as strict (tighten-only); a looser one is ignored for the
        verdict and said so (POLICY_LOOSER_THAN_WORKLOAD, informational). A workload naming a policy that no longer
        exists is never appraised leniently: the default applies and the result is contraindicated."""
        if explicit and self.operator_policy:  # `verifier verify --policy`: the operator's own choice
            return requested, []
        name = version.policy if version is not None else None
        notes: list[Finding] = []
        try:
            own = self.policies.get(name or self.default_policy)
        except RequestError:
            own = self.policies.get(self.default_policy)
            notes.append(
                Finding(
                    code="WORKLOAD_POLICY_UNKNOWN",
                    claim=Claim.CONFIGURATION,
                    value=CONTRAINDICATED,
                    message=f"workload {version.describe() if version else ''} names an unknown policy",
                    expected="a known policy",
                    actual=str(name)[:100],
                )
            )
        if not explicit or requested.policy_id == own.policy_id:
            return own, notes
        loosened = weakenings(requested, own)
        if not loosened:
            return requested, notes
        notes.append(
            Finding(
                code="POLICY_LOOSER_THAN_WORKLOAD",
                claim=Claim.CONFIGURATION,
                value=0,
                message=f"the requested policy {requested.policy_id!r} is looser than the workload's "
                f"({'; '.join(loosened)[:200]}); the workload's policy applies",
                expected=own.policy_id,
                actual=requested.policy_id,
            )
        )
        return own, notes

    def _keep(
        self,
        request: AppraisalRequest,
        scheme: Scheme,
        verified: Verified,
        appraisal: Appraisal,
        appraisal_id: str,
        at: dt.datetime,
    ) -> None:
        """Best effort: the appraisal is recorded and answered whether or not its evidence can be kept."""
        assert self.kept is not None
        try:
            self.kept.keep(
                received_at=at,
                tee=appraisal.tee,
                evidence=request.evidence,
                collateral=request.collateral,
                policy=appraisal.policy_id,
                status=appraisal.status.value,
                appraisal_id=appraisal_id,
                workload=workload_description(scheme, verified.claims),
            )
        except VerifierError as exc:
            log.warning("could not keep evidence of appraisal %s: %s", appraisal_id, exc)

    def _challenge(self, unit: RecordingUnit, request: AppraisalRequest, at: dt.datetime) -> list[Finding]:
        """Step 7a: consume the request's nonce as a live challenge of this verifier (once, atomically) in `unit`,
        which commits it with the recorded appraisal. Raises RequestError CHALLENGES_DISABLED without a challenge
        store, UnavailableError (DATABASE_*)."""
        if request.nonce is None:
            return []
        if self.challenges is None:
            raise RequestError("CHALLENGES_DISABLED", "this verifier has no challenge store")
        outcome = unit.consume(request.nonce, at=at)
        if outcome is ConsumeOutcome.OK:
            return []
        code = {
            ConsumeOutcome.UNKNOWN: "CHALLENGE_UNKNOWN",
            ConsumeOutcome.EXPIRED: "CHALLENGE_EXPIRED",
            ConsumeOutcome.ALREADY_USED: "CHALLENGE_REPLAYED",
        }[outcome]
        return [
            _fresh(
                code,
                f"the nonce is not a live challenge of this verifier ({outcome.name})",
                "an unused, unexpired challenge",
                request.nonce.hex(),
            )
        ]

    @staticmethod
    def _policy_freshness(
        request: AppraisalRequest, scheme: Scheme, verified: Verified, policy: Policy
    ) -> list[Finding]:
        """Step 7c, per policy: a nonce when the policy requires one, and its binding (and the runtime data's) in
        the evidence as the policy's REPORT_DATA binding says."""
        findings: list[Finding] = []
        if request.nonce is None and policy.require_nonce:
            findings.append(
                _fresh("NONCE_MISSING", "the policy requires a nonce and the request has none", "a nonce", "none")
            )
        if verified.parsed is not None:
            findings.extend(
                check_binding(
                    scheme.binding, verified.claims, request.nonce, request.runtime_data, policy.report_data_binding
                )
            )
        return findings


_BINDING_CODES = frozenset(
    {"NONCE_MISMATCH", "RUNTIME_DATA_MISMATCH", "REPORT_DATA_MISMATCH", "RUNTIME_DATA_NOT_BOUND"}
)


def _bound_key(
    request: AppraisalRequest, scheme: Scheme, verified: Verified, findings: list[Finding], policy: Policy
) -> Any:
    """RFC 7800 `cnf` key: issued only when the signed evidence covers the key (the scheme's binding rule,
    `key_is_bound`): the request's runtime data under SHA-512 REPORT_DATA binding or equal to the Nitro document's
    `public_key`; without runtime data, the key the evidence itself carries (Nitro: the NSM-signed `public_key`).
    Never after a failed verification or any binding finding."""
    if verified.failure is not None or any(f.code in _BINDING_CODES for f in findings):
        return None
    if request.runtime_data is not None:
        if not key_is_bound(
            scheme.binding, verified.claims, request.nonce, request.runtime_data, policy.report_data_binding
        ):
            return None
        return runtime_key_jwk(request.runtime_data)
    doc_key = scheme.binding.evidence_key(verified.claims)
    return runtime_key_jwk(doc_key) if doc_key else None


def workload_description(scheme: Scheme, claims: Mapping[str, Any]) -> str:
    """A short description of the workload: the TEE and a prefix of its main measurement (the scheme's: Nitro
    PCR0, SNP MEASUREMENT, TDX MRTD), else the Nitro module_id."""
    tee, name = scheme.name, scheme.main_measurement
    value: Any = scheme.measurement(claims)
    if isinstance(value, bytes):
        value = value.hex()
    if isinstance(value, str) and value:
        return f"{tee} {name} {value[:16]}"
    module_id = claims.get("module_id")
    if isinstance(module_id, str) and module_id:
        return f"{tee} module {module_id[:150]}"
    return tee


def _check_bounds(request: AppraisalRequest) -> None:
    if not request.evidence:
        raise RequestError("EVIDENCE_EMPTY", "the request carries no evidence")
    if len(request.evidence) > MAX_EVIDENCE_BYTES:
        raise RequestError("EVIDENCE_TOO_LARGE", f"evidence exceeds {MAX_EVIDENCE_BYTES} bytes")
    if sum(len(v) for v in request.collateral.values()) > MAX_COLLATERAL_BYTES:
        raise RequestError("COLLATERAL_TOO_LARGE", f"collateral exceeds {MAX_COLLATERAL_BYTES} bytes")
    if request.nonce is not None and not MIN_NONCE <= len(request.nonce) <= 1024:
        raise RequestError("NONCE_SIZE", f"nonce must be {MIN_NONCE}..1024 bytes, got {len(request.nonce)}")
    if request.runtime_data is not None and len(request.runtime_data) > MAX_RUNTIME_DATA:
        raise RequestError("RUNTIME_DATA_TOO_LARGE", f"runtime data exceeds {MAX_RUNTIME_DATA} bytes")


def _evidence_finding(scheme: Scheme, error: EvidenceError) -> Finding:
    """The finding for evidence that failed parsing or verification: the claim and value `verifier.error_catalog`
    gives its code (AR4SI 99 = cryptographic validation failed; 97 = not recognized; 96 = recognized but
    contraindicated, e.g. revoked or an unsupported TCB). A code the catalog does not know is hardware 96 when the
    scheme lists it in `contraindicated_codes` (a scheme from outside verifier/), else instance-identity 99."""
    info = code_info(error.code)
    if info is not None and info.claim is not None and info.value is not None:
        claim, value = Claim(info.claim), info.value
    elif error.code in scheme.contraindicated_codes:
        claim, value = Claim.HARDWARE, CONTRAINDICATED
    else:
        claim, value = Claim.INSTANCE_IDENTITY, CRYPTO_FAILED
    return Finding(
        code=error.code, claim=claim, value=value, message=error.message, expected=error.expected, actual=error.actual
    )


def _fresh(code: str, message: str, expected: str, actual: str) -> Finding:
    return Finding(
        code=code,
        claim=Claim.INSTANCE_IDENTITY,
        value=CONTRAINDICATED,
        message=message,
        expected=expected,
        actual=actual,
    )
