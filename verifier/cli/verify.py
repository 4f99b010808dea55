"""`verifier verify`: the same appraisal as the server, in-process and offline, printed as text or JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from ..appraisal.model import Tier
from ..bootstrap import build
from ..clock import FixedClock, SystemClock, to_rfc3339
from ..errors import ConfigError
from ..results.keys import ephemeral_key
from ..results.signer import ResultSigner
from ..service import MAX_COLLATERAL_BYTES, MAX_EVIDENCE_BYTES, AppraisalRequest, AppraisalResult
from ..settings import Settings, collateral_refresh
from ..tee.detect import detect_tee
from ..tee.registry import tee_names
from .common import (
    EXIT_AFFIRMING,
    EXIT_CONTRAINDICATED,
    EXIT_UNAVAILABLE,
    EXIT_WARNING,
    UsageError,
    add_db_flag,
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


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="appraise evidence in-process (offline) and print the result")
    p.add_argument("--evidence", required=True, type=Path, metavar="FILE")
    p.add_argument("--tee", choices=["snp", "tdx", "nitro"], help="evidence kind (default: detected)")
    p.add_argument("--collateral", type=Path, metavar="DIR", help="directory of collateral files")
    p.add_argument("--trust-anchors", type=Path, metavar="DIR", help="directory laid out like shared/trust-anchors")
    p.add_argument("--at", type=rfc3339, metavar="RFC3339", help="appraisal time (default: now)")
    p.add_argument("--nonce", type=hex_bytes, metavar="HEX", help="nonce the evidence must carry")
    p.add_argument("--runtime-data", type=hex_bytes, metavar="HEX", help="runtime data the evidence must bind")
    p.add_argument("--policy", metavar="NAME", help="appraisal policy (default: default)")
    p.add_argument(
        "--signing-key",
        type=Path,
        action="append",
        metavar="FILE",
        help="sign the result with this key (default: VERIFIER_SIGNING_KEY, else an ephemeral key)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never touch the network: missing collateral makes the appraisal fail with exit 3",
    )
    p.add_argument(
        "--check-crl",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check the vendor CRLs (the default; --no-check-crl turns revocation checking off)",
    )
    p.add_argument(
        "--collateral-refresh",
        type=_refresh_seconds,
        metavar="SECONDS",
        help="refetch cached CRLs and Intel TCB info / QE identity once this old (default 3600)",
    )
    p.add_argument("--policy-file", type=Path, metavar="FILE", help="named policies (JSON)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_db_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, base: Settings) -> int:
    evidence = _read_bounded(args.evidence, MAX_EVIDENCE_BYTES, "evidence")
    tee = args.tee or detect_tee(evidence)
    if tee is None:
        raise UsageError(f"cannot tell the evidence kind of {args.evidence}; pass --tee ({'|'.join(tee_names())})")
    collateral = _read_collateral(args.collateral, exclude=args.evidence) if args.collateral else {}
    settings = base.with_overrides(
        database_url=args.db,
        trust_anchors=args.trust_anchors,
        signing_keys=tuple(args.signing_key) if args.signing_key else None,
        offline=args.offline,
        check_crl=args.check_crl,
        collateral_refresh=args.collateral_refresh,
        policy_file=args.policy_file,
    )
    signer = None
    if not settings.signing_keys:
        eprint("verifier: note: no --signing-key: the printed token is signed with an ephemeral key")
        signer = ResultSigner([ephemeral_key()], development=True)
    components = build(settings, clock=FixedClock(args.at) if args.at else SystemClock(), signer=signer)
    # `--policy` here is the operator's choice for this appraisal (the server applies workload policies).
    components.service.operator_policy = True
    try:
        components.database.check()
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


def _refresh_seconds(text: str) -> dt.timedelta:
    try:
        value = collateral_refresh(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    assert value is not None
    return value
