"""The appraisal policy model: every field of a policy is declared once, here, as a field of a strict pydantic
dataclass (`SnpRules`, `TdxRules`, `Policy`) with its type, bounds, default and domain rule. The same declaration
is what the appraisers read (`policy.snp.minimum_tcb`), what code builds (`Policy(require_nonce=True)`,
`dataclasses.replace`) and what `policy_json` validates a policy document against and writes back out.

Strict: no coercion in either direction. From JSON a string is not an integer, a boolean not an integer, an
integer not a boolean, a list not an object; bytes are hex strings of the exact length. From code the attribute
types are the ones declared (tuples, bytes, ints). Unknown keys are refused (`extra="forbid"`): a typo must not
silently weaken a policy. Invalid values, from code as from JSON, raise ConfigError("POLICY_FILE_INVALID") with the
field and what was wrong; pydantic's own exception never escapes.

Two kinds of rule:

- Domain rules hold for every policy: SVNs and versions 0..255, VMPLs 0..3, CHIP_IDs 64 bytes, MRSEAMs 48 bytes,
  TCB component and TCB_VERSION field names from the AMD SEV-SNP ABI spec (TCB_VERSION), Intel TCB statuses from
  Intel's TDX DCAP "TCB status" values with a tier of affirming or warning, only UpToDate and SWHardeningNeeded
  affirming, Revoked never accepted, report_data_binding sha512 or raw.
- Document rules hold for a policy read from JSON (a `--policy-file` entry or a database body), which may only
  tighten the contract of ARCHITECTURE.md: `allow_debug` cannot be set (`CodeOnly`), SEPT_VE_DISABLE stays
  required, `required_kinds` only adds to the default kinds, an empty `accepted_statuses` object is refused (it
  once read as the looser default) and an empty `tcb_fields` list means the default ["reported"].

`Expect` annotations say, beside the type, how a value of the wrong type or out of bounds is described in the
ConfigError ("p.snp.minimum_build must be a JSON integer 0..255, not 3.0")."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema
from pydantic.dataclasses import dataclass

from ..reference_values.kinds import MEASUREMENT_KINDS
from .policy_errors import CodeOnly, Expect, config_error, rule

DEFAULT_POLICY_ID = "default"
INT_MAX = 2**31 - 1
TCB_COMPONENTS = ("fmc", "bootloader", "tee", "snp", "microcode")
TCB_FIELDS = ("reported", "committed", "launch", "current")
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
TIERS = ("affirming", "warning")
AFFIRMABLE = ("UpToDate", "SWHardeningNeeded")  # every other accepted status is at most a warning
OCSP_MODES = ("require", "best-effort")  # `gpu.ocsp`: what an unavailable OCSP status means
HEX_ERRORS = frozenset({"bytes_invalid_encoding", "bytes_too_short", "bytes_too_long"})
LENGTH_ERRORS = frozenset({"missing", "too_long", "too_short"})

# strict, unknown keys refused, `id` read by alias from JSON (by name from code), bytes as hex in JSON
CONFIG = ConfigDict(
    extra="forbid",
    strict=True,
    validate_by_name=True,
    validate_by_alias=True,
    val_json_bytes="hex",
    ser_json_bytes="hex",
)

BOOL = Expect("a JSON boolean (true or false)")
STRINGS = Expect("a list of strings")
OBJECT = Expect("a JSON object")
UINT31 = Expect(f"a JSON integer 0..{INT_MAX}")
HOURS = Expect(f"a JSON integer 1..{INT_MAX}")

Byte = Annotated[int, Field(ge=0, le=255)]
Svn = Annotated[int, Field(ge=0, le=255), Expect("a JSON integer 0..255")]
Vmpl = Annotated[int, Field(ge=0, le=3)]
Uint31 = Annotated[int, Field(ge=0, le=INT_MAX)]
Hours = Annotated[int, Field(ge=1, le=INT_MAX)]
ChipId = Annotated[
    bytes,
    Field(min_length=64, max_length=64),
    Expect("a list of 128-digit hex strings", only=HEX_ERRORS),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{128}$"}),
]
TcbField = Annotated[str, WithJsonSchema({"type": "string", "enum": list(TCB_FIELDS)})]
Tier = Annotated[
    str, Expect(template="{parent}: {key} -> {shown}"), WithJsonSchema({"type": "string", "enum": list(TIERS)})
]
MrSeam = Annotated[
    bytes,
    Field(min_length=48, max_length=48),
    Expect("a list of 96-digit hex strings", only=HEX_ERRORS),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{96}$"}),
]


def _known_components(value: Mapping[str, int]) -> Mapping[str, int]:
    if set(value) - set(TCB_COMPONENTS):
        raise rule(f": TCB components are {TCB_COMPONENTS}")
    return value


def _known_tcb_fields(value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    if set(value) - set(TCB_FIELDS):
        raise rule(f": tcb_fields are {TCB_FIELDS}")
    if not value and info.mode == "json":  # a document's [] is the default, never "check no field"
        return ("reported",)
    return value


def _accepted_statuses(value: Mapping[str, str], info: ValidationInfo) -> Mapping[str, str]:
    if not value and info.mode == "json":  # never read "accept nothing" as the looser default
        raise rule(" names no status (omit it for the default)", scope="field")
    for status, tier in value.items():
        if status not in TDX_STATUSES or tier not in TIERS:
            raise rule(f": {status} -> {tier}", scope="field")
        if tier == "affirming" and status not in AFFIRMABLE:
            raise rule(f": {status} can at most be a warning")
    if "Revoked" in value:
        raise rule(": a Revoked TCB can never be accepted")
    return value


def _sept_ve_disable_stays_required(value: bool, info: ValidationInfo) -> bool:
    if not value and info.mode == "json":
        raise rule(": SEPT_VE_DISABLE stays required (tighten-only)")
    return value


def _binding(value: str) -> str:
    if value not in ("sha512", "raw"):
        raise rule(": report_data_binding must be sha512 or raw")
    return value


GpuVersion = Annotated[str, Field(min_length=1, max_length=64), Expect("a list of non-empty strings (at most 64)")]


def _ocsp_mode(value: str) -> str:
    if value not in OCSP_MODES:
        raise rule(' must be "require" or "best-effort"', scope="field")
    return value


def _default_kinds() -> dict[str, tuple[str, ...]]:
    return dict(MEASUREMENT_KINDS)


def _kinds_only_grow(value: Mapping[str, tuple[str, ...]], info: ValidationInfo) -> Mapping[str, tuple[str, ...]]:
    """From a document the kinds named are added to the default ones: the TEE's measurement stays required."""
    if info.mode != "json":
        return value
    required = _default_kinds()
    for tee, kinds in value.items():
        required[tee] = tuple(dict.fromkeys([*required.get(tee, ()), *kinds]))
    return required


