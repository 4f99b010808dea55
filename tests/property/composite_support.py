"""Composite requests for the whole-pipeline fuzzers: a CPU TEE report (SEV-SNP or TDX, signed by fake AMD / Intel
PKIs at the GPU vectors' time) with the reports of the GPUs it drives (verifier/composite.py), some of them mutated.

The GPUs are the real GPU vectors (with their RIMs) and fake NVIDIA GPUs (tests/integration/composite_helpers.py
`NvidiaWorld`: device PKIs, RIMs and OCSP responses, every root pinned), minted for the request's nonce. The CPU
report's measurement is COMPOSITE_MEASUREMENT (registered) or an unregistered one, and its REPORT_DATA commits to
the GPU reports (`composite_report_data`): those sent, their unmutated originals, or a reordered or shortened list.

`why_composite_not_affirming` is the property: "affirming" is a correct answer only for an approved CPU report bound
to exactly the GPU reports sent, each derived from a GPU report that affirms, with its signed bytes unchanged, the
request's nonce when one is given and no collateral changed that the verdict depends on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.intel_pki import FakeIntelPki
from tests.fakes.nvidia_pki import DEFAULT_NOW as GPU_NOW
from tests.integration.composite_helpers import NvidiaWorld, snp_files
from tests.property.fuzz_support import Vector, collateral_content, diff_summary, focus_range, mutate, signed_content
from verifier.appraisal.binding import composite_report_data
from verifier.tee.sevsnp.tcb import Product

COMPOSITE_MEASUREMENT = hashlib.sha384(b"property composite CPU").digest()  # SNP MEASUREMENT and TDX MR_TD
TD_ATTRIBUTES = bytes.fromhex("0000001000000000")  # SEPT_VE_DISABLE: what the default policy requires
CPUS = ("snp", "tdx")


@dataclass(frozen=True)
class GpuPart:
    origin: Vector | None  # the genuine report it derives from; None for random bytes
    evidence: bytes
    collateral: dict[str, bytes] = field(hash=False)
    note: str


@dataclass(repr=False)
class Composite:
    cpu: str
    approved: bool  # the CPU report carries COMPOSITE_MEASUREMENT
    gpus: list[GpuPart]
    bound: list[bytes]  # the GPU reports the CPU report's REPORT_DATA commits to
    nonce: bytes | None
    runtime: bytes | None
    evidence: bytes  # the CPU report
    collateral: dict[str, bytes]
    note: str

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: the note, not 50 KB of bytes
        return f"Composite({self.note})"


class CompositeWorld:
    """The fake CPU PKIs at GPU_NOW and two fake NVIDIA GPUs; GPU reports are minted once per (device, nonce,
    approved), so that hypothesis sees the same bytes for the same draws."""

    def __init__(self) -> None:
        self.amd = FakeAmdPki(Product.GENOA, now=GPU_NOW)
        self.intel = FakeIntelPki(now=GPU_NOW)
        self.nvidia = NvidiaWorld(GPU_NOW, devices=2)
        self.amd_files = snp_files(self.amd)
        self.intel_files = self.intel.collateral_files()
        self._minted: dict[tuple[int, bytes, bool], Vector] = {}

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for extra in (self.amd.pins, self.intel.pins, self.nvidia.pins):
            for vendor, prints in extra.items():
                out[vendor] = out.get(vendor, frozenset()) | prints
        return out

    def register(self, add: Callable[[str, bytes, str], object]) -> None:
        """Approve COMPOSITE_MEASUREMENT through `add(kind, value, label)`."""
        add("snp.measurement", COMPOSITE_MEASUREMENT, "composite-fuzz-snp")  # a label (workload) is of one TEE
        add("tdx.mr_td", COMPOSITE_MEASUREMENT, "composite-fuzz-tdx")

    def fake_gpu(self, device: int, nonce: bytes, approved: bool) -> Vector:
        """A fake NVIDIA GPU's report for `nonce` as a genuine origin (its id says whether its RIMs approve it)."""
        key = (device, nonce, approved)
        if key not in self._minted:
            gpu = self.nvidia.gpu(nonce, device=device, approved=approved)
            name = f"fake-gpu{device}-{'approved' if approved else 'unapproved'}"
            facts = {"nonce": nonce.hex()}
            self._minted[key] = Vector(name, "gpu", GPU_NOW, gpu.evidence, dict(gpu.collateral), facts)
        return self._minted[key]

    def cpu(
        self, tee: str, approved: bool, nonce: bytes | None, runtime: bytes | None, bound: Sequence[bytes]
    ) -> tuple[bytes, dict[str, bytes]]:
        """The CPU report binding `bound` (and the nonce and runtime data), with its collateral."""
        data = composite_report_data(nonce, runtime, list(bound))
        measurement = COMPOSITE_MEASUREMENT if approved else hashlib.sha384(b"unregistered").digest()
        if tee == "snp":
            return self.amd.report(report_data=data, measurement=measurement), self.amd_files
        quote = self.intel.quote(report_data=data, mr_td=measurement, td_attributes=TD_ATTRIBUTES)
        return quote, self.intel_files


