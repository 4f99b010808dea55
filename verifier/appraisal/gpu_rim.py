"""Comparison of a GPU report's measurement blocks with the golden values of its driver and VBIOS RIMs (pure: no
crypto, no I/O; the RIMs were verified by `verifier.tee.gpu.rim_verify`).

The rules are nv-local-gpu-verifier's (verifier.py `Verifier`, rim/__init__.py; ../shared/vectors/README.md "RIM
matching"), so that both reach the same pass/fail per measurement block:
- only active entries count; an index active in both RIMs is a conflict (NVIDIA: DRV_VBIOS_MSR_INDEX_CONFLICT,
  the whole comparison fails);
- RIM index k is compared with SPDM measurement block k + 1;
- a block matches when its value equals one of the entry's alternatives and the entry's `size` equals the value's
  length; a missing block is a mismatch;
- more active golden entries than blocks in the report fail the comparison as a whole;
- the RIMs must be for the reported versions: the driver RIM's colloquialVersion equal to the report's driver
  version, the VBIOS RIM's equal to the VBIOS version ignoring case (RIMs write 96.00.5E.00.01, reports are read as
  96.00.5e.00.01).
NVIDIA's code means to skip index 35 when NVDEC0 is disabled but compares bytes with an Enum, so it always compares
35; so does this. Values are compared as bytes (NVIDIA compares hex strings: the same for the lowercase hex that
RIMs carry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from verifier.tee.gpu.rim import RimKind, RimMeasurement
from verifier.tee.gpu.rim_verify import VerifiedRim

IndexOutcome = Literal["match", "mismatch", "size", "missing"]


class RimReportValues(Protocol):
    """What the comparison needs from a GPU report: measurement values by SPDM block index, and the versions read
    from its opaque data (None when absent)."""

    @property
    def measurements(self) -> Mapping[int, bytes]:
        """SPDM block index -> the block's measurement value."""
        ...

    @property
    def driver_version(self) -> str | None:
        """The DRIVER_VERSION opaque field (e.g. "545.00")."""
        ...

    @property
    def vbios_version(self) -> str | None:
        """The VBIOS_VERSION opaque field, dotted (e.g. "96.00.5e.00.01")."""
        ...


@dataclass(frozen=True)
class ReportValues:
    """A plain `RimReportValues`."""

    measurements: Mapping[int, bytes]
    driver_version: str | None
    vbios_version: str | None


@dataclass(frozen=True)
class IndexResult:
    """One active golden entry against the report: `expected` are its alternatives, `actual` the value of SPDM block
    `spdm_index` (None: the report has no such block). `outcome` says why `ok` is False ("size": a value among the
    alternatives, but `size` is not its length)."""

    rim_index: int
    spdm_index: int
    source: RimKind
    expected: tuple[bytes, ...]
    size: int
    actual: bytes | None
    outcome: IndexOutcome

    @property
    def ok(self) -> bool:
        """Whether the block matches the entry."""
        return self.outcome == "match"


@dataclass(frozen=True)
class VersionCheck:
    """Whether the `kind` RIM is for the reported version."""

    kind: RimKind
    rim_version: str
    report_version: str | None
    ok: bool


@dataclass(frozen=True)
class RimComparison:
    """Per-index results (sorted by RIM index; for a conflicting index, the driver's entry), version checks of the
    RIMs given, indices active in both RIMs, and the counts behind the golden-vs-report count rule."""

    results: tuple[IndexResult, ...]
    versions: tuple[VersionCheck, ...]
    missing: tuple[RimKind, ...]
    conflicts: tuple[int, ...]
    golden_count: int
    report_count: int

    @property
    def failed(self) -> tuple[IndexResult, ...]:
        """The entries whose block did not match."""
        return tuple(r for r in self.results if not r.ok)

    @property
    def too_many_golden(self) -> bool:
        """More active golden entries than measurement blocks in the report."""
        return self.golden_count > self.report_count

    @property
    def measurements_ok(self) -> bool:
        """Every active golden entry matched, without conflict or count failure (NVIDIA's measurement verdict)."""
        return not self.conflicts and not self.too_many_golden and all(r.ok for r in self.results)

    @property
    def ok(self) -> bool:
        """Both RIMs given, both for the reported versions, and `measurements_ok`."""
        return not self.missing and all(v.ok for v in self.versions) and self.measurements_ok


def _compare(entry: RimMeasurement, source: RimKind, measurements: Mapping[int, bytes]) -> IndexResult:
    actual = measurements.get(entry.index + 1)
    outcome: IndexOutcome
    if actual is None:
        outcome = "missing"
    elif actual not in entry.alternatives:
        outcome = "mismatch"
    else:
        outcome = "match" if entry.size == len(actual) else "size"
    return IndexResult(
        rim_index=entry.index,
        spdm_index=entry.index + 1,
        source=source,
        expected=entry.alternatives,
        size=entry.size,
        actual=actual,
        outcome=outcome,
    )


def _version(kind: RimKind, rim: VerifiedRim, reported: str | None) -> VersionCheck:
    wanted = rim.colloquial_version
    if reported is None:
        ok = False
    elif kind == "vbios":
        ok = wanted.casefold() == reported.casefold()
    else:
        ok = wanted == reported
    return VersionCheck(kind=kind, rim_version=wanted, report_version=reported, ok=ok)


def compare_rims(driver: VerifiedRim | None, vbios: VerifiedRim | None, report: RimReportValues) -> RimComparison:
    """Compare `report` with the active entries of the RIMs given (module docstring). A RIM that is None is said in
    `missing` and contributes nothing. Never raises."""
    measurements = report.measurements
    driver_active = driver.rim.active if driver is not None else ()
    vbios_active = vbios.rim.active if vbios is not None else ()
    driver_indices = {m.index for m in driver_active}
    conflicts = tuple(sorted(m.index for m in vbios_active if m.index in driver_indices))
    results = [_compare(m, "driver", measurements) for m in driver_active]
    results += [_compare(m, "vbios", measurements) for m in vbios_active if m.index not in driver_indices]
    versions = []
    if driver is not None:
        versions.append(_version("driver", driver, report.driver_version))
    if vbios is not None:
        versions.append(_version("vbios", vbios, report.vbios_version))
    missing: list[RimKind] = []
    if driver is None:
        missing.append("driver")
    if vbios is None:
        missing.append("vbios")
    return RimComparison(
        results=tuple(sorted(results, key=lambda r: r.rim_index)),
        versions=tuple(versions),
        missing=tuple(missing),
        conflicts=conflicts,
        golden_count=len(driver_active) + len(vbios_active),
        report_count=len(measurements),
    )
