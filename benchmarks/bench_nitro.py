#!/usr/bin/env python3
"""Nitro appraisals per second, in-process and over gRPC, beside this machine's ES384 verify rate.

Not a test: run it by hand (`.venv/bin/python benchmarks/bench_nitro.py [--seconds 3]`). It appraises the real
vector nitro-prod-2024-blocky at its verify_at time (VERIFIER_VECTORS or ../shared/vectors), with its PCRs
registered so the appraisal affirms, on a temporary SQLite database. One Nitro appraisal verifies at least
four ECDSA P-384 signatures (three certificate links and the document), so the ratio to the raw ES384 rate
shows how much of the time goes to cryptography versus everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def grpc_rate(components, evidence: bytes, seconds: float) -> float:  # type: ignore[no-untyped-def]
    import grpc

    from verifier.transport.grpc.server import VerifierServer
    from verifier.v1 import verifier_pb2, verifier_pb2_grpc

    server = VerifierServer(components)
    port, _ = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            request = verifier_pb2.AppraiseRequest(kind=verifier_pb2.EVIDENCE_KIND_NITRO, evidence=evidence)
            await stub.Appraise(request)
            count, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                await stub.Appraise(request)
                count += 1
            return count / elapsed
    finally:
        await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    vectors = Path(os.environ.get("VERIFIER_VECTORS", ROOT.parent / "shared" / "vectors"))
    manifest = json.loads((vectors / "MANIFEST.json").read_text())
    vector = next(v for v in manifest["vectors"] if v["id"] == "nitro-prod-2024-blocky")
    evidence = (vectors / vector["dir"] / "evidence.bin").read_bytes()
    at = parse_rfc3339(vector["verify_at"])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        components = build(Settings(database_url=url, development=True), clock=FixedClock(at))
        for index in ("0", "1", "2"):
            components.references.add(f"nitro.pcr{index}", bytes.fromhex(vector["facts"]["pcrs"][index]),
                                      "bench", now=at)
        request = AppraisalRequest(tee="nitro", evidence=evidence)
        assert components.service.appraise(request).appraisal.status.value == "affirming"
        floor = es384_floor(args.seconds)
        in_process = rate(lambda: components.service.appraise(request), args.seconds)
        over_grpc = asyncio.run(grpc_rate(components, evidence, args.seconds))
        components.close()
    print(f"ES384 verify (P-384, cryptography/OpenSSL): {floor:10.1f} /s")
    print(f"Nitro appraisals in-process:                {in_process:10.1f} /s   ratio to ES384 {in_process / floor:.3f}"
          f"   (floor for 4 verifies: {floor / 4:.1f} /s)")
    print(f"Nitro appraisals over gRPC (1 client):      {over_grpc:10.1f} /s   ratio to ES384 {over_grpc / floor:.3f}")


if __name__ == "__main__":
    main()
