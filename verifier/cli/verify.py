"""`verifier verify`: the same appraisal as the server, in-process, printed as a summary (the token only with
`--show-token`) or as one JSON object (`--json`, token included).

Without `--db` (and without VERIFIER_DATABASE_URL) the appraisal runs against a fresh temporary SQLite database,
migrated here and deleted on exit, so nothing is left in the working directory; `--reference-values FILE` seeds it
with the values of a manifest or nitro-cli JSON. `--evidence -` reads the evidence from stdin (bytes, at most the
service's bound). The exit code is the result's (verifier/cli/common.py): by status, or by failure class with
`--detailed-exitcode`.

Composite evidence (verifier.composite): `--gpu REPORT --gpu-collateral DIR`, repeatable and paired in order (the
i-th DIR is the i-th REPORT's: cert_chain.pem, driver_rim.xml, vbios_rim.xml, OCSP responses), beside an SEV-SNP
or TDX `--evidence`; the GPUs are `gpu0`.. in that order, the status is the worst of all, the JSON has
`components` and each GPU finding names its `component`."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..appraisal.detect import detect_tee
from ..appraisal.registry import tee_names
from ..auth import current_actor
from ..bootstrap import build_app, open_database
from ..clock import FixedClock, SystemClock, to_rfc3339
from ..requests import MAX_GPU_EVIDENCE_BYTES, MAX_GPUS, GpuEvidence
from ..results.keys import ephemeral_key
from ..results.signer import ResultSigner
from ..service import MAX_COLLATERAL_BYTES, MAX_EVIDENCE_BYTES, AppraisalRequest, AppraisalResult
from ..settings import Settings, add_flags, apply_flags
from ..storage import migrate
from ..storage.engine import DEFAULT_DATABASE_URL
from ..storage.reference_values import SqlReferenceValueStore
from ..workloads.manifest import load_manifest
from .common import (
    EXIT_UNAVAILABLE,
    UsageError,
    add_detailed_exitcode_flag,
    eprint,
    exit_code,
    failure_class,
    hex_bytes,
    print_json,
    rfc3339,
)
from .summary import print_summary, vector_text, workload_text

log = logging.getLogger(__name__)

STDIN = "-"

# The settings `verify` takes as flags (declared in verifier/settings/table.py), with its own help where it differs.
VERIFY_SETTINGS = (
    "trust_anchors",
    "signing_keys",
    "offline",
    "check_crl",
    "collateral_refresh",
    "nvidia_rim_dir",
    "policy_file",
    "database_url",
)
_HELP = {
    "signing_keys": "sign the result with this key (default: the variable below, else an ephemeral key)",
    "offline": "never touch the network: missing collateral makes the appraisal fail with exit 3",
    "policy_file": "named policies (JSON)",
    "database_url": "database URL with the reference values, workloads and collateral cache (default: a "
    "temporary database, deleted on exit)",
}


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="appraise evidence in-process and print the result")
    p.add_argument("--evidence", required=True, metavar="FILE", help="the evidence file, or - for stdin")
    p.add_argument("--tee", choices=tee_names(), help="evidence kind (default: detected)")
    p.add_argument("--collateral", type=Path, metavar="DIR", help="directory of collateral files")
    p.add_argument("--at", type=rfc3339, metavar="RFC3339", help="appraisal time (default: now)")
    p.add_argument("--nonce", type=hex_bytes, metavar="HEX", help="nonce the evidence must carry")
    p.add_argument("--runtime-data", type=hex_bytes, metavar="HEX", help="runtime data the evidence must bind")
    p.add_argument("--policy", metavar="NAME", help="appraisal policy (default: default)")
    p.add_argument(
        "--gpu",
        action="append",
        default=[],
        metavar="REPORT",
        help="a GPU report the CPU TEE of --evidence drives (composite evidence; repeatable, gpu0, gpu1, ... in order)",
    )
    p.add_argument(
        "--gpu-collateral",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="the collateral directory of the GPU report given at the same position (one per --gpu)",
    )
    p.add_argument(
        "--reference-values",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="approve the values of this manifest or nitro-cli JSON for this appraisal (repeatable; only without "
        "--db: with a database use `verifier refs import`)",
    )
    add_flags(p, VERIFY_SETTINGS, help=_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object (with the token)")
    p.add_argument("--show-token", action="store_true", help="print the signed token too, as the last line")
    add_detailed_exitcode_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, base: Settings) -> int:
    """Appraise, print, and return the exit code. Raises UsageError (unreadable input, unknown kind, flags that do
    not go together), VerifierError (configuration, an unavailable database)."""
    evidence = read_input(args.evidence, MAX_EVIDENCE_BYTES, "evidence")
    tee = args.tee or detect_tee(evidence)
    if tee is None:
        raise UsageError(f"cannot tell the evidence kind of {args.evidence}; pass --tee ({'|'.join(tee_names())})")
    exclude = None if args.evidence == STDIN else Path(args.evidence)
    collateral = _read_collateral(args.collateral, exclude=exclude) if args.collateral else {}
    gpus = _read_gpus(args.gpu, args.gpu_collateral)
    shows_token = args.json or args.show_token
    with appraisal_settings(args, apply_flags(base, args, VERIFY_SETTINGS)) as settings:
        signer = None
        if not settings.signing_keys:
            if shows_token:
                eprint("verifier: note: no --signing-key: the printed token is signed with an ephemeral key")
            signer = ResultSigner([ephemeral_key()], development=True)
        result = _appraise(args, settings, signer, tee, evidence, collateral, gpus)
    document = result_json(result)
    if args.json:
        print_json(document)
    else:
        _print_text(result, document, show_token=args.show_token)
    if result.incomplete:
        eprint(f"verifier: {result.incomplete}: collateral unavailable, the appraisal is incomplete")
        return EXIT_UNAVAILABLE
    return exit_code(document["status"], document["findings"], detailed=args.detailed_exitcode)


def _appraise(
    args: argparse.Namespace,
    settings: Settings,
    signer: ResultSigner | None,
    tee: str,
    evidence: bytes,
    collateral: dict[str, bytes],
    gpus: tuple[GpuEvidence, ...] = (),
) -> AppraisalResult:
    components = build_app(settings, clock=FixedClock(args.at) if args.at else SystemClock(), signer=signer)
    # `--policy` here is the operator's choice for this appraisal (the server applies workload policies).
    components.service.operator_policy = True
    try:
        migrate.check(components.database)
        return components.service.appraise(
            AppraisalRequest(
                tee=tee,
                evidence=evidence,
                collateral=collateral,
                nonce=args.nonce,
                runtime_data=args.runtime_data,
                policy=args.policy,
                gpus=gpus,
            ),
            allow_incomplete=True,
        )
    finally:
        components.close()


@contextmanager
def appraisal_settings(args: argparse.Namespace, settings: Settings) -> Iterator[Settings]:
    """`settings` as given when a database was named (`--db`, or VERIFIER_DATABASE_URL other than the default),
    else with a temporary SQLite database: migrated, seeded with `--reference-values`, deleted when the block
    ends. Raises UsageError for `--reference-values` beside a named database or an unreadable manifest."""
    if args.database_url is not None or settings.database_url != DEFAULT_DATABASE_URL:
        if args.reference_values:
            raise UsageError("--reference-values seeds the temporary database: with --db use `verifier refs import`")
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="verifier-verify-") as directory:
        temporary = settings.with_overrides(database_url=f"sqlite:///{Path(directory) / 'appraisal.db'}")
        migrate.upgrade(temporary.database_url)
        _seed(temporary, args.reference_values)
        if not args.reference_values:
            log.debug("no --db: appraising against an empty temporary database (no approved values)")
        yield temporary


def _seed(settings: Settings, manifests: list[Path]) -> None:
    if not manifests:
        return
    entries = [entry for path in manifests for entry in load_manifest(path)]
    db = open_database(settings)
    try:
        SqlReferenceValueStore(db).add_missing(entries, now=SystemClock().now(), actor=current_actor())
    finally:
        db.dispose()


def read_input(name: str, limit: int, what: str) -> bytes:
    """The bytes of file `name`, or of stdin for `-`, at most `limit` of them. Raises UsageError when the input
    cannot be read, is empty on stdin or is larger than `limit`."""
    if name == STDIN:
        data = sys.stdin.buffer.read(limit + 1)
        if not data:
            raise UsageError(f"no {what} on stdin")
        if len(data) > limit:
            raise UsageError(f"{what} on stdin is over the {limit}-byte limit")
        return bytes(data)
    return _read_bounded(Path(name), limit, what)


def _read_gpus(reports: list[str], directories: list[Path]) -> tuple[GpuEvidence, ...]:
    """The `--gpu` reports, each with the `--gpu-collateral` directory at its position. Raises UsageError for
    unpaired flags, more than MAX_GPUS reports or unreadable input."""
    if len(reports) != len(directories):
        raise UsageError(
            f"--gpu and --gpu-collateral go in pairs: {len(reports)} --gpu, {len(directories)} --gpu-collateral"
        )
    if len(reports) > MAX_GPUS:
        raise UsageError(f"at most {MAX_GPUS} --gpu reports")
    return tuple(
        GpuEvidence(
            _read_bounded(Path(report), MAX_GPU_EVIDENCE_BYTES, "GPU report"),
            _read_collateral(directory, exclude=Path(report), flag="--gpu-collateral"),
        )
        for report, directory in zip(reports, directories, strict=True)
    )


def result_json(result: AppraisalResult) -> dict[str, Any]:
    """The `--json` object: the result (the composite's status), the evidence's findings then each GPU's (with
    `component`) and, per GPU, `components[]` (name, tee, status, trust vector, claims, findings, report SHA-384).
    Never raises."""
    a = result.appraisal
    components: list[dict[str, Any]] = [
        {
            "name": c.name,
            "tee": c.appraisal.tee,
            "status": c.appraisal.status.value,
            "trust_vector": c.appraisal.trust_vector.to_json(),
            "claims": c.appraisal.claims,
            "findings": [f.to_json() for f in c.appraisal.findings],
            "evidence_sha384": c.evidence_sha384,
        }
        for c in result.components
    ]
    findings = [f.to_json() for f in a.findings]
    findings += [{**f.to_json(), "component": c.name} for c in result.components for f in c.appraisal.findings]
    kind = failure_class(a.status.value, findings)
    return {
        "tee": a.tee,
        "status": a.status.value,
        "failure_class": kind.value if kind is not None else None,
        "trust_vector": a.trust_vector.to_json(),
        "claims": a.claims,
        "findings": findings,
        "policy_id": a.policy_id,
        "workload": a.workload,
        "matched_reference_values": list(a.matched_reference_values),
        "appraised_at": to_rfc3339(result.appraised_at),
        "appraisal_id": result.appraisal_id,
        "incomplete": result.incomplete,
        "components": components,
        "token": result.token,
    }


def _print_text(result: AppraisalResult, document: dict[str, Any], *, show_token: bool) -> None:
    a = result.appraisal
    status = document["status"]
    if document["failure_class"]:
        status += f" ({document['failure_class']})"
    if result.incomplete:
        status += f", incomplete: {result.incomplete}"
    fields = [
        ("status", status),
        ("tee", a.tee),
        ("workload", workload_text(a.workload)),
        ("policy", a.policy_id),
        ("approved", ", ".join(a.matched_labels) or None),
        ("trust vector", vector_text(document["trust_vector"])),
        ("appraised at", document["appraised_at"]),
        ("appraisal id", result.appraisal_id),
    ]
    for c in document["components"]:
        fields.append((c["name"], f"{c['status']} ({c['tee']}; report SHA-384 {c['evidence_sha384'][:16]}...)"))
    shown = [{**f, "code": f"{f['component']}: {f['code']}"} if "component" in f else f for f in document["findings"]]
    print_summary(fields, shown)
    if show_token:
        print(result.token)


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise UsageError(f"{what} file {path} is {size} bytes, over the {limit}-byte limit")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _read_collateral(directory: Path, *, exclude: Path | None, flag: str = "--collateral") -> dict[str, bytes]:
    if not directory.is_dir():
        raise UsageError(f"{flag} {directory} is not a directory")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.name == "evidence.bin" or (exclude and path.resolve() == exclude.resolve()):
            continue
        data = _read_bounded(path, MAX_COLLATERAL_BYTES, "collateral")
        total += len(data)
        if total > MAX_COLLATERAL_BYTES:
            raise UsageError(f"collateral in {directory} exceeds {MAX_COLLATERAL_BYTES} bytes")
        files[path.name] = data
    return files