def _default_statuses() -> dict[str, str]:
    return {"UpToDate": "affirming", "SWHardeningNeeded": "warning"}


def _false(value: object) -> bool:
    return value is False


C = TypeVar("C", bound=type)


def _config_errors(cls: C) -> C:
    """`cls` whose constructor (so `dataclasses.replace` too) raises ConfigError(POLICY_FILE_INVALID) instead of
    pydantic's ValidationError. Validation from JSON (`policy_json`) does not go through the constructor."""
    validated: Callable[..., None] = vars(cls)["__init__"]

    @functools.wraps(validated)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - the constructor it wraps
        try:
            validated(self, *args, **kwargs)
        except ValidationError as exc:
            raise config_error(exc, cls, cls.__name__, expects=False) from None

    setattr(cls, "__init__", __init__)  # noqa: B010 - mypy refuses assigning to a method
    return cls


@_config_errors
@dataclass(frozen=True, config=CONFIG)
class SnpRules:
    """SEV-SNP checks (AMD SEV-SNP ABI spec: GUEST_POLICY, VMPL, TCB_VERSION, firmware version)."""

    # component -> minimum SVN
    minimum_tcb: Annotated[Mapping[str, Svn], OBJECT, AfterValidator(_known_components)] = Field(
        default_factory=dict, json_schema_extra={"propertyNames": {"enum": list(TCB_COMPONENTS)}}
    )
    # which TCB_VERSION fields must meet the minimum
    tcb_fields: Annotated[tuple[TcbField, ...], STRINGS, AfterValidator(_known_tcb_fields)] = ("reported",)
    allow_migrate_ma: Annotated[bool, BOOL] = False
    # None: any VMPL
    allowed_vmpls: Annotated[tuple[Vmpl, ...] | None, Expect("a list of JSON integers 0..3")] = None
    # (major, minor) of CURRENT firmware
    minimum_firmware: Annotated[
        tuple[Byte, Byte] | None,
        Expect(template="{path} is [major, minor]", only=LENGTH_ERRORS),
        Expect("a list of JSON integers 0..255"),
    ] = None
    minimum_build: Annotated[Byte | None, Expect("a JSON integer 0..255")] = None
    allowed_chip_ids: Annotated[tuple[ChipId, ...] | None, STRINGS] = None
    # When revocation checking is configured and the CRL cannot be had: contraindicated (fail closed) or warning.
    crl_fail_open: Annotated[bool, BOOL] = False
    # The AMD CRL used must have been issued (thisUpdate) within this many hours of the appraisal; None: any age.
    max_collateral_age_hours: Annotated[Hours | None, HOURS] = None


