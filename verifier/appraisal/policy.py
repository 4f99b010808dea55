"""Named appraisal policies. The default policy is the contract of ARCHITECTURE.md: debug forbidden, the TEE's
measurement reference values required, the vendor's TCB checks, other reference-value kinds checked only when
values of that kind are registered. Named policies may only tighten it; they come built in, from a JSON file
(`--policy-file`, schema in README "Policies") or from the database (`verifier policy set`).

Lookup order for a name: the database, then the policy file, then the built-ins. The database may define new
names freely (anything `policy_from_json` accepts, the same schema as a policy-file entry), and may redefine a
built-in name ("default", "nonce-required") only when the result is at least as strict as the built-in
(`weakenings` must be empty): `policy_from_json` alone does not guarantee that, since a file policy may e.g. accept
a TDX status as a warning or fail open on an unavailable CRL. A redefinition that loosens a built-in is refused
when set, and ignored (the built-in applies, with an error logged) if it is found in the database anyway.

The policy itself is a strict pydantic model declared once (`policy_model`: `Policy`, `SnpRules`, `TdxRules`);
`policy_json` reads and writes its JSON form: `policy_to_json` is the canonical JSON form (the inverse of
`policy_from_json` for policies it produced), `policy_sha256` the SHA-256 of that JSON with sorted keys and no
whitespace, carried in result tokens. `weakenings`, the tighten-only rule, is the one rule written by hand: it
compares two policies field by field."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, RequestError
from .policy_json import canonical_json, policy_from_json, policy_json_schema, policy_sha256, policy_to_json
from .policy_model import (
    DEFAULT_POLICY_ID,
    TCB_COMPONENTS,
    TCB_FIELDS,
    TDX_STATUSES,
    Policy,
    SnpRules,
    TdxRules,
)

__all__ = [
    "BUILT_IN_NAMES",
    "DEFAULT_POLICY_ID",
    "TCB_COMPONENTS",
    "TCB_FIELDS",
    "TDX_STATUSES",
    "Policy",
    "PolicySet",
    "PolicySource",
    "SnpRules",
    "TdxRules",
    "canonical_json",
    "get_policy",
    "policy_from_json",
    "policy_json_schema",
    "policy_sha256",
    "policy_to_json",
    "weakenings",
]

log = logging.getLogger(__name__)

_BUILT_IN: dict[str, Policy] = {
    DEFAULT_POLICY_ID: Policy(),
    "nonce-required": Policy(policy_id="nonce-required", require_nonce=True),
}


BUILT_IN_NAMES = frozenset(_BUILT_IN)


class PolicySource(Protocol):
    """Named policies kept elsewhere (the database: `verifier.storage.policies.SqlPolicies`)."""

    def get(self, name: str) -> Policy | None:
        """The stored policy named `name`, or None when there is none. Implementations raise UnavailableError
        (DATABASE_UNAVAILABLE, DATABASE_BUSY...) when the database cannot answer."""
        ...

    def names(self) -> list[str]:
        """The names of every stored policy. Implementations raise UnavailableError (DATABASE_*) when the database
        cannot answer."""
        ...


class PolicySet:
    """The policies a verifier knows, by name: the database (`store`), then `policies` (a file), then built-ins."""

    def __init__(self, policies: Mapping[str, Policy] | None = None, *, store: PolicySource | None = None) -> None:
        """Raises ConfigError("POLICY_LOOSENS_BUILT_IN") when `policies` redefines a built-in name with a policy that
        weakens it: the same rule as the database path (`verifier policy set`), so no source can loosen `default`."""
        for name, policy in (policies or {}).items():
            loosened = weakenings(policy, _BUILT_IN[name]) if name in _BUILT_IN else []
            if loosened:
                raise ConfigError(
                    "POLICY_LOOSENS_BUILT_IN", f"{name!r} is built in and may only be tightened: {'; '.join(loosened)}"
                )
        self._policies = dict(_BUILT_IN)
        self._policies.update(policies or {})
        self.store = store

    def get(self, name: str | None) -> Policy:
        """The effective policy of `name` (None or "": the built-in "default"), looked up as `lookup` does. Raises
        RequestError POLICY_UNKNOWN when no source knows the name; the store's UnavailableError passes through."""
        key = name or DEFAULT_POLICY_ID
        found = self.lookup(key)
        if found is None:
            raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {key!r}")
        return found[0]

    def lookup(self, name: str) -> tuple[Policy, str] | None:
        """The effective policy of `name` and where it comes from ("database", "file" or "built-in")."""
        if self.store is not None:
            stored = self.store.get(name)
            if stored is not None:
                loosened = weakenings(stored, _BUILT_IN[name]) if name in _BUILT_IN else []
                if not loosened:
                    return stored, "database"
                log.error(
                    "database policy %r loosens the built-in policy (%s); the built-in applies",
                    name,
                    "; ".join(loosened),
                )
                return _BUILT_IN[name], "built-in"
        if name in self._policies:
            policy = self._policies[name]
            return policy, "built-in" if policy is _BUILT_IN.get(name) else "file"
        return None

    def names(self) -> list[str]:
        """Every known policy name (built-ins, file and database), sorted. The store's UnavailableError passes
        through."""
        stored = self.store.names() if self.store is not None else []
        return sorted(set(self._policies) | set(stored))

    def with_store(self, store: PolicySource | None) -> PolicySet:
        """A copy with the same built-in and file policies that reads `store` (None: no database) first. Never
        raises."""
        copy = PolicySet(store=store)
        copy._policies = dict(self._policies)
        return copy

    @classmethod
    def from_file(cls, path: Path) -> PolicySet:
        """The policies of a JSON file {"policies": [...]} (README "Policies") plus the built-ins. Raises ConfigError
        POLICY_FILE_INVALID (unreadable, not that shape, an entry `policy_from_json` refuses, a repeated id) or
        POLICY_LOOSENS_BUILT_IN (an entry weakens a built-in policy of the same name)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError("POLICY_FILE_INVALID", f"cannot read policy file {path}: {exc}") from None
        entries = data.get("policies") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError("POLICY_FILE_INVALID", f"{path}: expected {{'policies': [...]}}")
        parsed = [policy_from_json(e) for e in entries]
        ids = [p.policy_id for p in parsed]
        if len(set(ids)) != len(ids):
            raise ConfigError("POLICY_FILE_INVALID", f"{path}: a policy id appears twice")
        return cls({p.policy_id: p for p in parsed})


_TIER_RANK = {"affirming": 1, "warning": 2}


def weakenings(candidate: Policy, base: Policy) -> list[str]:
    """How `candidate` accepts something `base` would not (empty: at least as strict). The policy ids may differ."""
    out: list[str] = []
    if candidate.allow_debug and not base.allow_debug:
        out.append("allows debug")
    if base.require_nonce and not candidate.require_nonce:
        out.append("does not require a nonce")
    if candidate.report_data_binding != base.report_data_binding:
        out.append(f"report_data_binding {candidate.report_data_binding} instead of {base.report_data_binding}")
    for tee, kinds in base.required_kinds.items():
        missing = set(kinds) - set(candidate.required(tee))
        if missing:
            out.append(f"does not require {sorted(missing)}")
    cs, bs = candidate.snp, base.snp
    if cs.allow_migrate_ma and not bs.allow_migrate_ma:
        out.append("snp: allows MIGRATE_MA")
    if cs.crl_fail_open and not bs.crl_fail_open:
        out.append("snp: CRL fail-open")
    for component, minimum in bs.minimum_tcb.items():
        if cs.minimum_tcb.get(component, 0) < minimum:
            out.append(f"snp: lower minimum TCB for {component}")
    if bs.minimum_tcb and set(bs.tcb_fields) - set(cs.tcb_fields):
        out.append("snp: checks fewer TCB fields")
    if not _subset(cs.allowed_vmpls, bs.allowed_vmpls):
        out.append("snp: allows more VMPLs")
    if not _subset(cs.allowed_chip_ids, bs.allowed_chip_ids):
        out.append("snp: allows more CHIP_IDs")
    if bs.minimum_firmware is not None and (cs.minimum_firmware is None or cs.minimum_firmware < bs.minimum_firmware):
        out.append("snp: lower minimum firmware")
    if bs.minimum_build is not None and (cs.minimum_build is None or cs.minimum_build < bs.minimum_build):
        out.append("snp: lower minimum build")
    if _longer(cs.max_collateral_age_hours, bs.max_collateral_age_hours):
        out.append("snp: accepts older collateral")
    ct, bt = candidate.tdx, base.tdx
    for status, tier in ct.accepted_statuses.items():
        base_tier = bt.accepted_statuses.get(status)
        if base_tier is None or _TIER_RANK.get(tier, 3) < _TIER_RANK.get(base_tier, 3):
            out.append(f"tdx: accepts {status} as {tier}")
    if ct.grace_days is not None and (bt.grace_days is None or ct.grace_days > bt.grace_days):
        out.append("tdx: longer grace period")
    if not _subset(ct.advisory_allow, bt.advisory_allow):
        out.append("tdx: allows more advisories")
    if set(bt.advisory_deny) - set(ct.advisory_deny):
        out.append("tdx: denies fewer advisories")
    if bt.require_sept_ve_disable and not ct.require_sept_ve_disable:
        out.append("tdx: SEPT_VE_DISABLE not required")
    if not _subset(ct.allowed_mr_seams, bt.allowed_mr_seams):
        out.append("tdx: allows more MRSEAMs")
    if (bt.minimum_tcb_evaluation_data_number or 0) > (ct.minimum_tcb_evaluation_data_number or 0):
        out.append("tdx: lower minimum tcbEvaluationDataNumber")
    if _longer(ct.max_collateral_age_hours, bt.max_collateral_age_hours):
        out.append("tdx: accepts older collateral")
    out.extend(_gpu_weakenings(candidate, base))
    return out


def _longer(candidate: int | None, base: int | None) -> bool:
    """A maximum age (None = unbounded) longer than the base's."""
    return base is not None and (candidate is None or candidate > base)


