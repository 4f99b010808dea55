#!/usr/bin/env python3
"""Appraisals per second (Nitro and SEV-SNP), in-process and over gRPC, beside this machine's P-384 verify rate.

Not a test: run it by hand (`.venv/bin/python benchmarks/bench.py [--seconds 3] [--tee nitro snp tdx]`). It appraises
real vectors at their verify_at time (VERIFIER_VECTORS or ../shared/vectors) with their measurements registered so
the appraisals affirm, on a temporary SQLite database, offline. A Nitro appraisal verifies four ECDSA P-384
signatures (three certificate links and the document), an SNP appraisal two RSA-PSS links (ARK -> ASK -> VCEK) and
the report's ECDSA P-384 signature; certificate links are cached after the first appraisal. The ratio to the raw
ES384 verify rate shows how much of an appraisal is cryptography.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verifier.bootstrap import build  # noqa: E402
from verifier.clock import FixedClock, parse_rfc3339  # noqa: E402
from verifier.service import AppraisalRequest  # noqa: E402
from verifier.settings import Settings  # noqa: E402
from verifier.settings.parsers import Rate  # noqa: E402
from verifier.storage.migrate import upgrade  # noqa: E402


def rate(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def es384_floor(seconds: float) -> float:
    key = ec.generate_private_key(ec.SECP384R1())
    message = os.urandom(4000)
    signature = key.sign(message, ec.ECDSA(hashes.SHA384()))
    public = key.public_key()
    return rate(lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA384())), seconds)


async def grpc_rate(components, request: AppraisalRequest, seconds: float) -> float:  # type: ignore[no-untyped-def]
    import grpc

    from verifier.transport.grpc.server import VerifierServer
    from verifier.v1 import verifier_pb2, verifier_pb2_grpc

    server = VerifierServer(components)
    port, _ = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            kind = {
                "nitro": verifier_pb2.EVIDENCE_KIND_NITRO,
                "snp": verifier_pb2.EVIDENCE_KIND_SEV_SNP,
                "tdx": verifier_pb2.EVIDENCE_KIND_TDX,
            }
            message = verifier_pb2.AppraiseRequest(
                kind=kind[request.tee],
                evidence=request.evidence,
                collateral=[verifier_pb2.CollateralFile(name=n, content=c) for n, c in request.collateral.items()],
            )
            await stub.Appraise(message)
            count, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                await stub.Appraise(message)
                count += 1
            return count / elapsed
    finally:
        await server.stop(1.0)


VECTORS = {
    "nitro": ("nitro-prod-2024-blocky", ("nitro.pcr0", "nitro.pcr1", "nitro.pcr2")),
    "snp": ("snp-genoa-v5-vcek-oak", ("snp.measurement",)),
    "tdx": ("tdx-v4-dcapqvl-sample", ("tdx.mr_td",)),
}


class VectorPcs:
    """Serves a vector folder's Intel collateral as Intel PCS would (no network): the bench's collateral source."""

    FILES = {
        "intel.tcb_info": ("tcb_info.json", "tcb_info_issuer_chain.pem"),
        "intel.qe_identity": ("qe_identity.json", "qe_identity_issuer_chain.pem"),
        "intel.pck_crl": ("pck_crl.der", "pck_crl_issuer_chain.pem"),
        "intel.root_ca_crl": ("root_ca_crl.der", None),
    }

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def fetch(self, key, *, at):  # type: ignore[no-untyped-def]
        from verifier.collateral.base import CollateralItem
        from verifier.collateral.pcs_items import envelope

        body, chain = self.FILES[key.kind]
        data = envelope(key.kind, (self.folder / body).read_bytes(), (self.folder / chain).read_text() if chain else "")
        return CollateralItem(key, data, at, at + dt.timedelta(days=1), "bench")


def bench_tdx_cold_warm(vectors: Path, manifest: dict, seconds: float, floor: float) -> None:  # type: ignore[type-arg]
    """Warm: collateral from the in-process cache, certificate links cached. Cold: a fresh cache and an empty
    link cache for every appraisal (collateral fetched from memory, everything parsed and verified again)."""
    from verifier.appraisal.registry import get_verifier
    from verifier.collateral.cache import CachedSource

    vector = next(v for v in manifest["vectors"] if v["id"] == VECTORS["tdx"][0])
    folder = vectors / vector["dir"]
    quote = (folder / "evidence.bin").read_bytes()
    at = parse_rfc3339(vector["verify_at"])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        components = build(Settings(database_url=url, development=True, offline=True), clock=FixedClock(at))
        components.references.add("tdx.mr_td", bytes.fromhex(vector["facts"]["mr_td"]), "bench", now=at)
        service = components.service
        request = AppraisalRequest(tee="tdx", evidence=quote)
        service.collateral_source = CachedSource(VectorPcs(folder), None)
        assert service.appraise(request).appraisal.status.value == "affirming"
        warm = rate(lambda: service.appraise(request), seconds)

        def cold() -> None:
            get_verifier("tdx").links.clear()
            get_verifier("tdx").collateral_memo.clear()  # type: ignore[attr-defined]
            service.collateral_source = CachedSource(VectorPcs(folder), None)
            service.appraise(request)

        cold_rate = rate(cold, seconds)
        components.close()
    print(f"tdx   appraisals warm (collateral cached): {warm:8.1f} /s   ratio to ES384 {warm / floor:.3f}")
    print(f"tdx   appraisals cold (nothing cached):    {cold_rate:8.1f} /s   ratio to ES384 {cold_rate / floor:.3f}")
    try:
        import dcap_qvl  # test-only dependency (the dev extras)
    except ImportError:
        print("dcap-qvl not installed: `pip install -e '.[dev]'` for the reference rate")
        return
    collateral = dcap_qvl.QuoteCollateralV3.from_json((folder / "collateral.json").read_text())
    now = int(at.timestamp())
    assert dcap_qvl.verify(quote, collateral, now).status == "UpToDate"
    reference = rate(lambda: dcap_qvl.verify(quote, collateral, now), seconds)
    print(
        f"dcap-qvl 0.7 verify (same quote + collateral): {reference:6.1f} /s   ratio to ES384 {reference / floor:.3f}"
    )


def bench_tee(tee: str, vectors: Path, manifest: dict, seconds: float, floor: float) -> None:  # type: ignore[type-arg]
    vector_id, kinds = VECTORS[tee]
    vector = next(v for v in manifest["vectors"] if v["id"] == vector_id)
    folder = vectors / vector["dir"]
    collateral = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "evidence.bin" and tee != "nitro"}
    request = AppraisalRequest(tee=tee, evidence=(folder / "evidence.bin").read_bytes(), collateral=collateral)
    at = parse_rfc3339(vector["verify_at"])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        # The SEV-SNP vectors carry no AMD CRL and the benchmark runs offline: revocation checking (the default) is
        # turned off here, so the figure leaves out one cached CRL signature check per appraisal.
        components = build(
            Settings(
                database_url=url,
                development=True,
                offline=True,
                check_crl=False,
                # the benchmark is one client far over the default per-client appraisal rate: limits off
                rate_appraise_per_client=Rate(0.0, 0),
                rate_appraise_global=Rate(0.0, 0),
            ),
            clock=FixedClock(at),
        )
        facts = vector["facts"]
        for kind in kinds:
            value = facts["pcrs"][kind[-1]] if tee == "nitro" else facts[kind.split(".")[1]]
            components.references.add(kind, bytes.fromhex(value), "bench", now=at)
        assert components.service.appraise(request).appraisal.status.value == "affirming"
        in_process = rate(lambda: components.service.appraise(request), seconds)
        over_grpc = asyncio.run(grpc_rate(components, request, seconds))
        components.close()
    print(f"{tee:5} appraisals in-process:        {in_process:8.1f} /s   ratio to ES384 {in_process / floor:.3f}")
    print(f"{tee:5} appraisals over gRPC, 1 client: {over_grpc:6.1f} /s   ratio to ES384 {over_grpc / floor:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tee", nargs="+", default=["nitro", "snp", "tdx"], choices=sorted(VECTORS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    vectors = Path(os.environ.get("VERIFIER_VECTORS", ROOT.parent / "shared" / "vectors"))
    manifest = json.loads((vectors / "MANIFEST.json").read_text())
    floor = es384_floor(args.seconds)
    print(f"ES384 verify (P-384, cryptography/OpenSSL): {floor:8.1f} /s")
    for tee in args.tee:
        bench_tee(tee, vectors, manifest, args.seconds, floor)
        if tee == "tdx":
            bench_tdx_cold_warm(vectors, manifest, args.seconds, floor)


if __name__ == "__main__":
    main()
