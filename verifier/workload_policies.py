"""Steps 7b-8 of the pipeline (../shared/ARCHITECTURE.md): every approved workload version of the evidence's TEE
appraised under its own policy, each a `Candidate` that `workloads.matching.select` chooses from (all-of: a version
matches only when every value it names matches). A policy named in a request only tightens a workload's own."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from .appraisal.model import CONTRAINDICATED, Claim, Finding
from .appraisal.policy import Policy, PolicySet, weakenings
from .appraisal.scheme import Scheme, Verified
from .errors import RequestError
from .findings import policy_freshness
from .identity_memo import IdentityMemo
from .reference_values.kinds import kinds_of
from .reference_values.model import ReferenceValueReader
from .requests import AppraisalRequest
from .workloads.matching import Candidate
from .workloads.model import WorkloadCatalog, WorkloadVersion, group_versions

_TIGHTENED: IdentityMemo[Policy] = IdentityMemo()


def _tightened(policy: Policy, tee: str, required: tuple[str, ...]) -> Policy:
    """`policy` also requiring `required` of `tee` (a workload version's own kinds), memoised per policy object:
    building a policy validates it, which costs more than the rest of steps 7b-8."""

    def make() -> Policy:
        kinds = tuple(dict.fromkeys([*policy.required(tee), *required]))
        return replace(policy, required_kinds={**policy.required_kinds, tee: kinds})

    return _TIGHTENED.get(policy, (tee, required), make)


@dataclass(frozen=True)
class WorkloadPolicies:
    """The service's policies and workload metadata, as steps 7b-8 read them."""

    policies: PolicySet
    default_policy: str | None = None
    # The request's policy replaces the workloads' policies (`verifier verify --policy`), never for remote requests.
    operator_policy: bool = False
    workloads: WorkloadCatalog | None = None

    def candidates(
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
        kinds = list(kinds_of(scheme.name))
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
            policy, notes = self.policy_for(version, requested, explicit)
            # The version's own kinds are required of the evidence on top of the policy's (the token still names
            # the policy as configured).
            strict = policy if version is None else _tightened(policy, tee, tuple(sorted(version.required)))
            # The scheme's appraiser (appraisal/<kind>.py) under the policy with this version's values.
            baseline, findings, matched = scheme.appraise(
                verified, strict, version.values if version is not None else [], at
            )
            if request is not None:
                findings.extend(policy_freshness(request, scheme, verified, policy))
            candidates.append(Candidate(version, policy, baseline, (*findings, *notes), tuple(matched)))
        return candidates

    def policy_for(
        self, version: WorkloadVersion | None, requested: Policy, explicit: bool
    ) -> tuple[Policy, list[Finding]]:
        """The policy a workload version is appraised under: its own (else the server's default). A policy named
        in the request applies only when it is at least as strict (tighten-only); a looser one is ignored for the
        verdict and said so (POLICY_LOOSER_THAN_WORKLOAD, informational). A workload naming a policy that no longer
        exists is never appraised leniently: the default applies and the result is contraindicated. Raises RequestError
        POLICY_UNKNOWN when not even the default policy is known."""
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
