"""Fuzz the whole gRPC surface of a real server (port 0, a migrated SQLite database; PostgreSQL too when
VERIFIER_TEST_DATABASE_URL is set) with random requests, mutated real vectors and hostile but signed evidence.

The genuine measurements of every vector are registered (through the admin API) and the server's injected clock
is set to each vector's `verify_at` before its call, so an unmutated vector affirms. Properties:
- no call ends INTERNAL; every non-OK status is INVALID_ARGUMENT, UNAVAILABLE, NOT_FOUND, UNAUTHENTICATED,
  PERMISSION_DENIED or RESOURCE_EXHAUSTED with a google.rpc.ErrorInfo reason (README "gRPC API");
- a vector whose signed bytes were mutated (`fuzz_support.signed_content`) never affirms, nor one appraised with a
  nonce or runtime data it is not bound to, nor one whose decisive collateral changed its meaning;
- admin calls without a valid credential are UNAUTHENTICATED, whatever the request;
- a composite request (an SNP or TDX report with GPU reports, `composite_support`) whose GPU report or GPU
  collateral was mutated, or whose CPU report binds other GPU reports, never affirms.

GPU reports are appraised with their RIMs (collateral) under the server's default policy `GPU_POLICY` (gpu.ocsp
best-effort: offline, the real GPU vectors have no OCSP responses).

The SNP vectors ship no AMD CRL and the server is offline, so CRL checking is off here (the CRL code is fuzzed
through collateral mutations at the service level). Findings are collected, see `fuzz_findings`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.dbfixtures import PG_ENV, with_search_path
from tests.property.collateral_mutations import targeted_collateral, targeted_quote_chain, targeted_rims
from tests.property.composite_support import (
    FAKE_IDS,
    Composite,
    CompositeWorld,
    composites,
    why_composite_not_affirming,
)
from tests.property.fuzz_findings import Findings
from tests.property.fuzz_support import (
    GPU_POLICY,
    HOSTILE_BYTES,
    NUL_TEXT,
    REGISTERED_AT,
    SNP_FIELD_STARTS,
    UNICODE_TEXT,
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
from tests.property.grpc_harness import Reply, ServerThread
from tests.property.minted import FakePkis, Minted, minted, targeted_minted
from tests.service_helpers import SettableClock
from verifier.bootstrap import Components, build
from verifier.logging_setup import accept_request_id
from verifier.requests import GpuEvidence
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage.engine import normalize_url
from verifier.storage.migrate import upgrade
from verifier.v1 import verifier_pb2 as pb

TOKEN = "fuzz-admin-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)
KINDS = {
    "snp": pb.EVIDENCE_KIND_SEV_SNP,
    "tdx": pb.EVIDENCE_KIND_TDX,
    "nitro": pb.EVIDENCE_KIND_NITRO,
    "gpu": pb.EVIDENCE_KIND_NVIDIA_GPU,
}
VECTORS = load_vectors()
BY_TEE = {tee: [v for v in VECTORS if v.tee == tee] for tee in KINDS}
COLLATERAL_NAMES = sorted({n for v in VECTORS for n in v.collateral} | {"vcek.pem", "cert_table.bin", "crl.der"})
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --- the server -------------------------------------------------------------------------------------------------


@dataclass
class Fuzz:
    server: ServerThread
    components: Components
    clock: SettableClock
    pkis: FakePkis
    world: CompositeWorld
    seeds: dict[str, Vector] = field(default_factory=dict)  # vectors that affirm unmutated
    findings: Findings = field(default_factory=Findings)

    def at(self, when: dt.datetime) -> None:
        self.clock.at = when

    def call(self, method: Any, request: Any, metadata: Any = (), what: str = "") -> Reply:
        """One RPC; a contract break (INTERNAL, an unexpected code, no ErrorInfo) is recorded as a crash."""
        reply = self.server.call(method, request, metadata)
        if reply.failure is not None:
            f = reply.failure
            self.findings.crash(f"{f.method} {f.code} at {f.where}", what or str(request)[:2000], f.traceback)
        return reply


def _database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fuzz.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: the PostgreSQL fuzz run is skipped")
    schema = f"verifier_fuzz_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base), poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(base, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _start(url: str, trust_anchors_dir: Path, pkis: FakePkis, world: CompositeWorld, tmp: Path) -> Fuzz:
    upgrade(url)
    clock = SettableClock(REGISTERED_AT)
    settings = Settings(
        database_url=url,
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="off",
        admin_token_sha256=(hashlib.sha256(TOKEN.encode()).hexdigest(),),
        grace_seconds=0,
        trust_anchors=trust_anchors_dir,
        check_crl=False,
        policy_file=policy_file(tmp),
        default_policy=GPU_POLICY,
    )
    components = build(settings, clock=clock)
    components.service.anchors = pkis.anchors(trust_anchors_dir, world.pins)
    server = ServerThread(components)
    server.start()
    return Fuzz(server, components, clock, pkis, world)


@pytest.fixture(scope="module")
def pkis() -> FakePkis:
    return FakePkis()


@pytest.fixture(scope="module")
def world() -> CompositeWorld:
    return CompositeWorld()


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    vectors_dir: Path,
    trust_anchors_dir: Path,
    pkis: FakePkis,
    world: CompositeWorld,
) -> Iterator[Fuzz]:
    """The server with every vector's genuine measurements and the composite CPU measurement registered through the
    admin API."""
    tmp = tmp_path_factory.mktemp("grpc-fuzz")
    for url in _database_url(request.param, tmp):
        fz = _start(url, trust_anchors_dir, pkis, world, tmp)
        try:
            fz.at(REGISTERED_AT)

            def add(kind: str, value: bytes, label: str) -> None:
                body = pb.AddReferenceValueRequest(kind=kind, value=value.hex(), label=label)
                reply = fz.call(fz.server.refs.Add, body, ADMIN)
                assert reply.code == grpc.StatusCode.OK, (kind, reply.code, reply.reason)

            world.register(add)
            registered: set[tuple[str, bytes]] = set()
            for vector in VECTORS:
                for kind, value in vector.reference_values():
                    if (kind, value) in registered or not any(value):
                        continue  # debug-mode PCRs are all zero: never approve them
                    registered.add((kind, value))
                    add(kind, value, vector.id)
            for vector in VECTORS:
                fz.at(vector.verify_at)
                reply = fz.call(fz.server.verifier.Appraise, _request(vector, vector.evidence, vector.collateral))
                if reply.code == grpc.StatusCode.OK and reply.response.status == pb.STATUS_AFFIRMING:
                    fz.seeds[vector.id] = vector
            yield fz
        finally:
            fz.server.stop()
            fz.components.close()


def _request(vector: Vector, evidence: bytes, collateral: dict[str, bytes], **fields: Any) -> pb.AppraiseRequest:
    files = [pb.CollateralFile(name=n, content=c) for n, c in collateral.items()]
    return pb.AppraiseRequest(kind=KINDS[vector.tee], evidence=evidence, collateral=files, **fields)


def _describe(request: pb.AppraiseRequest) -> str:
    names = [(f.name, len(f.content)) for f in request.collateral]
    return (
        f"Appraise(kind={request.kind}, evidence {len(request.evidence)} bytes sha256 "
        f"{hashlib.sha256(request.evidence).hexdigest()[:16]}, collateral {names}, nonce {request.nonce.hex()}, "
        f"runtime_data {request.runtime_data[:64]!r} ({len(request.runtime_data)} bytes), "
        f"policy {request.policy!r})"
    )


def _full(request: pb.AppraiseRequest) -> str:
    files = {f.name: f.content.hex() for f in request.collateral}
    return f"evidence hex {request.evidence.hex()}\ncollateral hex {json.dumps(files)}"


def test_unmutated_vectors_affirm_for_every_tee(fuzz: Fuzz) -> None:
    """The premise of the wrong-"yes" property: genuine evidence of each TEE does affirm on this server."""
    assert {v.tee for v in fuzz.seeds.values()} == set(KINDS), sorted(fuzz.seeds)
    fuzz.findings.settle()


# --- Appraise -----------------------------------------------------------------------------------------------------


@dataclass
class Case:
    kind: int
    evidence: bytes
    collateral: dict[str, bytes]
    when: dt.datetime
    origin: Vector | None  # the genuine vector the evidence was derived from
    note: str
    nonce_mode: str = "none"  # none | random | challenge | replayed
    nonce: bytes = b""
    runtime_data: bytes = b""
    policy: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    mint: Minted | None = None  # evidence made after the challenge, bound to it


REQUEST_IDS = st.one_of(
    st.none(),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200),
    st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"),
)
POLICIES = st.one_of(
    st.just(""),
    st.sampled_from(["default", "nonce-required", "DEFAULT", "default "]),
    UNICODE_TEXT,
    NUL_TEXT,
    st.text(min_size=100, max_size=300),
)


@st.composite
def _collateral(draw: st.DrawFn, base: dict[str, bytes]) -> tuple[dict[str, bytes], str]:
    base = dict(base)
    mode = draw(st.sampled_from(["genuine", "genuine", "mutated", "subset", "foreign", "random", "none"]))
    if mode == "mutated" and base:
        name = draw(st.sampled_from(sorted(base)))
        base[name] = mutate(draw, base[name], [c for v in VECTORS for c in v.collateral.values()])
        return base, f"collateral {name} mutated"
    if mode == "subset" and base:
        keep = draw(st.sets(st.sampled_from(sorted(base))))
        return {n: c for n, c in base.items() if n in keep}, f"collateral subset {sorted(keep)}"
    if mode == "foreign":
        other = draw(st.sampled_from(VECTORS))
        return {**base, **other.collateral}, f"collateral of {other.id} added"
    if mode == "random":
        names = st.one_of(st.sampled_from(COLLATERAL_NAMES), UNICODE_TEXT, NUL_TEXT)
        extra = draw(st.dictionaries(names, st.one_of(st.binary(max_size=300), HOSTILE_BYTES), max_size=4))
        return {**base, **extra}, f"random collateral {sorted(extra)}"
    if mode == "none":
        return {}, "no collateral"
    return base, "genuine collateral"


@st.composite
def appraise_cases(draw: st.DrawFn, pkis: FakePkis) -> Case:
    source = draw(st.sampled_from(["vector", "mutated", "mutated", "mutated", "spliced", "random", "minted", "minted"]))
    vector = draw(st.sampled_from(VECTORS))
    mint: Minted | None = None
    origin: Vector | None = vector
    when, tee, base = vector.verify_at, vector.tee, vector.collateral
    if source == "vector":
        evidence, note = vector.evidence, f"{vector.id} unmutated"
    elif source == "mutated":
        pool = [v.evidence for v in BY_TEE[vector.tee]]
        evidence = mutate(draw, vector.evidence, pool, focus_range(vector.tee, vector.evidence))
        note = f"{vector.id} mutated: {diff_summary(vector.evidence, evidence)}"
    elif source == "spliced":
        other = draw(st.sampled_from(VECTORS))
        cut = draw(st.integers(0, len(vector.evidence)))
        evidence = vector.evidence[:cut] + other.evidence[cut:]
        note = f"{vector.id}[:{cut}] + {other.id}[{cut}:]"
    elif source == "random":
        evidence, origin, note = draw(st.binary(max_size=2048)), None, "random bytes"
    else:
        mint = draw(minted(pkis))
        evidence, origin, when, tee, note = b"", None, mint.when, mint.tee, mint.note
        base = mint.factory(None, None)[1]
    kind = draw(
        st.one_of(st.just(KINDS[tee]), st.sampled_from(sorted(KINDS.values())), st.integers(-(2**31), 2**31 - 1))
    )
    collateral, collateral_note = draw(_collateral(base))
    nonce_mode = draw(st.sampled_from(["none", "none", "random", "challenge", "replayed"]))
    runtime = draw(st.one_of(st.just(b""), HOSTILE_BYTES))
    public_key = vector.facts.get("public_key") if source != "minted" and vector.tee == "nitro" else None
    if public_key and public_key != "None" and draw(st.booleans()):
        runtime = bytes.fromhex(public_key)  # the document's own key: a binding that holds
    request_id = draw(REQUEST_IDS)
    return Case(
        kind,
        evidence,
        collateral,
        when,
        origin,
        f"{note}; {collateral_note}; nonce {nonce_mode}",
        nonce_mode=nonce_mode,
        nonce=draw(st.binary(max_size=1100)) if nonce_mode == "random" else b"",
        runtime_data=runtime,
        policy=draw(POLICIES),
        metadata=(("x-request-id", request_id),) if request_id is not None else (),
        mint=mint,
    )


TEE_OF_KIND = {kind: tee for tee, kind in KINDS.items()}


def _why_not_affirming(fz: Fuzz, case: Case, request: pb.AppraiseRequest) -> str | None:
    origin = case.origin

    def affirms(collateral: dict[str, bytes]) -> bool:
        assert origin is not None
        without = AppraisalRequest(tee=origin.tee, evidence=request.evidence, collateral=collateral)
        return fz.components.service.appraise(without, allow_incomplete=True).appraisal.status.value == "affirming"

    return why_not_affirming(
        origin,
        fz.seeds,
        TEE_OF_KIND.get(request.kind, str(request.kind)),
        request.evidence,
        request.nonce,
        request.runtime_data,
        {f.name: f.content for f in request.collateral},
        affirms,
    )


def _run_case(fz: Fuzz, case: Case) -> None:
    fz.at(case.when)
    nonce = case.nonce
    if case.nonce_mode in ("challenge", "replayed"):
        size = 32 if case.mint is not None else len(nonce) or 32
        challenge = fz.call(fz.server.verifier.CreateChallenge, pb.CreateChallengeRequest(nonce_size=size))
        nonce = challenge.response.nonce if challenge.code == grpc.StatusCode.OK else b""
    evidence, collateral = case.evidence, case.collateral
    if case.mint is not None:  # signed now, bound to the challenge (the collateral was drawn with the case)
        evidence = case.mint.factory(nonce or None, case.runtime_data or None)[0]
    request = pb.AppraiseRequest(
        kind=cast(Any, case.kind),
        evidence=evidence,
        nonce=nonce,
        runtime_data=case.runtime_data,
        policy=case.policy,
        collateral=[pb.CollateralFile(name=n, content=c) for n, c in collateral.items()],
    )
    what = f"{case.note}; {_describe(request)}"
    if case.nonce_mode == "replayed":
        fz.call(fz.server.verifier.Appraise, request, case.metadata, what)
    reply = fz.call(fz.server.verifier.Appraise, request, case.metadata, what)
    request_id = dict(case.metadata).get("x-request-id")
    echo = request_id is not None and accept_request_id(request_id) == request_id  # the server keeps it
    if reply.code != grpc.StatusCode.OK:
        assert reply.failure is not None or reply.request_id, "ErrorInfo without request_id"
        assert reply.failure is not None or not echo or reply.request_id == request_id
        return
    response = reply.response
    assert response.status in (pb.STATUS_AFFIRMING, pb.STATUS_WARNING, pb.STATUS_CONTRAINDICATED, pb.STATUS_NONE)
    assert response.token.count(".") == 2 and response.appraisal_id and response.tee in KINDS
    assert all(f.code and f.tier != pb.STATUS_UNSPECIFIED for f in response.findings)
    assert not echo or reply.echoed_request_id == request_id
    if response.status == pb.STATUS_AFFIRMING:
        reason = _why_not_affirming(fz, case, request)
        if reason is not None:
            fz.findings.wrong_yes(reason, what, _full(request))


def test_appraise_fuzz(fuzz: Fuzz) -> None:
    """Random, genuine, mutated, spliced and hostile-but-signed evidence with every other field fuzzed."""

    @fuzz_settings(300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=appraise_cases(fuzz.pkis))
    def run(case: Case) -> None:
        _run_case(fuzz, case)

    run()
    fuzz.findings.settle()


# Every STRIDE-th targeted case goes through gRPC; test_service_fuzz.py runs all of them in-process.
STRIDE = 4


def test_appraise_targeted_mutations(fuzz: Fuzz) -> None:
    """Deterministic: bit flips at every field boundary and through the signed bytes, truncations, extensions,
    and broken certificates and CRLs (in collateral and in the quote), of every vector that affirms unmutated."""
    checked = 0
    for vector in fuzz.seeds.values():
        cases = [(label, ev, vector.collateral) for label, ev in targeted_evidence(vector)]
        cases += [(label, ev, vector.collateral) for label, ev in targeted_quote_chain(vector)]
        cases += [(label, vector.evidence, files) for label, files in targeted_collateral(vector)]
        cases += [(label, vector.evidence, files) for label, files in targeted_rims(vector)]
        for label, evidence, collateral in cases[::STRIDE]:
            _run_case(
                fuzz, Case(KINDS[vector.tee], evidence, collateral, vector.verify_at, vector, f"{vector.id} {label}")
            )
            checked += 1
        if vector.tee == "snp":  # field boundaries without collateral: the paths that would fetch a VCEK
            for label, evidence in targeted_evidence(vector)[: 2 * len(SNP_FIELD_STARTS) : 2]:
                _run_case(
                    fuzz,
                    Case(
                        KINDS[vector.tee], evidence, {}, vector.verify_at, vector, f"{vector.id} {label}, no collateral"
                    ),
                )
    assert checked > 200
    fuzz.findings.settle()


def test_appraise_targeted_minted(fuzz: Fuzz) -> None:
    """Deterministic hostile-but-signed evidence bound to a fresh challenge: deeply nested JSON as runtime data,
    NUL and unicode in signed text, repeated CBOR keys, reserved TCB bytes (`minted.targeted_minted`)."""
    for label, mint, runtime in targeted_minted(fuzz.pkis):
        _run_case(
            fuzz,
            Case(
                KINDS[mint.tee],
                b"",
                mint.factory(None, None)[1],
                mint.when,
                None,
                label,
                nonce_mode="challenge",
                runtime_data=runtime,
                mint=mint,
            ),
        )
    fuzz.findings.settle()


# --- composite evidence -------------------------------------------------------------------------------------------


def _pb_gpus(gpus: list[tuple[bytes, dict[str, bytes]]]) -> list[pb.GpuEvidence]:
    return [
        pb.GpuEvidence(evidence=e, collateral=[pb.CollateralFile(name=n, content=c) for n, c in files.items()])
        for e, files in gpus
    ]


def _run_composite(fz: Fuzz, case: Composite, kind: int, policy: str) -> None:
    """One composite Appraise: the contract, one component per GPU, and affirming only when correct."""
    fz.at(fz.world.amd.now)
    request = pb.AppraiseRequest(
        kind=cast(Any, kind),
        evidence=case.evidence,
        collateral=[pb.CollateralFile(name=n, content=c) for n, c in case.collateral.items()],
        nonce=case.nonce or b"",
        runtime_data=case.runtime or b"",
        policy=policy,
        gpus=_pb_gpus([(g.evidence, g.collateral) for g in case.gpus]),
    )
    what = f"composite {case.note}; kind {kind}; policy {policy!r}"
    reply = fz.call(fz.server.verifier.Appraise, request, (), what)
    if reply.code != grpc.StatusCode.OK:
        return
    response = reply.response
    assert response.status in (pb.STATUS_AFFIRMING, pb.STATUS_WARNING, pb.STATUS_CONTRAINDICATED, pb.STATUS_NONE)
    assert [c.name for c in response.components] == [f"gpu{i}" for i in range(len(case.gpus))]
    assert all(f.code and f.tier != pb.STATUS_UNSPECIFIED for f in response.findings)
    if response.status != pb.STATUS_AFFIRMING:
        return

    def affirms_with(index: int, files: dict[str, bytes]) -> bool:
        gpus = tuple(GpuEvidence(g.evidence, files if i == index else g.collateral) for i, g in enumerate(case.gpus))
        again = AppraisalRequest(
            tee=case.cpu,
            evidence=case.evidence,
            collateral=case.collateral,
            nonce=case.nonce,
            runtime_data=case.runtime,
            gpus=gpus,
        )
        return fz.components.service.appraise(again, allow_incomplete=True).appraisal.status.value == "affirming"

    affirming = {*FAKE_IDS, *(v.id for v in fz.seeds.values() if v.tee == "gpu")}
    reason = why_composite_not_affirming(case, TEE_OF_KIND.get(cast(Any, kind), str(kind)), affirming, affirms_with)
    if reason is not None:
        fz.findings.wrong_yes(
            reason, what, "; ".join(f"gpu{i} hex {g.evidence.hex()}" for i, g in enumerate(case.gpus))
        )


def test_appraise_composite_fuzz(fuzz: Fuzz) -> None:
    """SNP and TDX reports bound to 1..3 affirming GPU reports with one or two defects drawn
    (`composite_support.composites`), under a drawn kind and policy."""
    gpus = [v for v in VECTORS if v.tee == "gpu"]
    affirming = {v.id for v in fuzz.seeds.values() if v.tee == "gpu"}

    @fuzz_settings(60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=composites(fuzz.world, gpus, affirming), data=st.data())
    def run(case: Composite, data: st.DataObject) -> None:
        kind = data.draw(st.one_of(st.just(KINDS[case.cpu]), st.sampled_from(sorted(KINDS.values()))))
        _run_composite(fuzz, case, kind, data.draw(st.one_of(st.just(""), POLICIES)))

    run()
    fuzz.findings.settle()


def test_appraise_bounds(fuzz: Fuzz) -> None:
    vector = VECTORS[0]
    fuzz.at(vector.verify_at)
    huge = {"a": b"\x00" * (2 * 1024 * 1024), "b": b"\x00" * (2 * 1024 * 1024)}
    cases = [
        (_request(vector, b"", {}), "EVIDENCE_EMPTY"),
        (_request(vector, b"\x00" * (1024 * 1024 + 1), {}), "EVIDENCE_TOO_LARGE"),
        (_request(vector, vector.evidence, {}, nonce=b"\x01" * 7), "NONCE_SIZE"),
        (_request(vector, vector.evidence, {}, nonce=b"\x01" * 1025), "NONCE_SIZE"),
        (_request(vector, vector.evidence, {}, runtime_data=b"\x01" * 4097), "RUNTIME_DATA_TOO_LARGE"),
        (pb.AppraiseRequest(kind=99, evidence=b"x"), "EVIDENCE_KIND_UNKNOWN"),  # type: ignore[arg-type]
        (_request(vector, vector.evidence, {}, gpus=_pb_gpus([(b"", {})])), "GPU_EVIDENCE_EMPTY"),
        (_request(vector, vector.evidence, {}, gpus=_pb_gpus([(b"g", {})] * 9)), "GPU_COUNT_TOO_LARGE"),
        (
            _request(vector, vector.evidence, {}, gpus=_pb_gpus([(b"\x00" * (256 * 1024 + 1), {})])),
            "GPU_EVIDENCE_TOO_LARGE",
        ),
    ]
    for other in (next(v for v in VECTORS if v.tee == tee) for tee in ("nitro", "gpu")):
        cases.append((_request(other, other.evidence, {}, gpus=_pb_gpus([(b"g", {})])), "COMPOSITE_TEE_UNSUPPORTED"))
    for request, reason in cases:
        reply = fuzz.call(fuzz.server.verifier.Appraise, request, what=_describe(request))
        assert (reply.code, reply.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason), (reply.code, reply.reason)
    over = fuzz.server.call(fuzz.server.verifier.Appraise, _request(vector, vector.evidence, huge))
    assert over.code == grpc.StatusCode.RESOURCE_EXHAUSTED  # gRPC's own 4 MiB bound, before the service
    fuzz.findings.settle()


# --- CreateChallenge, GetSigningKeys --------------------------------------------------------------------------------


def test_create_challenge_fuzz(fuzz: Fuzz) -> None:
    @fuzz_settings(60)
    @given(size=st.one_of(st.integers(0, 70), st.integers(0, 2**32 - 1)), request_id=REQUEST_IDS)
    def run(size: int, request_id: str | None) -> None:
        metadata = (("x-request-id", request_id),) if request_id is not None else ()
        reply = fuzz.call(
            fuzz.server.verifier.CreateChallenge,
            pb.CreateChallengeRequest(nonce_size=size),
            metadata,
            f"CreateChallenge({size})",
        )
        if size == 0 or 8 <= size <= 64:
            assert reply.code == grpc.StatusCode.OK and len(reply.response.nonce) == (size or 32)
            assert reply.response.expires_at.ToDatetime(tzinfo=dt.UTC) > fuzz.clock.now()
        elif reply.failure is None:
            assert (reply.code, reply.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "NONCE_SIZE")

    run()
    fuzz.findings.settle()


def test_get_signing_keys_fuzz(fuzz: Fuzz) -> None:
    @fuzz_settings(15)
    @given(request_id=REQUEST_IDS)
    def run(request_id: str | None) -> None:
        metadata = (("x-request-id", request_id),) if request_id is not None else ()
        reply = fuzz.call(fuzz.server.verifier.GetSigningKeys, pb.GetSigningKeysRequest(), metadata)
        keys = json.loads(reply.response.jwks_json)["keys"]
        assert keys and all(k["kty"] == "EC" and "d" not in k for k in keys)

    run()
    fuzz.findings.settle()


# --- ReferenceValues (admin) ---------------------------------------------------------------------------------------

TIMESTAMPS = st.one_of(
    st.none(),
    st.tuples(st.integers(-62135596800, 253402300799), st.just(0)),
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1)),
)
LONG_TEXT = st.builds(lambda c, n: c * n, st.sampled_from(["a", "\u00e9", "\U0001f600", "\x00"]), st.integers(60, 5000))
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
GARBAGE_AUTH = st.one_of(
    st.none(),
    st.text(PRINTABLE, max_size=120),
    st.builds(lambda t: f"Bearer {t}", st.text(PRINTABLE, max_size=120)),
    st.sampled_from(
        [
            "Bearer",
            "Bearer ",
            "bearer  ",
            "Basic YWRtaW46YWRtaW4=",
            f"Bearer {TOKEN}x",
            f"Bearer {TOKEN[:-1]}",
            f"Token {TOKEN}",
            f"Bearer {TOKEN.upper()}",
            f"{TOKEN}",
        ]
    ),
)


def _timestamp(value: tuple[int, int] | None) -> timestamp_pb2.Timestamp | None:
    return None if value is None else timestamp_pb2.Timestamp(seconds=value[0], nanos=value[1])


@st.composite
def admin_calls(draw: st.DrawFn) -> tuple[str, Any]:
    text_ = st.one_of(
        UNICODE_TEXT,
        NUL_TEXT,
        LONG_TEXT,
        st.sampled_from(["snp.measurement", "snp.measurement", "nitro.pcr0", "tdx.mr_td"]),
    )
    method = draw(st.sampled_from(["Add", "List", "Revoke"]))
    if method == "Add":
        value = draw(
            st.one_of(
                UNICODE_TEXT,
                NUL_TEXT,
                st.binary(max_size=80).map(bytes.hex),
                st.binary(min_size=48, max_size=48).map(bytes.hex),
            )
        )  # fits snp.measurement
        request: Any = pb.AddReferenceValueRequest(
            kind=draw(text_),
            value=value,
            label=draw(text_),
            version=draw(text_),
            expires_at=_timestamp(draw(TIMESTAMPS)),
            valid_from=_timestamp(draw(TIMESTAMPS)),
        )
    elif method == "List":
        request = pb.ListReferenceValuesRequest(
            kind=draw(text_),
            label=draw(text_),
            include_inactive=draw(st.booleans()),
            state=draw(st.one_of(text_, st.sampled_from(["active", "revoked", "pending", "expired"]))),
        )
    else:
        request = pb.RevokeReferenceValueRequest(id=draw(st.one_of(text_, st.uuids().map(str))), reason=draw(text_))
    return method, request


def test_admin_without_valid_credentials_is_unauthenticated(fuzz: Fuzz) -> None:
    @fuzz_settings(120)
    @given(call=admin_calls(), auth=GARBAGE_AUTH, request_id=REQUEST_IDS)
    def run(call: tuple[str, Any], auth: str | None, request_id: str | None) -> None:
        method, request = call
        metadata = [("x-request-id", request_id)] if request_id is not None else []
        if auth is not None:
            metadata.append(("authorization", auth))
        reply = fuzz.call(getattr(fuzz.server.refs, method), request, metadata, f"{method} with auth {auth!r}")
        if reply.failure is None:
            assert reply.code == grpc.StatusCode.UNAUTHENTICATED, (method, auth, reply.code, reply.reason)
            assert reply.reason in ("ADMIN_AUTH_REQUIRED", "ADMIN_TOKEN_INVALID")

    run()
    fuzz.findings.settle()


@pytest.fixture(scope="module", params=BACKENDS)
def admin_fuzz(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    trust_anchors_dir: Path,
    pkis: FakePkis,
    world: CompositeWorld,
) -> Iterator[Fuzz]:
    """A separate server whose reference values the authenticated fuzz may change freely."""
    tmp = tmp_path_factory.mktemp("grpc-admin-fuzz")
    for url in _database_url(request.param, tmp):
        fz = _start(url, trust_anchors_dir, pkis, world, tmp)
        try:
            yield fz
        finally:
            fz.server.stop()
            fz.components.close()


def test_admin_with_valid_token_fuzz(admin_fuzz: Fuzz) -> None:
    """An admin's malformed requests (NUL, unicode, bad hex, odd times, unknown ids) are request errors; a
    revoke of a value just listed works."""
    fz = admin_fuzz
    fz.at(REGISTERED_AT)

    @fuzz_settings(120)
    @given(call=admin_calls(), revoke_listed=st.booleans())
    def run(call: tuple[str, Any], revoke_listed: bool) -> None:
        method, request = call
        reply = fz.call(getattr(fz.server.refs, method), request, ADMIN, f"{method}({request})")
        if method == "List" and reply.code == grpc.StatusCode.OK and reply.response.reference_values and revoke_listed:
            ref = reply.response.reference_values[0]
            fz.call(
                fz.server.refs.Revoke,
                pb.RevokeReferenceValueRequest(id=ref.id, reason="fuzz\x00"),
                ADMIN,
                f"Revoke({ref.id}, NUL reason)",
            )

    run()
    fz.findings.settle()


def _admin_targeted() -> list[tuple[str, Any]]:
    """Deterministic admin requests that are valid up to one field: out-of-range times, long, NUL and unicode
    text in every string field."""
    good: dict[str, Any] = {"kind": "snp.measurement", "value": "ab" * 48, "label": "fuzz"}
    cases: list[tuple[str, Any]] = []
    for field_name in ("expires_at", "valid_from"):
        for seconds, nanos in (
            (2**62, 0),
            (-(2**62), 0),
            (253402300800, 0),
            (-62135596801, 0),
            (2**31, 10**9),
            (2**31, -1),
            (253402300799, 999_999_999),
            (-62135596800, 0),
        ):
            when: dict[str, Any] = {field_name: timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)}
            request = pb.AddReferenceValueRequest(**good, **when)
            cases.append(("Add", request))
    for text_value in ("\x00", "a\x00b", "\U0001f600" * 3000, "a" * 20000, "\u202e\ufeff", " "):
        for field_name in ("kind", "value", "label", "version"):
            cases.append(("Add", pb.AddReferenceValueRequest(**{**good, field_name: text_value})))
        for field_name in ("kind", "label", "state"):
            only: dict[str, Any] = {field_name: text_value}
            cases.append(("List", pb.ListReferenceValuesRequest(**only)))
        cases.append(("Revoke", pb.RevokeReferenceValueRequest(id=text_value, reason="r")))
        cases.append(
            ("Revoke", pb.RevokeReferenceValueRequest(id="00000000-0000-0000-0000-000000000000", reason=text_value))
        )
    return cases


def test_admin_targeted(admin_fuzz: Fuzz) -> None:
    fz = admin_fuzz
    fz.at(REGISTERED_AT)
    for method, request in _admin_targeted():
        reply = fz.call(getattr(fz.server.refs, method), request, ADMIN, f"{method}({str(request)[:300]})")
        if reply.failure is None and reply.code == grpc.StatusCode.OK and method == "Add":
            fz.call(
                fz.server.refs.Revoke,
                pb.RevokeReferenceValueRequest(id=reply.response.id, reason="fuzz"),
                ADMIN,
                "Revoke of a value just added",
            )
    fz.findings.settle()
