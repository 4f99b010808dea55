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

`policy_to_json` is the canonical JSON form (the inverse of `policy_from_json` for policies it produced);
`policy_sha256` is the SHA-256 of that JSON with sorted keys and no whitespace, carried in result tokens."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, RequestError

log = logging.getLogger(__name__)

DEFAULT_POLICY_ID = "default"
TCB_COMPONENTS = ("fmc", "bootloader", "tee", "snp", "microcode")
TCB_FIELDS = ("reported", "committed", "launch", "current")


@dataclass(frozen=True)
class SnpRules:
    """SEV-SNP checks (AMD SEV-SNP ABI spec: GUEST_POLICY, VMPL, TCB_VERSION, firmware version)."""

    minimum_tcb: Mapping[str, int] = field(default_factory=dict)  # component -> minimum SVN
    tcb_fields: tuple[str, ...] = ("reported",)  # which TCB_VERSION fields must meet the minimum
    allow_migrate_ma: bool = False
    allowed_vmpls: tuple[int, ...] | None = None  # None: any VMPL
    minimum_firmware: tuple[int, int] | None = None  # (major, minor) of CURRENT firmware
    minimum_build: int | None = None
    allowed_chip_ids: tuple[bytes, ...] | None = None
    # When revocation checking is configured and the CRL cannot be had: contraindicated (fail closed) or warning.
    crl_fail_open: bool = False


TDX_STATUSES = ("UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
                "OutOfDate", "OutOfDateConfigurationNeeded", "TDRelaunchAdvised",
                "TDRelaunchAdvisedConfigurationNeeded", "Revoked")


@dataclass(frozen=True)
class TdxRules:
    """Intel TDX checks (TCB status from Intel's collateral, TD_ATTRIBUTES, MRSEAM)."""

    # Intel TCB status -> tier. Statuses not listed are contraindicated. Revoked can never be accepted.
    accepted_statuses: Mapping[str, str] = field(
        default_factory=lambda: {"UpToDate": "affirming", "SWHardeningNeeded": "warning"}
    )
    advisory_allow: tuple[str, ...] | None = None  # None: any advisory; else every advisory must be listed
    advisory_deny: tuple[str, ...] = ()  # any of these advisories is contraindicated
    # A status outside `accepted_statuses` (except Revoked) is a warning while its TCB level's tcbDate is newer
    # than `at - grace_days` (time to roll out Intel's fix); None: no grace.
    grace_days: int | None = None
    require_sept_ve_disable: bool = True
    allowed_mr_seams: tuple[bytes, ...] | None = None


@dataclass(frozen=True)
class Policy:
    policy_id: str = DEFAULT_POLICY_ID
    allow_debug: bool = False
    required_kinds: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "nitro": ("nitro.pcr0", "nitro.pcr1", "nitro.pcr2"),
            "snp": ("snp.measurement",),
            "tdx": ("tdx.mr_td",),
        }
    )
    require_nonce: bool = False
    # How a nonce binds into SNP/TDX REPORT_DATA: "sha512" = SHA-512(nonce || runtime_data); "raw" = the nonce
    # itself, zero-padded to 64 bytes, for workloads that cannot hash (chosen explicitly per policy).
    report_data_binding: str = "sha512"
    snp: SnpRules = field(default_factory=SnpRules)
    tdx: TdxRules = field(default_factory=TdxRules)

    def required(self, tee: str) -> tuple[str, ...]:
        return self.required_kinds.get(tee, ())


_BUILT_IN: dict[str, Policy] = {
    DEFAULT_POLICY_ID: Policy(),
    "nonce-required": Policy(policy_id="nonce-required", require_nonce=True),
}


BUILT_IN_NAMES = frozenset(_BUILT_IN)


class PolicySource(Protocol):
    """Named policies kept elsewhere (the database: `verifier.storage.policies.SqlPolicies`)."""

    def get(self, name: str) -> Policy | None: ...

    def names(self) -> list[str]: ...


