#!/usr/bin/env python3
"""Side by side (issue 13 item 1): the full service against the floor of its own cryptography, in one run.

Not a test: run it by hand (`.venv/bin/python benchmarks/side_by_side.py [--quick] [--db sqlite] [--out FILE]`).
Per TEE (nitro, snp, tdx) on a real shared vector (VERIFIER_VECTORS or ../shared/vectors) appraised at its
MANIFEST.json verify_at with its measurements approved (so every appraisal affirms), it measures:

(a) the floor: a bare verifier.v1 Appraise handler on grpc.aio over plaintext loopback doing only parse, signature
    checks with chains cached (the project's TEE verifiers, warm VerifiedLinks), a measurement match and an ES256
    token (ResultSigner); N of them share a port (SO_REUSEPORT) for the N-worker rows;
(b) the full service in-process (`VerifierService.appraise` from `bootstrap.build_app`: database, findings,
    audit, kept evidence, the appraisal metric), and TDX with warm and with cold caches;
(c) the full service over gRPC: `verifier serve --dev --offline --at VERIFY_AT` in its own process (its appraisal
    clock fixed at the vector's verify_at), with 1 and 2 workers (`--workers`, when `verifier serve --help` lists
    it), on SQLite and on PostgreSQL (a fresh schema per server, dropped afterwards); floor and service are measured
    back to back with the same client processes code at each of 1, 8 and 64 concurrent clients;
(d) dcap-qvl `verify` on the same TDX quote and collateral.

It prints appraisals/s, client-side p50/p99 latency, server CPU per appraisal (utime+stime of the server's process
tree from /proc, read at the barriers that open and close the measured window), RSS per server process, and the
ratios issue 13 names, each beside its target and marked met or not; the JSON (default
benchmarks/results/side-by-side-DATE.json, -quick for --quick) also holds the machine, the packages and the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from side_by_side.main import main  # noqa: E402  (the package beside this script: benchmarks/side_by_side/)

if __name__ == "__main__":
    sys.exit(main())
