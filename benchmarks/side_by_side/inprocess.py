"""In-process rates: the full service (`VerifierService.appraise` built by `bootstrap.build_app`, with its
database, findings, audit row and kept evidence, plus the appraisal metric), TDX with warm and cold caches, and
dcap-qvl on the same TDX quote and collateral."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .clients import percentile
from .procstat import cpu_by_pid, cpu_delta
from .servers import BenchDatabase
from .vectors import Vector, VectorPcs


def timed(call: Callable[[], Any], seconds: float, database_pids: Callable[[], list[int]] = list) -> dict[str, Any]:
    """Call back to back for `seconds` (after one untimed call): rate, p50/p99 latency, CPU ms per call of this
    process and of the database backends `database_pids()`."""
    call()
    latencies: list[float] = []
    database = cpu_by_pid(database_pids())
    cpu, start = time.process_time(), time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        began = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - began) * 1000)
    cpu = time.process_time() - cpu
    database_cpu = cpu_delta(database, cpu_by_pid(database_pids()))
    latencies.sort()
    count = max(len(latencies), 1)
    return {
        "calls": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "cpu_ms_per_appraisal": cpu * 1000 / count,
        "database_cpu_ms_per_appraisal": database_cpu * 1000 / count,
    }


def _components(url: str, vector: Vector) -> Any:
    from verifier.bootstrap import build_app
    from verifier.clock import FixedClock
    from verifier.settings import Settings

    settings = Settings(database_url=url, development=True, offline=True, check_crl=False)
    return build_app(settings, clock=FixedClock(vector.at))


def service_rate(db: BenchDatabase, vector: Vector, seconds: float) -> dict[str, Any]:
    """The full service in-process, collateral in the request (as over gRPC), one thread."""
    from verifier.metrics import Metrics
    from verifier.service import AppraisalRequest

    components = _components(db.url, vector)
    Metrics().attach(components)  # the service counts appraisals, findings and challenges, as in the server
    request = AppraisalRequest(tee=vector.tee, evidence=vector.evidence, collateral=vector.collateral)

    def appraise() -> None:
        result = components.service.appraise(request, require_challenge=True)
        assert result.appraisal.status.value == "affirming", result.appraisal.findings

    try:
        return timed(appraise, seconds, db.backend_pids)
    finally:
        components.close()


def clear_tdx_caches() -> list[str]:
    """Forget everything the TDX path caches: verified links and collateral, verified signatures, parsed PCK
    extensions, parsed collateral items and chains (the parse memo has no public clear: its dict is emptied under its
    lock). Returns what it cleared, so that a cache renamed by later work shows in the JSON instead of staying warm."""
    from verifier.appraisal.registry import get_verifier
    from verifier.tee.tdx import collateral_documents, pck, pcs
    from verifier.trust import certs, signature_memo

    cleared = []
    verifier = get_verifier("tdx")
    for attribute in ("links", "collateral_memo"):
        cache = getattr(verifier, attribute, None)
        if cache is not None:
            cache.clear()
            cleared.append(f"TdxVerifier.{attribute}")
    for owner, name in ((pck, "_parse"), (pcs, "_item_collateral")):
        function = getattr(owner, name, None)
        if hasattr(function, "cache_clear"):
            function.cache_clear()  # type: ignore[union-attr]
            cleared.append(f"{owner.__name__}.{name}")
    memo = getattr(collateral_documents, "_PARSED", None)
    if memo is not None and hasattr(memo, "_items"):
        with memo._lock:
            memo._items.clear()
        cleared.append("collateral_documents._PARSED")
    clear_parse = getattr(certs, "clear_parse_caches", None)
    if clear_parse is not None:
        clear_parse()
        cleared.append("trust.certs parse caches")
    signature_memo.clear()
    cleared.append("trust.signature_memo")
    return cleared


def tdx_warm_cold(db: BenchDatabase, vector: Vector, seconds: float) -> dict[str, Any]:
    """TDX in-process with collateral from the in-memory cache (warm), and with every cache emptied and a fresh
    collateral cache before each appraisal (cold: fetched from memory, all parsed and verified again)."""
    from verifier.collateral.cache import CachedSource
    from verifier.service import AppraisalRequest

    components = _components(db.url, vector)
    service = components.service
    request = AppraisalRequest(tee="tdx", evidence=vector.evidence)
    service.collateral_source = CachedSource(VectorPcs(vector.folder), None)
    try:
        assert service.appraise(request).appraisal.status.value == "affirming"
        warm = timed(lambda: service.appraise(request), seconds, db.backend_pids)

        def cold() -> None:
            clear_tdx_caches()
            previous = service.collateral_source
            service.collateral_source = CachedSource(VectorPcs(vector.folder), None)
            previous.close()  # type: ignore[attr-defined]
            service.appraise(request)

        return {"warm": warm, "cold": {**timed(cold, seconds, db.backend_pids), "cleared": clear_tdx_caches()}}
    finally:
        components.close()


def dcap_qvl_rate(vector: Vector, seconds: float) -> dict[str, Any] | None:
    """dcap-qvl `verify` on the same quote and collateral (collateral.json), None when it is not installed."""
    try:
        import dcap_qvl
    except ImportError:
        return None
    from importlib.metadata import version

    collateral = dcap_qvl.QuoteCollateralV3.from_json((vector.folder / "collateral.json").read_text())
    now = int(vector.at.timestamp())
    assert dcap_qvl.verify(vector.evidence, collateral, now).status == "UpToDate"
    figures = timed(lambda: dcap_qvl.verify(vector.evidence, collateral, now), seconds)
    return {**figures, "version": version("dcap-qvl")}
