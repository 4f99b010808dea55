"""The whole pipeline in-process (`VerifierService` from `bootstrap.build` over a migrated SQLite database) on
mutated real evidence and collateral. Faster than the gRPC fuzz (tests/property/test_grpc_fuzz.py), so more
examples and the complete deterministic list of targeted mutations.

- Every outcome is a signed result or a typed request/unavailable error, never another exception (this found two
  real bugs: a mutated VCEK whose key type is unknown, and a PCK chain whose subject only fails to decode when
  first read).
- With the vectors' genuine measurements registered and the clock at each vector's `verify_at` (so that the
  unmutated vector affirms), evidence whose signed bytes were mutated never affirms (`fuzz_support`), and nor
  does evidence whose decisive collateral changed its meaning.
- GPU vectors are appraised with their RIMs as collateral under the server's default policy `GPU_POLICY` (the
  built-in default with `gpu.ocsp` best-effort: offline, with no OCSP responses, under "require" no GPU would
  affirm). Composite requests (`composite_support`: a CPU report of a fake AMD or Intel PKI bound to real and fake
  GPU reports) whose GPU report or GPU collateral was mutated never affirm either.

The SNP vectors ship no AMD CRL and this runs offline: the no-crash test keeps CRL checking on (the default, so
the revocation code sees mutated collateral); the affirming properties turn it off, or nothing SNP would affirm."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.property.collateral_mutations import targeted_collateral, targeted_quote_chain, targeted_rims
from tests.property.composite_support import (
    CPUS,
    FAKE_IDS,
    Composite,
    CompositeWorld,
    GpuPart,
    composites,
    unmutated,
    why_composite_not_affirming,
)
from tests.property.fuzz_findings import Findings, origin
from tests.property.fuzz_support import (
    GPU_POLICY,
    REGISTERED_AT,
    TEES,
    Vector,
    diff_summary,
    focus_range,
    fuzz_settings,
    load_vectors,
    mutate,
    policy_file,
    targeted_evidence,
    why_not_affirming,
)
from tests.service_helpers import SettableClock
from verifier.bootstrap import Components, build
from verifier.errors import ErrorKind, VerifierError
from verifier.requests import GpuEvidence
from verifier.service import AppraisalRequest, AppraisalResult
from verifier.settings import Settings
from verifier.storage.migrate import upgrade
from verifier.trust.anchors import TrustAnchors

VECTORS = load_vectors()
BY_TEE = {tee: [v for v in VECTORS if v.tee == tee] for tee in TEES}
EXPECTED_ERRORS = (ErrorKind.REQUEST, ErrorKind.UNAVAILABLE)


@dataclass
class Pipeline:
    components: Components
    clock: SettableClock
    seeds: dict[str, Vector] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)

    def appraise(
        self, vector: Vector, evidence: bytes, collateral: dict[str, bytes], what: str, tee: str | None = None
    ) -> AppraisalResult | None:
        """Appraise at the vector's verify_at; None (and a recorded crash) for an unexpected exception."""
        self.clock.at = vector.verify_at
        return self.run(AppraisalRequest(tee=tee or vector.tee, evidence=evidence, collateral=collateral), what)

    def run(self, request: AppraisalRequest, what: str) -> AppraisalResult | None:
        """Appraise at the clock's time; None (and a recorded crash) for an unexpected exception."""
        try:
            return self.components.service.appraise(request, allow_incomplete=True)
        except VerifierError as error:
            if error.kind not in EXPECTED_ERRORS:
                self.findings.crash(origin(error), what, repr(error))
            return None
        except Exception as error:
            self.findings.crash(origin(error), what, repr(error))
            return None

    def affirms(self, vector: Vector, evidence: bytes, collateral: dict[str, bytes]) -> bool:
        result = self.appraise(vector, evidence, collateral, "re-appraisal without one collateral file")
        return result is not None and result.appraisal.status.value == "affirming"

    def check(self, vector: Vector, evidence: bytes, collateral: dict[str, bytes], what: str) -> None:
        """No crash; and affirming only when it is a correct answer."""
        result = self.appraise(vector, evidence, collateral, what)
        if result is None or result.appraisal.status.value != "affirming":
            return
        reason = why_not_affirming(
            vector,
            self.seeds,
            vector.tee,
            evidence,
            b"",
            b"",
            collateral,
            lambda files: self.affirms(vector, evidence, files),
        )
        if reason is not None:
            self.findings.wrong_yes(
                reason, f"{what}: {diff_summary(vector.evidence, evidence)}", f"evidence hex {evidence.hex()}"
            )