def _gpu_weakenings(candidate: Policy, base: Policy) -> list[str]:
    """What `candidate`'s GPU rules accept that `base`'s do not (README "NVIDIA GPU appraisal")."""
    cg, bg = candidate.gpu, base.gpu
    out = ["gpu: OCSP best-effort"] if cg.ocsp == "best-effort" and bg.ocsp == "require" else []
    lower = {"allowed_vbios_versions", "allowed_architectures"}  # compared ignoring case
    for name, what in (
        ("allowed_driver_versions", "driver versions"),
        ("allowed_vbios_versions", "VBIOS versions"),
        ("allowed_architectures", "architectures"),
    ):
        c, b = getattr(cg, name), getattr(bg, name)
        if name in lower:
            c = None if c is None else tuple(v.lower() for v in c)
            b = None if b is None else tuple(v.lower() for v in b)
        if not _subset(c, b):
            out.append(f"gpu: allows more {what}")
    return out


def _subset(candidate: tuple[Any, ...] | None, base: tuple[Any, ...] | None) -> bool:
    """An allow-list (None = anything) no wider than the base's."""
    if base is None:
        return True
    return candidate is not None and set(candidate) <= set(base)


def get_policy(name: str | None) -> Policy:
    """A built-in policy by name (kept for callers without a PolicySet)."""
    return PolicySet().get(name)