FAKE_IDS = ("fake-gpu0-approved", "fake-gpu1-approved")  # the fake GPUs whose reports affirm unmutated


# What a drawn composite gets wrong (one or two of them; "none": nothing).
DEFECTS = (
    "evidence",
    "evidence",
    "evidence",
    "collateral",
    "collateral",
    "foreign gpu",
    "binding",
    "nonce",
    "cpu",
    "none",
)


@st.composite
def composites(draw: st.DrawFn, world: CompositeWorld, real: Sequence[Vector], affirming: Collection[str]) -> Composite:
    """A composite request (module docstring): an approved CPU report bound to 1..3 GPU reports that affirm (the
    `affirming` real vectors and approved fake GPUs) for one nonce, then one or two defects: a GPU report mutated
    (the CPU report binding the mutated bytes), a GPU collateral file mutated, a GPU replaced by one that does not
    affirm (another vector, an unapproved fake GPU, random bytes), REPORT_DATA committing to other GPU reports, a
    request nonce the GPUs did not sign, an unregistered CPU measurement."""
    seeds = [v for v in real if v.id in affirming] or list(real)
    shared = bytes.fromhex(seeds[0].facts["nonce"])  # the real seed's signed nonce: fake GPUs are minted for it too
    nonce: bytes | None = draw(st.sampled_from([shared, shared, None]))
    count = draw(st.integers(1, 3))
    clean = [draw(st.sampled_from([*seeds, *(world.fake_gpu(d, shared, True) for d in (0, 1))])) for _ in range(count)]
    gpus = [GpuPart(o, o.evidence, dict(o.collateral), o.id) for o in clean]
    defects = draw(st.lists(st.sampled_from(DEFECTS), min_size=1, max_size=2))
    pool = [v.evidence for v in real]
    for defect in defects:
        target = draw(st.integers(0, count - 1))
        if defect == "evidence":
            gpus[target] = _mutated(draw, gpus[target], pool, collateral=False)
        elif defect == "collateral":
            gpus[target] = _mutated(draw, gpus[target], pool, collateral=True)
        elif defect == "foreign gpu":
            gpus[target] = _foreign(draw, world, real, shared)
        elif defect == "nonce":
            nonce = draw(st.binary(min_size=32, max_size=32))
    bound = [g.evidence for g in gpus]
    if "binding" in defects:
        other = world.fake_gpu(1, shared, False).evidence
        bound = draw(st.sampled_from([[c.evidence for c in clean], bound[::-1], bound[1:], [*bound, other]]))
    approved = "cpu" not in defects
    tee = draw(st.sampled_from(CPUS))
    runtime = draw(st.one_of(st.none(), st.binary(min_size=1, max_size=64)))
    evidence, collateral = world.cpu(tee, approved, nonce, runtime, bound)
    notes = ", ".join(g.note for g in gpus)
    note = f"{tee} defects {defects} nonce={nonce is not None} runtime={runtime is not None}; gpus: {notes}"
    return Composite(tee, approved, gpus, bound, nonce, runtime, evidence, dict(collateral), note)


