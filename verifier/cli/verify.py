"""`verifier verify`: the same appraisal as the server, in-process and offline, printed as text or JSON."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..appraisal.detect import detect_tee
from ..appraisal.model import Tier
from ..appraisal.registry import tee_names
from ..bootstrap import build_app
from ..clock import FixedClock, SystemClock, to_rfc3339
from ..results.keys import ephemeral_key
from ..results.signer import ResultSigner
from ..service import MAX_COLLATERAL_BYTES, MAX_EVIDENCE_BYTES, AppraisalRequest, AppraisalResult
from ..settings import Settings, add_flags, apply_flags
from ..storage import migrate
from .common import (
    EXIT_AFFIRMING,
    EXIT_CONTRAINDICATED,
    EXIT_UNAVAILABLE,
    EXIT_WARNING,
    UsageError,
    eprint,
    hex_bytes,
    print_json,
    rfc3339,
)

log = logging.getLogger(__name__)

EXIT_BY_STATUS = {
    Tier.AFFIRMING: EXIT_AFFIRMING,
    Tier.WARNING: EXIT_WARNING,
    Tier.CONTRAINDICATED: EXIT_CONTRAINDICATED,
    Tier.NONE: EXIT_CONTRAINDICATED,
}


# The settings `verify` takes as flags (declared in verifier/settings/table.py), with its own help where it differs.
VERIFY_SETTINGS = (
    "trust_anchors",
    "signing_keys",
    "offline",
    "check_crl",
    "collateral_refresh",
    "policy_file",
    "database_url",
)
_HELP = {
    "signing_keys": "sign the result with this key (default: the variable below, else an ephemeral key)",
    "offline": "never touch the network: missing collateral makes the appraisal fail with exit 3",
    "policy_file": "named policies (JSON)",
}


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="appraise evidence in-process (offline) and print the result")
    p.add_argument("--evidence", required=True, type=Path, metavar="FILE")
    p.add_argument("--tee", choices=tee_names(), help="evidence kind (default: detected)")
    p.add_argument("--collateral", type=Path, metavar="DIR", help="directory of collateral files")
    p.add_argument("--at", type=rfc3339, metavar="RFC3339", help="appraisal time (default: now)")
    p.add_argument("--nonce", type=hex_bytes, metavar="HEX", help="nonce the evidence must carry")
    p.add_argument("--runtime-data", type=hex_bytes, metavar="HEX", help="runtime data the evidence must bind")
    p.add_argument("--policy", metavar="NAME", help="appraisal policy (default: default)")
    add_flags(p, VERIFY_SETTINGS, help=_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, base: Settings) -> int:
    evidence = _read_bounded(args.evidence, MAX_EVIDENCE_BYTES, "evidence")
    tee = args.tee or detect_tee(evidence)
    if tee is None:
        raise UsageError(f"cannot tell the evidence kind of {args.evidence}; pass --tee ({'|'.join(tee_names())})")
    collateral = _read_collateral(args.collateral, exclude=args.evidence) if args.collateral else {}
    settings = apply_flags(base, args, VERIFY_SETTINGS)
    signer = None
    if not settings.signing_keys:
        eprint("verifier: note: no --signing-key: the printed token is signed with an ephemeral key")
        signer = ResultSigner([ephemeral_key()], development=True)
    components = build_app(settings, clock=FixedClock(args.at) if args.at else SystemClock(), signer=signer)
    # `--policy` here is the operator's choice for this appraisal (the server applies workload policies).
    components.service.operator_policy = True
    try:
        migrate.check(components.database)
        result = components.service.appraise(
            AppraisalRequest(
                tee=tee,
                evidence=evidence,
                collateral=collateral,
                nonce=args.nonce,
                runtime_data=args.runtime_data,
                policy=args.policy,
            ),
            allow_incomplete=True,
        )
    finally:
        components.close()
    if args.json:
        print_json(result_json(result))
    else:
        _print_text(result)
    if result.incomplete:
        eprint(f"verifier: {result.incomplete}: collateral unavailable, the appraisal is incomplete")
        return EXIT_UNAVAILABLE
    return EXIT_BY_STATUS[result.appraisal.status]


def result_json(result: AppraisalResult) -> dict[str, Any]:
    a = result.appraisal
    return {
        "tee": a.tee,
        "status": a.status.value,
        "trust_vector": a.trust_vector.to_json(),
        "claims": a.claims,
        "findings": [f.to_json() for f in a.findings],
        "policy_id": a.policy_id,
        "matched_reference_values": list(a.matched_reference_values),
        "appraised_at": to_rfc3339(result.appraised_at),
        "appraisal_id": result.appraisal_id,
        "incomplete": result.incomplete,
        "token": result.token,
    }


def _print_text(result: AppraisalResult) -> None:
    a = result.appraisal
    print(f"{a.tee}: {a.status.value} (policy {a.policy_id}, at {to_rfc3339(result.appraised_at)})")
    for claim, value in a.trust_vector.to_json().items():
        print(f"  {claim}: {value}")
    for f in a.findings:
        print(f"  [{f.tier.value}] {f.code}: {f.message}")
        if f.expected or f.actual:
            print(f"      expected {f.expected or '-'}")
            print(f"      actual   {f.actual or '-'}")
    print(f"token: {result.token}")


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise UsageError(f"{what} file {path} is {size} bytes, over the {limit}-byte limit")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _read_collateral(directory: Path, *, exclude: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        raise UsageError(f"--collateral {directory} is not a directory")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.resolve() == exclude.resolve() or path.name == "evidence.bin":
            continue
        data = _read_bounded(path, MAX_COLLATERAL_BYTES, "collateral")
        total += len(data)
        if total > MAX_COLLATERAL_BYTES:
            raise UsageError(f"collateral in {directory} exceeds {MAX_COLLATERAL_BYTES} bytes")
        files[path.name] = data
    return files