class PolicySet:
    """The policies a verifier knows, by name: the database (`store`), then `policies` (a file), then built-ins."""

    def __init__(self, policies: Mapping[str, Policy] | None = None, *, store: PolicySource | None = None) -> None:
        self._policies = dict(_BUILT_IN)
        self._policies.update(policies or {})
        self.store = store

    def get(self, name: str | None) -> Policy:
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
                log.error("database policy %r loosens the built-in policy (%s); the built-in applies",
                          name, "; ".join(loosened))
                return _BUILT_IN[name], "built-in"
        if name in self._policies:
            policy = self._policies[name]
            return policy, "built-in" if policy is _BUILT_IN.get(name) else "file"
        return None

    def names(self) -> list[str]:
        stored = self.store.names() if self.store is not None else []
        return sorted(set(self._policies) | set(stored))

    def with_store(self, store: PolicySource | None) -> PolicySet:
        copy = PolicySet(store=store)
        copy._policies = dict(self._policies)
        return copy

    @classmethod
    def from_file(cls, path: Path) -> PolicySet:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError("POLICY_FILE_INVALID", f"cannot read policy file {path}: {exc}") from None
        entries = data.get("policies") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError("POLICY_FILE_INVALID", f"{path}: expected {{'policies': [...]}}")
        return cls({p.policy_id: p for p in (policy_from_json(e) for e in entries)})


def policy_to_json(policy: Policy) -> dict[str, Any]:
    """The JSON form of a policy, the schema `policy_from_json` reads (bytes as lowercase hex)."""
    snp, tdx = policy.snp, policy.tdx
    body: dict[str, Any] = {
        "id": policy.policy_id,
        "require_nonce": policy.require_nonce,
        "report_data_binding": policy.report_data_binding,
        "required_kinds": {tee: list(kinds) for tee, kinds in sorted(policy.required_kinds.items())},
        "snp": {
            "minimum_tcb": dict(sorted(snp.minimum_tcb.items())),
            "tcb_fields": list(snp.tcb_fields),
            "allow_migrate_ma": snp.allow_migrate_ma,
            "allowed_vmpls": list(snp.allowed_vmpls) if snp.allowed_vmpls is not None else None,
            "minimum_firmware": list(snp.minimum_firmware) if snp.minimum_firmware is not None else None,
            "minimum_build": snp.minimum_build,
            "allowed_chip_ids": [c.hex() for c in snp.allowed_chip_ids] if snp.allowed_chip_ids is not None else None,
            "crl_fail_open": snp.crl_fail_open,
        },
        "tdx": {
            "accepted_statuses": dict(sorted(tdx.accepted_statuses.items())),
            "advisory_allow": list(tdx.advisory_allow) if tdx.advisory_allow is not None else None,
            "advisory_deny": list(tdx.advisory_deny),
            "grace_days": tdx.grace_days,
            "require_sept_ve_disable": tdx.require_sept_ve_disable,
            "allowed_mr_seams": [m.hex() for m in tdx.allowed_mr_seams] if tdx.allowed_mr_seams is not None else None,
        },
    }
    if policy.allow_debug:  # not settable from JSON; only code-built policies have it, and the hash must show it
        body["allow_debug"] = True
    return body


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def policy_sha256(policy: Policy) -> str:
    """SHA-256 (hex) of the canonical JSON of `policy_to_json(policy)`."""
    return hashlib.sha256(canonical_json(policy_to_json(policy)).encode()).hexdigest()


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
    return out


def _subset(candidate: tuple[Any, ...] | None, base: tuple[Any, ...] | None) -> bool:
    """An allow-list (None = anything) no wider than the base's."""
    if base is None:
        return True
    return candidate is not None and set(candidate) <= set(base)


