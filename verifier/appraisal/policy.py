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
    # The AMD CRL used must have been issued (thisUpdate) within this many hours of the appraisal; None: any age.
    max_collateral_age_hours: int | None = None


TDX_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
    "Revoked",
)


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
    # The TCB info used must have at least this tcbEvaluationDataNumber (Intel's TCB recovery counter); None: any.
    minimum_tcb_evaluation_data_number: int | None = None
    # Every collateral item used (TCB info, QE identity, CRLs) must have been issued within this many hours.
    max_collateral_age_hours: int | None = None


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
        """The reference-value kinds this policy requires for `tee` (e.g. ("snp.measurement",)); () for a TEE it names
        no kinds for. Never raises."""
        return self.required_kinds.get(tee, ())


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
            "max_collateral_age_hours": snp.max_collateral_age_hours,
        },
        "tdx": {
            "accepted_statuses": dict(sorted(tdx.accepted_statuses.items())),
            "advisory_allow": list(tdx.advisory_allow) if tdx.advisory_allow is not None else None,
            "advisory_deny": list(tdx.advisory_deny),
            "grace_days": tdx.grace_days,
            "require_sept_ve_disable": tdx.require_sept_ve_disable,
            "allowed_mr_seams": [m.hex() for m in tdx.allowed_mr_seams] if tdx.allowed_mr_seams is not None else None,
            "minimum_tcb_evaluation_data_number": tdx.minimum_tcb_evaluation_data_number,
            "max_collateral_age_hours": tdx.max_collateral_age_hours,
        },
    }
    if policy.allow_debug:  # not settable from JSON; only code-built policies have it, and the hash must show it
        body["allow_debug"] = True
    return body


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON text: sorted keys, no whitespace, ASCII only (the input of `policy_sha256`). Raises
    ValueError for NaN or infinity and TypeError for a value JSON cannot represent."""
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
    return out


def _longer(candidate: int | None, base: int | None) -> bool:
    """A maximum age (None = unbounded) longer than the base's."""
    return base is not None and (candidate is None or candidate > base)


def _subset(candidate: tuple[Any, ...] | None, base: tuple[Any, ...] | None) -> bool:
    """An allow-list (None = anything) no wider than the base's."""
    if base is None:
        return True
    return candidate is not None and set(candidate) <= set(base)


