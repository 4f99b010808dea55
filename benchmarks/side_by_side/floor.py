"""The floor: a bare verifier.v1 Appraise handler doing only the irreducible work of an appraisal.

Parse and verify the evidence with the project's own TEE verifier (a fresh instance with its own warm
VerifiedLinks cache: certificate links, parsed PCK extensions and collateral parses are cached after the first
call, as in the service), compare the image measurements with the approved values held in memory, and sign a small
ES256 token with the project's ResultSigner. No database, no findings, no audit, no metrics, no interceptors.

Run as a server process: `python -m side_by_side.floor '{"tee": "nitro", "port": 50051, "ready": "FILE"}'`; it
listens on 127.0.0.1 with SO_REUSEPORT so that N of them on one port are N "bare handler" workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .vectors import Vector, load_vector, vectors_dir


class FloorAppraiser:
    """Verify, match, sign: what any verifier of this evidence has to do."""

    def __init__(self, vector: Vector) -> None:
        from verifier.appraisal.registry import get_verifier
        from verifier.results.keys import ephemeral_key
        from verifier.results.signer import ResultSigner
        from verifier.trust.anchors import TrustAnchors

        self.vector = vector
        self.verifier = type(get_verifier(vector.tee))()  # its own VerifiedLinks, warmed by the first call
        self.anchors = TrustAnchors()
        self.signer = ResultSigner([ephemeral_key()])
        self.expected = dict(vector.references)

    def appraise(self, evidence: bytes, collateral: dict[str, bytes]) -> tuple[bool, str]:
        """(affirming, token) for one piece of evidence at the vector's verify_at."""
        from verifier.tee.base import VerifyContext

        at = self.vector.at
        context = VerifyContext(at=at, anchors=self.anchors, collateral=collateral, check_crl=False)
        verified = self.verifier.verify(evidence, context)
        ok = verified.failure is None and not verified.incomplete and self._matches(verified.claims)
        iat = int(at.timestamp())
        claims = {
            "iss": "floor",
            "iat": iat,
            "exp": iat + 300,
            "jti": uuid.uuid4().hex,
            "tee": self.vector.tee,
            "status": "affirming" if ok else "contraindicated",
        }
        return ok, self.signer.sign(claims)

    def _matches(self, claims: dict[str, Any]) -> bool:
        for kind, value in self.expected.items():
            claim = kind.split(".", 1)[1]
            found = claims.get("pcrs", {}).get(claim[3:]) if claim.startswith("pcr") else claims.get(claim)
            if not isinstance(found, str) or found.lower() != value:
                return False
        return True


def floor_servicer(appraiser: FloorAppraiser) -> Any:
    """A verifier.v1.Verifier servicer whose Appraise runs `appraiser` inline on the event loop."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from verifier.v1 import verifier_pb2 as pb
    from verifier.v1 import verifier_pb2_grpc as pb_grpc

    class FloorServicer(pb_grpc.VerifierServicer):  # type: ignore[misc]
        async def Appraise(self, request: Any, context: Any) -> Any:  # noqa: N802
            collateral = {c.name: bytes(c.content) for c in request.collateral}
            ok, token = appraiser.appraise(bytes(request.evidence), collateral)
            appraised_at = Timestamp()
            appraised_at.FromDatetime(appraiser.vector.at)
            return pb.AppraiseResponse(
                status=pb.STATUS_AFFIRMING if ok else pb.STATUS_CONTRAINDICATED,
                token=token,
                appraisal_id=str(uuid.uuid4()),
                tee=appraiser.vector.tee,
                policy_id="floor",
                appraised_at=appraised_at,
            )

    return FloorServicer()


async def serve(tee: str, port: int, ready: Path) -> None:
    """Listen on 127.0.0.1:`port` (SO_REUSEPORT) until SIGTERM; touch `ready` once warm and listening."""
    import grpc

    from verifier.v1 import verifier_pb2_grpc as pb_grpc

    vector = load_vector(tee, vectors_dir())
    appraiser = FloorAppraiser(vector)
    assert appraiser.appraise(vector.evidence, vector.collateral)[0], "the floor does not affirm its vector"
    limit = 4 * 1024 * 1024
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
    )
    pb_grpc.add_VerifierServicer_to_server(floor_servicer(appraiser), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ready.write_text(json.dumps({"grpc": port}))
    await stop.wait()
    await server.stop(0.5)


def rate_in_process(vector: Vector, seconds: float) -> dict[str, float]:
    """The floor's own rate without gRPC, single-threaded (appraisals/s and CPU ms per appraisal)."""
    appraiser = FloorAppraiser(vector)
    appraiser.appraise(vector.evidence, vector.collateral)
    count, cpu0, start = 0, time.process_time(), time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        appraiser.appraise(vector.evidence, vector.collateral)
        count += 1
    return {"rate": count / elapsed, "cpu_ms": (time.process_time() - cpu0) * 1000 / max(count, 1)}


if __name__ == "__main__":
    from verifier.event_loop import parse_choice, run

    options = json.loads(sys.argv[1])
    # The service's own loop (`verifier serve --event-loop`, default auto): the floor runs on the same stack.
    choice = parse_choice(os.environ.get("VERIFIER_EVENT_LOOP") or "auto")
    run(lambda: serve(options["tee"], int(options["port"]), Path(options["ready"])), choice)
