"""Typed, bounded models of Intel's TDX TCB info (id "TDX", version 3) and TD_QE identity (version 2).

Field names and shapes follow the Intel Trusted Services API (PCS v4) "TDX TCB Info" and "Enclave Identity"
JSON schemas: hex strings for bytes, RFC 3339 UTC dates, 16 sgxtcbcomponents / tdxtcbcomponents per level.
Every list is bounded and every field type-checked; anything else is EvidenceError TDX_COLLATERAL_MALFORMED.
Parsing does not judge id/version (verify_collateral does) and keeps the served order of levels.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from verifier.clock import as_utc
from verifier.errors import EvidenceError

CODE = "TDX_COLLATERAL_MALFORMED"
MAX_LEVELS = 256
MAX_ADVISORIES = 256
MAX_MODULE_IDENTITIES = 64
COMPONENTS = 16
STATUSES = frozenset({
    "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate",
    "OutOfDateConfigurationNeeded", "Revoked",
})  # fmt: skip


@dataclass(frozen=True)
class IsvLevel:
    """A QE identity or TDX module identity TCB level (tcb.isvsvn)."""

    isvsvn: int
    tcb_date: datetime.datetime
    tcb_status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TdxModule:
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes


@dataclass(frozen=True)
class TdxModuleIdentity:
    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[IsvLevel, ...]


@dataclass(frozen=True)
class TcbLevel:
    sgx_components: tuple[int, ...]
    pcesvn: int
    tdx_components: tuple[int, ...]
    tcb_date: datetime.datetime
    tcb_status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TcbInfo:
    id: str
    version: int
    issue_date: datetime.datetime
    next_update: datetime.datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModule | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]


@dataclass(frozen=True)
class QeIdentity:
    id: str
    version: int
    issue_date: datetime.datetime
    next_update: datetime.datetime
    tcb_evaluation_data_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    tcb_levels: tuple[IsvLevel, ...]


def _bad(where: str, expected: str, value: Any) -> EvidenceError:
    return EvidenceError(CODE, f"collateral field {where} is malformed", expected=expected, actual=repr(value)[:80])


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _bad(where, "object", obj)
    if key not in obj:
        raise _bad(f"{where}.{key}", "present", None)
    return obj[key]


def _int(obj: dict[str, Any], key: str, where: str, limit: int = 0xFFFFFFFF) -> int:
    value = _get(obj, key, where)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise _bad(f"{where}.{key}", f"integer 0..{limit}", value)
    return value


def _str(obj: dict[str, Any], key: str, where: str, limit: int = 64) -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(f"{where}.{key}", f"string of <= {limit} characters", value)
    return value


def _hex(obj: dict[str, Any], key: str, where: str, size: int) -> bytes:
    value = _str(obj, key, where, 2 * size)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size or len(value) != 2 * size:
        raise _bad(f"{where}.{key}", f"{size} bytes as hex", value)
    return raw


def _date(obj: dict[str, Any], key: str, where: str) -> datetime.datetime:
    value = _str(obj, key, where, 40)
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{where}.{key}", "RFC 3339 date", value) from None
    if parsed.tzinfo is None:
        raise _bad(f"{where}.{key}", "RFC 3339 date with offset", value)
    try:
        return as_utc(parsed)
    except ValueError:  # an instant outside datetime's range in UTC, e.g. year 1 at +01:00
        raise _bad(f"{where}.{key}", "RFC 3339 date within years 1-9999 in UTC", value) from None


def _list(obj: dict[str, Any], key: str, where: str, limit: int, *, optional: bool = False) -> list[Any]:
    if optional and isinstance(obj, dict) and key not in obj:
        return []
    value = _get(obj, key, where)
    if not isinstance(value, list) or len(value) > limit:
        raise _bad(f"{where}.{key}", f"list of <= {limit} items", value)
    return value


def _status(obj: dict[str, Any], where: str) -> str:
    value = _str(obj, "tcbStatus", where)
    if value not in STATUSES:
        raise _bad(f"{where}.tcbStatus", "an Intel TCB status", value)
    return value


def _advisories(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    ids = _list(obj, "advisoryIDs", where, MAX_ADVISORIES, optional=True)
    if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise _bad(f"{where}.advisoryIDs", "advisory id strings", ids)
    return tuple(ids)


def _isv_level(obj: Any, where: str) -> IsvLevel:
    tcb = _get(obj, "tcb", where)
    return IsvLevel(
        _int(tcb, "isvsvn", f"{where}.tcb", 0xFFFF),
        _date(obj, "tcbDate", where),
        _status(obj, where),
        _advisories(obj, where),
    )


def _components(tcb: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    items = _list(tcb, key, where, COMPONENTS)
    if len(items) != COMPONENTS:
        raise _bad(f"{where}.{key}", f"{COMPONENTS} components", len(items))
    return tuple(_int(c, "svn", f"{where}.{key}[{i}]", 0xFF) for i, c in enumerate(items))


def _tcb_level(obj: Any, where: str) -> TcbLevel:
    tcb = _get(obj, "tcb", where)
    return TcbLevel(
        _components(tcb, "sgxtcbcomponents", f"{where}.tcb"),
        _int(tcb, "pcesvn", f"{where}.tcb", 0xFFFF),
        _components(tcb, "tdxtcbcomponents", f"{where}.tcb"),
        _date(obj, "tcbDate", where),
        _status(obj, where),
        _advisories(obj, where),
    )


def _module(obj: Any, where: str) -> TdxModule:
    return TdxModule(
        _hex(obj, "mrsigner", where, 48), _hex(obj, "attributes", where, 8), _hex(obj, "attributesMask", where, 8)
    )


def _module_identity(obj: Any, where: str) -> TdxModuleIdentity:
    module = _module(obj, where)
    levels = _list(obj, "tcbLevels", where, MAX_LEVELS)
    return TdxModuleIdentity(
        _str(obj, "id", where),
        module.mrsigner,
        module.attributes,
        module.attributes_mask,
        tuple(_isv_level(level, f"{where}.tcbLevels[{i}]") for i, level in enumerate(levels)),
    )


def parse_tcb_info(data: dict[str, Any]) -> TcbInfo:
    """The `tcbInfo` member (PCS v4 TDX TCB Info, version 3)."""
    w = "tcbInfo"
    if not isinstance(data, dict):
        raise _bad(w, "object", data)
    module = _module(data["tdxModule"], f"{w}.tdxModule") if "tdxModule" in data else None
    identities = _list(data, "tdxModuleIdentities", w, MAX_MODULE_IDENTITIES, optional=True)
    levels = _list(data, "tcbLevels", w, MAX_LEVELS)
    return TcbInfo(
        id=_str(data, "id", w),
        version=_int(data, "version", w),
        issue_date=_date(data, "issueDate", w),
        next_update=_date(data, "nextUpdate", w),
        fmspc=_hex(data, "fmspc", w, 6),
        pce_id=_hex(data, "pceId", w, 2),
        tcb_type=_int(data, "tcbType", w),
        tcb_evaluation_data_number=_int(data, "tcbEvaluationDataNumber", w),
        tdx_module=module,
        tdx_module_identities=tuple(
            _module_identity(m, f"{w}.tdxModuleIdentities[{i}]") for i, m in enumerate(identities)
        ),
        tcb_levels=tuple(_tcb_level(level, f"{w}.tcbLevels[{i}]") for i, level in enumerate(levels)),
    )


def parse_qe_identity(data: dict[str, Any]) -> QeIdentity:
    """The `enclaveIdentity` member (PCS v4 Enclave Identity, version 2). MISCSELECT hex holds the u32's bytes in
    report order (little-endian), as dcap-qvl reads it (`u32::from_le_bytes`)."""
    w = "enclaveIdentity"
    if not isinstance(data, dict):
        raise _bad(w, "object", data)
    levels = _list(data, "tcbLevels", w, MAX_LEVELS)
    return QeIdentity(
        id=_str(data, "id", w),
        version=_int(data, "version", w),
        issue_date=_date(data, "issueDate", w),
        next_update=_date(data, "nextUpdate", w),
        tcb_evaluation_data_number=_int(data, "tcbEvaluationDataNumber", w),
        miscselect=int.from_bytes(_hex(data, "miscselect", w, 4), "little"),
        miscselect_mask=int.from_bytes(_hex(data, "miscselectMask", w, 4), "little"),
        attributes=_hex(data, "attributes", w, 16),
        attributes_mask=_hex(data, "attributesMask", w, 16),
        mrsigner=_hex(data, "mrsigner", w, 32),
        isvprodid=_int(data, "isvprodid", w, 0xFFFF),
        tcb_levels=tuple(_isv_level(level, f"{w}.tcbLevels[{i}]") for i, level in enumerate(levels)),
    )