def _pipeline(tmp: Path, *, check_crl: bool, trust_anchors: Path | None, default_policy: str | None = None) -> Pipeline:
    url = f"sqlite:///{tmp / 'v.db'}"
    upgrade(url)
    clock = SettableClock(REGISTERED_AT)
    settings = Settings(
        database_url=url,
        development=True,
        offline=True,
        check_crl=check_crl,
        trust_anchors=trust_anchors,
        policy_file=policy_file(tmp),
        default_policy=default_policy,
    )
    return Pipeline(build(settings, clock=clock), clock)


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory, vectors_dir: Path) -> Iterator[Pipeline]:
    """Default settings (CRL checking on, the built-in default policy), nothing registered, no trust-anchor
    directory."""
    pipeline = _pipeline(tmp_path_factory.mktemp("service-fuzz"), check_crl=True, trust_anchors=None)
    yield pipeline
    pipeline.components.close()


@pytest.fixture(scope="module")
def world() -> CompositeWorld:
    return CompositeWorld()


@pytest.fixture(scope="module")
def approved(
    tmp_path_factory: pytest.TempPathFactory, vectors_dir: Path, trust_anchors_dir: Path, world: CompositeWorld
) -> Iterator[Pipeline]:
    """Every vector's genuine measurements and the composite CPU measurement registered, the composite PKIs'
    roots pinned beside the real ones, GPU_POLICY the default; `seeds` are the vectors that then affirm unmutated."""
    tmp = tmp_path_factory.mktemp("service-affirm")
    pipeline = _pipeline(tmp, check_crl=False, trust_anchors=trust_anchors_dir, default_policy=GPU_POLICY)
    pins = {**world.pins}
    for vendor, prints in pipeline.components.service.anchors.pins.items():
        pins[vendor] = pins.get(vendor, frozenset()) | prints
    pipeline.components.service.anchors = TrustAnchors.from_directory(trust_anchors_dir, pins=pins)
    world.register(lambda kind, value, label: pipeline.components.references.add(kind, value, label, now=REGISTERED_AT))
    registered: set[tuple[str, bytes]] = set()
    for vector in VECTORS:
        for kind, value in vector.reference_values():
            if (kind, value) not in registered and any(value):  # never approve all-zero (debug) PCRs
                registered.add((kind, value))
                pipeline.components.references.add(kind, value, vector.id, now=REGISTERED_AT)
    for vector in VECTORS:
        result = pipeline.appraise(vector, vector.evidence, vector.collateral, f"{vector.id} unmutated")
        if result is not None and result.appraisal.status.value == "affirming":
            pipeline.seeds[vector.id] = vector
    yield pipeline
    pipeline.components.close()