@_config_errors
@dataclass(frozen=True, config=CONFIG)
class TdxRules:
    """Intel TDX checks (TCB status from Intel's collateral, TD_ATTRIBUTES, MRSEAM)."""

    # Intel TCB status -> tier. Statuses not listed are contraindicated. Revoked can never be accepted.
    accepted_statuses: Annotated[Mapping[str, Tier], OBJECT, AfterValidator(_accepted_statuses)] = Field(
        default_factory=_default_statuses,
        json_schema_extra={"minProperties": 1, "propertyNames": {"enum": list(TDX_STATUSES[:-1])}},
    )
    advisory_allow: Annotated[tuple[str, ...] | None, STRINGS] = None  # None: any advisory; else all listed
    advisory_deny: Annotated[tuple[str, ...], STRINGS] = ()  # any of these advisories is contraindicated
    # A status outside `accepted_statuses` (except Revoked) is a warning while its TCB level's tcbDate is newer
    # than `at - grace_days` (time to roll out Intel's fix); None: no grace.
    grace_days: Annotated[Uint31 | None, UINT31] = None
    require_sept_ve_disable: Annotated[bool, BOOL, AfterValidator(_sept_ve_disable_stays_required)] = Field(
        default=True, json_schema_extra={"const": True}
    )
    allowed_mr_seams: Annotated[tuple[MrSeam, ...] | None, STRINGS] = None
    # The TCB info used must have at least this tcbEvaluationDataNumber (Intel's TCB recovery counter); None: any.
    minimum_tcb_evaluation_data_number: Annotated[Uint31 | None, UINT31] = None
    # Every collateral item used (TCB info, QE identity, CRLs) must have been issued within this many hours.
    max_collateral_age_hours: Annotated[Hours | None, HOURS] = None


@_config_errors
@dataclass(frozen=True, config=CONFIG)
class GpuRules:
    """NVIDIA GPU checks (issue 15; README "GPU revocation (OCSP) and NVIDIA services")."""

    # OCSP status of the device chain and the RIM signing chains when no valid response can be had: "require"
    # (contraindicated: fail closed) or "best-effort" (no finding; the token says revocation went unchecked).
    # A revoked certificate is contraindicated either way.
    ocsp: Annotated[str, Expect('"require" or "best-effort"'), AfterValidator(_ocsp_mode)] = Field(
        default="require", json_schema_extra={"enum": list(OCSP_MODES)}
    )
    # Pins a workload's policy may set (None: any): the driver versions (exact, e.g. "550.90.07"), the VBIOS versions
    # (compared ignoring case, e.g. "96.00.9F.00.01") and the GPU architectures ("hopper", "blackwell") it accepts.
    allowed_driver_versions: Annotated[tuple[GpuVersion, ...] | None, STRINGS] = None
    allowed_vbios_versions: Annotated[tuple[GpuVersion, ...] | None, STRINGS] = None
    allowed_architectures: Annotated[tuple[GpuVersion, ...] | None, STRINGS] = None


def _default_gpu(value: object) -> bool:
    """`gpu` is written out (and so hashed) only when it differs from the default: the hash of every policy that
    does not set it stays what it was before the section existed."""
    return value == GpuRules()


@_config_errors
@dataclass(frozen=True, config=CONFIG)
class Policy:
    """A named appraisal policy (ARCHITECTURE.md "Appraisal policy"; README "Policies")."""

    # `id` in JSON
    policy_id: Annotated[str, Field(min_length=1), Expect("a non-empty UTF-8 string")] = Field(
        default=DEFAULT_POLICY_ID, validation_alias="id", serialization_alias="id"
    )
    # Not settable from JSON; only code-built policies have it, and their JSON (so their hash) shows it when true.
    allow_debug: Annotated[bool, CodeOnly()] = Field(default=False, exclude_if=_false)
    required_kinds: Annotated[
        Mapping[str, Annotated[tuple[str, ...], STRINGS]], OBJECT, AfterValidator(_kinds_only_grow)
    ] = Field(default_factory=_default_kinds)
    require_nonce: Annotated[bool, BOOL] = False
    # How a nonce binds into SNP/TDX REPORT_DATA: "sha512" = SHA-512(nonce || runtime_data); "raw" = the nonce
    # itself, zero-padded to 64 bytes, for workloads that cannot hash (chosen explicitly per policy).
    report_data_binding: Annotated[
        str, Expect(template="{id}: report_data_binding must be sha512 or raw"), AfterValidator(_binding)
    ] = Field(default="sha512", json_schema_extra={"enum": ["sha512", "raw"]})
    snp: Annotated[SnpRules, OBJECT] = Field(default_factory=SnpRules)
    tdx: Annotated[TdxRules, OBJECT] = Field(default_factory=TdxRules)
    gpu: Annotated[GpuRules, OBJECT] = Field(default_factory=GpuRules, exclude_if=_default_gpu)

    def required(self, tee: str) -> tuple[str, ...]:
        """The reference-value kinds this policy requires for `tee` (e.g. ("snp.measurement",)); () for a TEE it names
        no kinds for. Never raises."""
        return self.required_kinds.get(tee, ())