def policy_from_json(entry: Any) -> Policy:
    """One policy from its JSON form. Raises ConfigError("POLICY_FILE_INVALID") for unknown keys (a typo must not
    silently weaken a policy) and for values of the wrong JSON type: booleans must be JSON true/false (the string
    "false" is not false), integers JSON integers, hex values strings of the right length."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        raise ConfigError("POLICY_FILE_INVALID", "every policy needs a non-empty string 'id'")
    policy_id = entry["id"]
    known = {"id", "require_nonce", "report_data_binding", "required_kinds", "snp", "tdx"}
    _no_unknown(entry, known, policy_id)
    base = Policy(policy_id=policy_id)
    required = dict(base.required_kinds)
    for tee, kinds in _object(entry, "required_kinds", policy_id).items():
        # Required kinds can only grow: the TEE's measurement stays required.
        more = _strings(kinds, f"{policy_id}.required_kinds.{tee}")
        required[tee] = tuple(dict.fromkeys([*required.get(tee, ()), *more]))
    binding = entry.get("report_data_binding", "sha512")
    if binding not in ("sha512", "raw"):
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: report_data_binding must be sha512 or raw")
    return replace(
        base,
        required_kinds=required,
        require_nonce=_bool(entry, "require_nonce", False, policy_id),
        report_data_binding=binding,
        snp=_snp_rules(_object(entry, "snp", policy_id), policy_id),
        tdx=_tdx_rules(_object(entry, "tdx", policy_id), policy_id),
    )


def _tdx_rules(data: dict[str, Any], policy_id: str) -> TdxRules:
    where = f"{policy_id}.tdx"
    known = {
        "accepted_statuses",
        "advisory_allow",
        "advisory_deny",
        "grace_days",
        "require_sept_ve_disable",
        "allowed_mr_seams",
        "minimum_tcb_evaluation_data_number",
        "max_collateral_age_hours",
    }
    _no_unknown(data, known, where)
    base = TdxRules()
    given = _object(data, "accepted_statuses", where)
    if data.get("accepted_statuses") == {}:  # never read "accept nothing" as the looser default
        raise ConfigError("POLICY_FILE_INVALID", f"{where}.accepted_statuses names no status (omit it for the default)")
    statuses = dict(given or base.accepted_statuses)
    for status, tier in statuses.items():
        if status not in TDX_STATUSES or tier not in ("affirming", "warning"):
            raise ConfigError("POLICY_FILE_INVALID", f"{where}.accepted_statuses: {status} -> {tier}")
        if tier == "affirming" and status not in ("UpToDate", "SWHardeningNeeded"):
            raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: {status} can at most be a warning")
    if "Revoked" in statuses:
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: a Revoked TCB can never be accepted")
    if not _bool(data, "require_sept_ve_disable", True, where):
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: SEPT_VE_DISABLE stays required (tighten-only)")
    allow = data.get("advisory_allow")
    seams = data.get("allowed_mr_seams")
    return TdxRules(
        accepted_statuses=statuses,
        advisory_allow=tuple(_strings(allow, f"{where}.advisory_allow")) if allow is not None else None,
        advisory_deny=tuple(_strings(data.get("advisory_deny") or [], f"{where}.advisory_deny")),
        grace_days=_int(data, "grace_days", where),
        # The default requires SEPT_VE_DISABLE; a policy file may only keep it required.
        require_sept_ve_disable=True,
        allowed_mr_seams=_hex_list(seams, 48, f"{where}.allowed_mr_seams") if seams is not None else None,
        minimum_tcb_evaluation_data_number=_int(data, "minimum_tcb_evaluation_data_number", where),
        max_collateral_age_hours=_int(data, "max_collateral_age_hours", where, minimum=1),
    )


def _snp_rules(data: dict[str, Any], policy_id: str) -> SnpRules:
    where = f"{policy_id}.snp"
    known = {
        "minimum_tcb",
        "tcb_fields",
        "allow_migrate_ma",
        "allowed_vmpls",
        "minimum_firmware",
        "minimum_build",
        "allowed_chip_ids",
        "crl_fail_open",
        "max_collateral_age_hours",
    }
    _no_unknown(data, known, where)
    tcb = _object(data, "minimum_tcb", where)
    minimum = {str(k): _int(tcb, k, f"{where}.minimum_tcb", maximum=255) or 0 for k in tcb}
    if set(minimum) - set(TCB_COMPONENTS):
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: TCB components are {TCB_COMPONENTS}")
    fields_ = tuple(_strings(data.get("tcb_fields") or ["reported"], f"{where}.tcb_fields"))
    if set(fields_) - set(TCB_FIELDS):
        raise ConfigError("POLICY_FILE_INVALID", f"{policy_id}: tcb_fields are {TCB_FIELDS}")
    firmware = data.get("minimum_firmware")
    if firmware is not None:
        firmware = _ints(firmware, f"{where}.minimum_firmware", maximum=255)
        if len(firmware) != 2:
            raise ConfigError("POLICY_FILE_INVALID", f"{where}.minimum_firmware is [major, minor]")
    chips = data.get("allowed_chip_ids")
    vmpls = data.get("allowed_vmpls")
    return SnpRules(
        minimum_tcb=minimum,
        tcb_fields=fields_,
        allow_migrate_ma=_bool(data, "allow_migrate_ma", False, where),
        allowed_vmpls=tuple(_ints(vmpls, f"{where}.allowed_vmpls", maximum=3)) if vmpls is not None else None,
        minimum_firmware=(firmware[0], firmware[1]) if firmware else None,
        minimum_build=_int(data, "minimum_build", where, maximum=255),
        allowed_chip_ids=_hex_list(chips, 64, f"{where}.allowed_chip_ids") if chips is not None else None,
        crl_fail_open=_bool(data, "crl_fail_open", False, where),
        max_collateral_age_hours=_int(data, "max_collateral_age_hours", where, minimum=1),
    )


def _invalid(where: str, want: str, value: Any) -> ConfigError:
    shown = json.dumps(value)[:60] if _jsonable(value) else type(value).__name__
    return ConfigError("POLICY_FILE_INVALID", f"{where} must be {want}, not {shown}")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _bool(data: dict[str, Any], key: str, default: bool, where: str) -> bool:
    """A JSON boolean: `"false"`, `"no"`, 0 or null are errors, never silently true or false."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise _invalid(f"{where}.{key}", "a JSON boolean (true or false)", value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(data: dict[str, Any], key: str, where: str, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int | None:
    """A JSON integer in [minimum, maximum], or None when absent or null."""
    value = data.get(key)
    if value is None:
        return None
    if not _is_int(value) or not minimum <= value <= maximum:
        raise _invalid(f"{where}.{key}", f"a JSON integer {minimum}..{maximum}", value)
    return int(value)


def _ints(value: Any, where: str, *, maximum: int) -> list[int]:
    if not isinstance(value, list) or not all(_is_int(v) and 0 <= v <= maximum for v in value):
        raise _invalid(where, f"a list of JSON integers 0..{maximum}", value)
    return [int(v) for v in value]


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(where, "a list of strings", value)
    return list(value)


def _hex_list(value: Any, size: int, where: str) -> tuple[bytes, ...]:
    out = []
    for item in _strings(value, where):
        try:
            raw = bytes.fromhex(item)
        except ValueError:
            raw = b""
        if len(raw) != size:
            raise _invalid(where, f"a list of {2 * size}-digit hex strings", item)
        out.append(raw)
    return tuple(out)


def _object(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"{where}.{key}", "a JSON object", value)
    return value


def _no_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(data) - known
    if unknown:
        raise ConfigError("POLICY_FILE_INVALID", f"{where}: unknown keys {sorted(unknown)}")


def get_policy(name: str | None) -> Policy:
    """A built-in policy by name (kept for callers without a PolicySet)."""
    return PolicySet().get(name)