def _ids(vectors: list[Vector]) -> list[str]:
    return [v.id for v in vectors]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_mutations_never_crash(crashes: Pipeline, vector: Vector) -> None:
    """Mutated evidence, or one mutated collateral file, of every vector: a result or a typed error."""

    @fuzz_settings(40, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        evidence, collateral = vector.evidence, dict(vector.collateral)
        if data.draw(st.booleans()) and collateral:
            name = data.draw(st.sampled_from(sorted(collateral)))
            collateral[name] = mutate(data.draw, collateral[name])
            what = f"{vector.id} with {name} mutated: {diff_summary(vector.collateral[name], collateral[name])}"
        else:
            evidence = mutate(data.draw, evidence, [v.evidence for v in BY_TEE[vector.tee]])
            what = f"{vector.id} mutated: {diff_summary(vector.evidence, evidence)}"
        result = crashes.appraise(vector, evidence, collateral, what)
        if result is not None:
            assert result.appraisal.status.value in ("affirming", "warning", "contraindicated", "none")
            assert result.token.count(".") == 2

    run()
    crashes.findings.settle()


def test_unmutated_vectors_affirm_for_every_tee(approved: Pipeline) -> None:
    """The premise of the properties below: genuine evidence of each TEE affirms with its measurements approved."""
    assert {v.tee for v in approved.seeds.values()} == set(BY_TEE), sorted(approved.seeds)
    approved.findings.settle()


@pytest.mark.parametrize("tee", sorted(BY_TEE))
def test_mutated_signed_bytes_never_affirm(approved: Pipeline, tee: str) -> None:
    """Random mutations, half of them inside the signed bytes, of the vectors that affirm unmutated; and random
    mutations of one of their collateral files."""
    seeds = [v for v in approved.seeds.values() if v.tee == tee]
    assert seeds, f"no {tee} vector affirms unmutated"

    @fuzz_settings(150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        vector = data.draw(st.sampled_from(seeds))
        evidence, collateral = vector.evidence, dict(vector.collateral)
        if data.draw(st.integers(0, 3)) == 0 and collateral:
            name = data.draw(st.sampled_from(sorted(collateral)))
            collateral[name] = mutate(data.draw, collateral[name], [c for v in VECTORS for c in v.collateral.values()])
            what = f"{vector.id} with {name} mutated: {diff_summary(vector.collateral[name], collateral[name])}"
        else:
            pool = [v.evidence for v in BY_TEE[tee]]
            evidence = mutate(data.draw, evidence, pool, focus_range(tee, evidence))
            what = f"{vector.id} mutated"
        approved.check(vector, evidence, collateral, what)

    run()
    approved.findings.settle()


@pytest.mark.parametrize("tee", sorted(BY_TEE))
def test_targeted_mutations_never_affirm(approved: Pipeline, tee: str) -> None:
    """The complete deterministic list, for every vector that affirms unmutated: bit flips at every field
    boundary and through the signed bytes, truncations, extensions, and broken certificates and CRLs in the
    collateral and in the quote; and the SNP flips without any collateral (the paths that would fetch a VCEK)."""
    seeds = [v for v in approved.seeds.values() if v.tee == tee]
    assert seeds, f"no {tee} vector affirms unmutated"
    for vector in seeds:
        cases = [(label, ev, vector.collateral) for label, ev in targeted_evidence(vector)]
        cases += [(label, ev, vector.collateral) for label, ev in targeted_quote_chain(vector)]
        cases += [(label, vector.evidence, files) for label, files in targeted_collateral(vector)]
        cases += [(label, vector.evidence, files) for label, files in targeted_rims(vector)]
        if vector.tee == "snp":
            cases += [(f"{label}, no collateral", ev, {}) for label, ev in targeted_evidence(vector)]
        for label, evidence, collateral in cases:
            approved.check(vector, evidence, dict(collateral), f"{vector.id} {label}")
    approved.findings.settle()


# --- composite evidence ---------------------------------------------------------------------------------------------


def _composite_request(case: Composite, gpus: list[tuple[bytes, dict[str, bytes]]] | None = None) -> AppraisalRequest:
    sent = gpus if gpus is not None else [(g.evidence, g.collateral) for g in case.gpus]
    return AppraisalRequest(
        tee=case.cpu,
        evidence=case.evidence,
        collateral=case.collateral,
        nonce=case.nonce,
        runtime_data=case.runtime,
        gpus=tuple(GpuEvidence(evidence, collateral) for evidence, collateral in sent),
    )


def _check_composite(pipeline: Pipeline, world: CompositeWorld, case: Composite, what: str) -> None:
    """No crash; and affirming only when it is a correct answer (`why_composite_not_affirming`)."""
    pipeline.clock.at = world.amd.now
    result = pipeline.run(_composite_request(case), what)
    if result is None or result.appraisal.status.value != "affirming":
        return

    def affirms_with(index: int, files: dict[str, bytes]) -> bool:
        gpus = [(g.evidence, files if i == index else g.collateral) for i, g in enumerate(case.gpus)]
        again = pipeline.run(_composite_request(case, gpus), f"{what}, re-appraised without one gpu{index} file")
        return again is not None and again.appraisal.status.value == "affirming"

    affirming = {*FAKE_IDS, *(v.id for v in pipeline.seeds.values() if v.tee == "gpu")}
    reason = why_composite_not_affirming(case, case.cpu, affirming, affirms_with)
    if reason is not None:
        pipeline.findings.wrong_yes(
            reason, what, "; ".join(f"gpu{i} hex {g.evidence.hex()}" for i, g in enumerate(case.gpus))
        )


def _gpu_seeds(approved: Pipeline) -> list[Vector]:
    seeds = [v for v in approved.seeds.values() if v.tee == "gpu"]
    assert seeds, "no GPU vector affirms unmutated"
    return seeds


@pytest.mark.parametrize("cpu", CPUS)
def test_unmutated_composites_affirm(approved: Pipeline, world: CompositeWorld, cpu: str) -> None:
    """The premise: an approved CPU report bound to the affirming GPU vectors and a fake GPU affirms, every GPU too."""
    approved.clock.at = world.amd.now
    result = approved.run(_composite_request(unmutated(world, cpu, _gpu_seeds(approved))), f"{cpu} composite")
    assert result is not None and result.appraisal.status.value == "affirming", result
    assert [c.appraisal.status.value for c in result.components] == ["affirming"] * len(result.components)
    approved.findings.settle()


def test_composites_with_mutated_gpus_never_affirm(approved: Pipeline, world: CompositeWorld) -> None:
    """SNP and TDX reports bound to 1..3 affirming GPU reports (real vectors, fake GPUs), with one or two defects
    drawn (`composite_support.composites`): a GPU report or GPU collateral file mutated, a GPU that does not
    affirm, REPORT_DATA committing to other GPU reports, a nonce the GPUs did not sign, an unregistered CPU."""
    seeds, gpus = _gpu_seeds(approved), BY_TEE["gpu"]
    affirming = {v.id for v in seeds}

    @fuzz_settings(60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=composites(world, gpus, affirming))
    def run(case: Composite) -> None:
        _check_composite(approved, world, case, case.note)

    run()
    approved.findings.settle()


COMPOSITE_STRIDE = 6


def test_composites_with_targeted_gpu_mutations_never_affirm(approved: Pipeline, world: CompositeWorld) -> None:
    """Every COMPOSITE_STRIDE-th targeted mutation of the affirming GPU vectors (evidence, device chain, RIMs; all of
    them run alone above), sent beside a fake GPU in a composite whose CPU report binds the mutated report: the
    composite must catch what the GPU scheme does."""
    for seed in _gpu_seeds(approved):
        cases = [(label, ev, seed.collateral) for label, ev in targeted_evidence(seed)]
        cases += [(label, seed.evidence, files) for label, files in targeted_collateral(seed)]
        cases += [(label, seed.evidence, files) for label, files in targeted_rims(seed)]
        for index, (label, evidence, files) in enumerate(cases[::COMPOSITE_STRIDE]):
            cpu = CPUS[index % len(CPUS)]
            base = unmutated(world, cpu, [seed])
            parts = [GpuPart(seed, evidence, dict(files), f"{seed.id} {label}"), base.gpus[1]]
            sent = [p.evidence for p in parts]
            evidence_cpu, collateral = world.cpu(cpu, True, base.nonce, base.runtime, sent)
            case = Composite(cpu, True, parts, sent, base.nonce, base.runtime, evidence_cpu, dict(collateral), label)
            _check_composite(approved, world, case, f"{cpu} composite, gpu0 {seed.id} {label}")
    approved.findings.settle()