def policy_from_json(entry: Any) -> Policy:
    """One policy from its JSON form; unknown keys are errors (a typo must not silently weaken a policy)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise ConfigError("POLICY_FILE_INVALID", "every policy needs a string 'id'")
    known = {"id", "require_nonce", "report_data_binding", "required_kinds", "snp", "tdx"}
    _no_unknown(entry, known, entry["id"])
    base = Policy(policy_id=entry["id"])
    required = dict(base.required_kinds)
    for tee, kinds in (entry.get("required_kinds") or {}).items():
        # Required kinds can only grow: the TEE's measurement stays required.
        required[tee] = tuple(dict.fromkeys([*required.get(tee, ()), *kinds]))
    binding = entry.get("report_data_binding", "sha512")
    if binding not in ("sha512", "raw"):
        raise ConfigError("POLICY_FILE_INVALID", f"{entry['id']}: report_data_binding must be sha512 or raw")
    return replace(base, required_kinds=required, require_nonce=bool(entry.get("require_nonce", False)),
                   report_data_binding=binding, snp=_snp_rules(entry.get("snp") or {}, entry["id"]),
                   tdx=_tdx_rules(entry.get("tdx") or {}, entry["id"]))


def _tdx_rules(data: dict[str, Any], policy_id: str) -> TdxRules:
    known = {"accepted_statuses", "advisory_allow", "advisory_deny", "grace_days", "require_sept_ve_disable",
             "allowed_mr_seams"}
    _no_unknown(data, known, f"{policy_id}.tdx")
    base = TdxRules()
    statuses = dict(data.get("accepted_statuses") or base.accepted_statuses)
    for status, tier in statuses.items():
        if status not in TDX_STATUSES or tier not in ("affirming", "warning"):
            raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}.tdx.accepted_statuses: {status} -> {tier}")
        if tier == "affirming" and status not in ("UpToDate", "SWHardeningNeeded"):
            raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: {status} can at most be a warning")
    if "Revoked" in statuses:
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: a Revoked TCB can never be accepted")
    if data.get("require_sept_ve_disable", True) is not True:
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: SEPT_VE_DISABLE stays required (tighten-only)")
    allow = data.get("advisory_allow")
    seams = data.get("allowed_mr_seams")
    grace = data.get("grace_days")
    return TdxRules(
        accepted_statuses=statuses,
        advisory_allow=tuple(allow) if allow is not None else None,
        advisory_deny=tuple(data.get("advisory_deny") or ()),
        grace_days=int(grace) if grace is not None else None,
        # The default requires SEPT_VE_DISABLE; a policy file may only keep it required.
        require_sept_ve_disable=True,
        allowed_mr_seams=tuple(bytes.fromhex(m) for m in seams) if seams is not None else None,
    )


def _snp_rules(data: dict[str, Any], policy_id: str) -> SnpRules:
    known = {"minimum_tcb", "tcb_fields", "allow_migrate_ma", "allowed_vmpls", "minimum_firmware",
             "minimum_build", "allowed_chip_ids", "crl_fail_open"}
    _no_unknown(data, known, f"{policy_id}.snp")
    minimum = {str(k): int(v) for k, v in (data.get("minimum_tcb") or {}).items()}
    if set(minimum) - set(TCB_COMPONENTS):
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: TCB components are {TCB_COMPONENTS}")
    fields_ = tuple(data.get("tcb_fields") or ("reported",))
    if set(fields_) - set(TCB_FIELDS):
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: tcb_fields are {TCB_FIELDS}")
    firmware = data.get("minimum_firmware")
    chips = data.get("allowed_chip_ids")
    vmpls = data.get("allowed_vmpls")
    return SnpRules(
        minimum_tcb=minimum,
        tcb_fields=fields_,
        allow_migrate_ma=bool(data.get("allow_migrate_ma", False)),
        allowed_vmpls=tuple(int(v) for v in vmpls) if vmpls is not None else None,
        minimum_firmware=(int(firmware[0]), int(firmware[1])) if firmware else None,
        minimum_build=int(data["minimum_build"]) if data.get("minimum_build") is not None else None,
        allowed_chip_ids=tuple(bytes.fromhex(c) for c in chips) if chips is not None else None,
        crl_fail_open=bool(data.get("crl_fail_open", False)),
    )


def _no_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(data) - known
    if unknown:
        raise ConfigError("POLICY_FILE_INVALID", f"{where}: unknown keys {sorted(unknown)}")


def get_policy(name: str | None) -> Policy:
    """A built-in policy by name (kept for callers without a PolicySet)."""
    return PolicySet().get(name)
