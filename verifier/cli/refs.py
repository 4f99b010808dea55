"""`verifier refs ...`: approved reference values in the database, their lifecycle and their manifests.

add | list | revoke | reapprove | history | import (additive) | plan | apply (reconcile whole workloads with their
manifests, one file per workload) | import-nitro (nitro-cli JSON -> a workload version in a manifest or the
database) | compute snp (SEV-SNP launch measurement -> likewise). Each works on the database (`--db`) or on a running
server (`--server HOST:PORT` with an admin token or client certificate, verifier.cli.remote), with the same output.

Revocation is per value: `revoke ID` revokes the row's kind and value in every live row, every add path then
refuses the value (REFERENCE_VALUE_REVOKED, exit 64) and only `reapprove KIND VALUE --reason TEXT` lifts that.

This module holds the argparse table; the handlers live in refs_values (the rows and their lifecycle),
refs_plan (plan / apply) and refs_versions (import-nitro / compute snp)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..reference_values.model import STATES
from ..settings import add_flags
from .common import add_db_flag, rfc3339
from .refs_plan import _apply, _plan
from .refs_values import _add, _history, _import, _list, _reapprove, _revoke
from .refs_versions import _compute_snp, _import_nitro
from .remote import add_server_flags


def register(sub: Any) -> None:
    parser = sub.add_parser("refs", help="reference values (approved measurements)")
    rs = parser.add_subparsers(dest="refs_command", required=True)

    add = rs.add_parser("add", help="register an approved value")
    add.add_argument("kind", help="e.g. nitro.pcr0")
    add.add_argument("value", help="hex")
    add.add_argument("--label", default="", help="what this value is (image name, version)")
    _lifecycle_flags(add)
    add.add_argument("--json", action="store_true")
    add_db_flag(add)
    add_server_flags(add)
    add.set_defaults(handler=_add)

    ls = rs.add_parser("list", help="list reference values (active ones unless --all or --state)")
    ls.add_argument("--kind")
    ls.add_argument("--label")
    ls.add_argument("--state", choices=STATES)
    ls.add_argument("--all", action="store_true", help="every state: active, pending, expired, revoked")
    ls.add_argument("--json", action="store_true")
    add_db_flag(ls)
    add_server_flags(ls)
    ls.set_defaults(handler=_list)

    rv = rs.add_parser("revoke", help="revoke a row and with it its value in every row (kept, never deleted)")
    rv.add_argument("id")
    rv.add_argument("--reason", required=True)
    rv.add_argument("--json", action="store_true")
    add_db_flag(rv)
    add_server_flags(rv)
    rv.set_defaults(handler=_revoke)

    ra = rs.add_parser("reapprove", help="explicitly re-approve a revoked value so it may be added again (audited)")
    ra.add_argument("kind", help="e.g. nitro.pcr0")
    ra.add_argument("value", help="hex")
    ra.add_argument("--reason", required=True, help="why the revocation no longer holds (in the audit log)")
    ra.add_argument("--label", help="also add the value under this label, in the same change")
    _lifecycle_flags(ra)
    ra.add_argument("--json", action="store_true")
    add_db_flag(ra)
    add_server_flags(ra)
    ra.set_defaults(handler=_reapprove)

    hi = rs.add_parser("history", help="the audit trail of one value, or of a kind and/or label")
    hi.add_argument("id", nargs="?")
    hi.add_argument("--kind")
    hi.add_argument("--label")
    hi.add_argument("--json", action="store_true")
    add_db_flag(hi)
    add_server_flags(hi)
    hi.set_defaults(handler=_history)

    im = rs.add_parser("import", help="add the values of a manifest or `nitro-cli describe-eif` JSON (additive)")
    im.add_argument("file", type=Path)
    im.add_argument("--label", help="label for nitro-cli measurements (default: the EIF's ImageName or file name)")
    im.add_argument("--expires", type=rfc3339, metavar="RFC3339")
    im.add_argument("--json", action="store_true")
    add_db_flag(im)
    add_server_flags(im)
    im.set_defaults(handler=_import)

    for name, handler, text in (
        ("plan", _plan, "show what `apply` would change for the labels the manifests manage"),
        ("apply", _apply, "apply the plan in one transaction (all or nothing) and print it"),
    ):
        sp = rs.add_parser(name, help=text)
        sp.add_argument("files", nargs="+", type=Path, metavar="FILE")
        sp.add_argument(
            "--workload",
            "--label",
            dest="label",
            help="workload of nitro-cli JSON files (default: ImageName or file name)",
        )
        sp.add_argument("--values", action="store_true", help="also list every row added, expired or revoked")
        sp.add_argument("--json", action="store_true")
        if name == "plan":
            sp.add_argument(
                "--impact",
                action="store_true",
                help="re-appraise the kept evidence under the planned values and list what flips",
            )
            sp.add_argument("--impact-limit", type=int, default=1000, metavar="N", help="newest N kept items")
            add_flags(sp, ["trust_anchors", "offline"])
            sp.add_argument(
                "--detailed-exitcode",
                action="store_true",
                help="exit 0 when the plan changes nothing, 2 when it changes something (errors: 64, 3, 77, 70)",
            )
        else:
            sp.add_argument(
                "--plan-sha256",
                type=_sha256,
                metavar="SHA256",
                help="apply only the plan `refs plan` printed with this SHA-256 (PLAN_STALE if it moved since)",
            )
        add_db_flag(sp)
        add_server_flags(sp)
        sp.set_defaults(handler=handler)

    nitro = rs.add_parser(
        "import-nitro",
        help="nitro-cli build-enclave/describe-eif JSON -> a workload version "
        "(in a manifest with --out, else in the database)",
    )
    nitro.add_argument("file", type=Path)
    nitro.add_argument(
        "--workload",
        "--label",
        dest="workload",
        required=True,
        metavar="NAME",
        help="the workload (--label: the older name of this flag)",
    )
    _lifecycle_flags(nitro)
    nitro.add_argument("--policy", help="with --out: the policy the workload is appraised under")
    nitro.add_argument(
        "--alternative", action="store_true", help="the version exists: add these values to it as alternatives"
    )
    nitro.add_argument(
        "--out",
        type=Path,
        metavar="MANIFEST",
        help="the workload manifest to create or add the version to (.yaml/.yml or .json)",
    )
    nitro.add_argument("--json", action="store_true")
    add_db_flag(nitro)
    add_server_flags(nitro)
    nitro.set_defaults(handler=_import_nitro)

    compute = rs.add_parser("compute", help="compute expected measurements")
    cs = compute.add_subparsers(dest="compute_tee", required=True)
    snp = cs.add_parser("snp", help="SEV-SNP launch measurement (sev-snp-measure)")
    snp.add_argument("--ovmf", type=Path, required=True, help="OVMF firmware with SEV metadata")
    snp.add_argument("--kernel", type=Path)
    snp.add_argument("--initrd", type=Path)
    snp.add_argument("--append", help="kernel command line")
    snp.add_argument("--vcpus", type=int, required=True)
    snp.add_argument("--vcpu-type", required=True, help="e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa")
    snp.add_argument("--vmm-type", choices=("QEMU", "ec2"), default="QEMU")
    snp.add_argument("--guest-features", type=_int0, default=0x1, metavar="HEX")
    snp.add_argument(
        "--workload",
        "--label",
        dest="workload",
        metavar="NAME",
        help="the workload of the version (required with --out or --add; --label: older name)",
    )
    _lifecycle_flags(snp)
    snp.add_argument("--host-data", metavar="HEX", help="also require this snp.host_data (32 bytes) in the version")
    snp.add_argument("--policy", help="with --out: the policy the workload is appraised under")
    snp.add_argument(
        "--alternative",
        action="store_true",
        help="the version exists: add the measurement to it as an alternative (e.g. another vCPU count)",
    )
    target = snp.add_mutually_exclusive_group()
    target.add_argument(
        "--out",
        type=Path,
        metavar="MANIFEST",
        help="the workload manifest to create or add the version to (.yaml/.yml or .json)",
    )
    target.add_argument("--add", action="store_true", help="add the version to the database")
    snp.add_argument("--json", action="store_true")
    add_db_flag(snp)
    add_server_flags(snp)
    snp.set_defaults(handler=_compute_snp)


def _lifecycle_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", dest="ref_version", metavar="VERSION", help="release version of the value")
    parser.add_argument("--valid-from", type=rfc3339, metavar="RFC3339", help="pending until then")
    parser.add_argument("--expires", type=rfc3339, metavar="RFC3339")


def _int0(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _sha256(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError("not a SHA-256 (64 hex digits)")
    return value