def _foreign(draw: st.DrawFn, world: CompositeWorld, real: Sequence[Vector], nonce: bytes) -> GpuPart:
    """A GPU whose report does not affirm: any real vector, an unapproved fake GPU, or random bytes."""
    kind = draw(st.sampled_from(["vector", "unapproved", "random"]))
    if kind == "random":
        return GpuPart(None, draw(st.binary(min_size=1, max_size=600)), {}, "random bytes")
    origin = draw(st.sampled_from(list(real))) if kind == "vector" else world.fake_gpu(0, nonce, False)
    return GpuPart(origin, origin.evidence, dict(origin.collateral), origin.id)


def _mutated(draw: st.DrawFn, part: GpuPart, pool: list[bytes], *, collateral: bool) -> GpuPart:
    assert part.origin is not None
    if collateral and part.collateral:
        name = draw(st.sampled_from(sorted(part.collateral)))
        files = {**part.collateral, name: mutate(draw, part.collateral[name], pool)}
        what = diff_summary(part.collateral[name], files[name])
        return GpuPart(part.origin, part.evidence, files, f"{part.note} with {name} mutated: {what}")
    evidence = mutate(draw, part.evidence, pool, focus_range("gpu", part.evidence))
    what = diff_summary(part.evidence, evidence)
    return GpuPart(part.origin, evidence, part.collateral, f"{part.note} mutated: {what}")


def why_composite_not_affirming(
    case: Composite,
    tee: str,
    affirming: Collection[str],
    affirms_with: Callable[[int, dict[str, bytes]], bool],
) -> str | None:
    """None when "affirming" is a correct answer to the composite `case` appraised as `tee`, else why not (module
    docstring). `affirming` names the GPU origins that affirm unmutated; `affirms_with(i, files)` appraises the same
    request with GPU i's collateral replaced by `files`."""
    if tee != case.cpu:
        return f"{case.cpu} evidence appraised as {tee}"
    if not case.approved:
        return "the CPU report's measurement is not registered"
    if case.bound != [g.evidence for g in case.gpus]:
        return "the CPU report's REPORT_DATA commits to other GPU reports than those sent"
    for index, part in enumerate(case.gpus):
        origin = part.origin
        if origin is None or origin.id not in affirming:
            return f"gpu{index} is not derived from a GPU report that affirms"
        if signed_content("gpu", part.evidence) != signed_content("gpu", origin.evidence):
            return f"the signed bytes of gpu{index} were mutated"
        if case.nonce is not None and origin.facts.get("nonce") != case.nonce.hex():
            return f"gpu{index} signs another nonce than the request's"
        for name, content in part.collateral.items():
            genuine = origin.collateral.get(name)
            if genuine is not None and collateral_content(name, content, genuine) == collateral_content(
                name, genuine, genuine
            ):
                continue
            if not affirms_with(index, {n: c for n, c in part.collateral.items() if n != name}):
                return f"gpu{index} collateral {name!r} was changed and the verdict depends on it"
    return None


def unmutated(world: CompositeWorld, tee: str, seeds: Sequence[Vector]) -> Composite:
    """The premise: an approved CPU report bound to the real seeds and one fake GPU, for the seeds' nonce."""
    nonce = bytes.fromhex(seeds[0].facts["nonce"])
    origins = [*seeds, world.fake_gpu(0, nonce, True)]
    gpus = [GpuPart(o, o.evidence, dict(o.collateral), o.id) for o in origins]
    evidence, collateral = world.cpu(tee, True, nonce, b"key", [g.evidence for g in gpus])
    return Composite(
        tee, True, gpus, [g.evidence for g in gpus], nonce, b"key", evidence, dict(collateral), "unmutated"
    )
