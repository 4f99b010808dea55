"""`verifier audit verify|list|keygen|checkpoint`: the hash-chained audit log and its signed checkpoints, on the
database (`--db`) or on a running server (`--server`, verifier.v1.AuditService: the server recomputes the chain,
this side compares it with the checkpoints and signs new ones, so the key never leaves the workstation).

A checkpoint (C2SP tlog-checkpoint in a signed note, Ed25519) pins the first `size` rows by the chain hash of row
`size`. It is signed with a key the database never holds and kept where the operator chooses (a file, a directory
of checkpoints); `audit verify --checkpoint` recomputes the chain and detects rewrites (re-hashed or not), inserts
and truncation of the rows a checkpoint covers.

After `verifier db prune --audit-checkpoint` (module `verifier.storage.retention`) the log starts after a recorded
pruned prefix 1..N: with keys, the checkpoint recorded with each prune must verify under one of them (else exit 2).
A given checkpoint of size N, or of a size a prune record names, is checked against the recorded head; one of a
smaller size covers only deleted rows and is reported as PRUNED (cannot check), which alone does not fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import to_rfc3339
from ..results.audit_checkpoint import Checkpoint, sign_checkpoint
from ..results.signed_note import (
    MAX_NOTE_BYTES,
    NoteError,
    NoteSigner,
    NoteVerifier,
    generate_signer,
    load_signer,
    parse_verifier,
    write_signer,
)
from ..settings import Settings
from ..storage import audit
from .audit_port import audit_log
from .common import EXIT_CONTRAINDICATED, UsageError, add_db_flag, eprint, print_json
from .output import print_table
from .remote import add_server_flags

EXIT_TAMPERED = EXIT_CONTRAINDICATED  # 2: the log was edited, truncated, re-hashed or does not match a checkpoint
CHECKPOINT_SUFFIX = ".checkpoint"
DEFAULT_KEY_NAME = "verifier-audit"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="the tamper-evident audit log")
    au = parser.add_subparsers(dest="audit_command", required=True)
    ver = au.add_parser(
        "verify",
        help="recompute the hash chain and check it against signed checkpoints; exit 2 "
        "naming the first bad row or the checkpoint it contradicts",
    )
    ver.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="a checkpoint file, or a directory of *.checkpoint files (all are checked; repeatable)",
    )
    ver.add_argument(
        "--key-public",
        action="append",
        default=[],
        metavar="VKEY",
        help="the signed-note verifier key (name+keyid+base64) or a file holding it (repeatable: any may sign)",
    )
    _common(ver)
    ver.set_defaults(handler=_verify)
    ls = au.add_parser("list", help="list audit rows in order")
    ls.add_argument("--after", type=int, default=0, metavar="SEQ", help="rows after this sequence number")
    ls.add_argument("--limit", type=_positive, default=100, metavar="N")
    ls.add_argument("--action", metavar="A", help="only this action (e.g. appraisal, policy.set)")
    ls.add_argument("--json", action="store_true")
    _common(ls)
    ls.set_defaults(handler=_list)
    gen = au.add_parser("keygen", help="create an Ed25519 checkpoint key: FILE (0600) and FILE.pub (verifier key)")
    gen.add_argument("--out", required=True, type=Path, metavar="FILE")
    gen.add_argument("--name", default=DEFAULT_KEY_NAME, help=f"key name (default {DEFAULT_KEY_NAME})")
    gen.set_defaults(handler=_keygen)
    cp = au.add_parser(
        "checkpoint",
        help="sign a checkpoint of the current chain head (refused when the chain is "
        "broken or contradicts a checkpoint already in --dir)",
    )
    cp.add_argument("--key", required=True, type=Path, metavar="FILE", help="private key from `audit keygen`")
    where = cp.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, metavar="FILE", help="write (replace) this file; default stdout")
    where.add_argument("--dir", type=Path, metavar="DIR", help="add SIZE-TIME.checkpoint to this directory")
    cp.add_argument("--origin", help="checkpoint origin line (default: the key name)")
    _common(cp)
    cp.set_defaults(handler=_checkpoint)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError("must be 1..100000")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    add_db_flag(parser)
    add_server_flags(parser)


@dataclass(frozen=True)
class _Signed:
    path: Path
    checkpoint: Checkpoint


def read_verifier(text: str) -> NoteVerifier:
    """A verifier key line, or a file holding one. Raises NoteKeyError, UsageError (unreadable file)."""
    path = Path(text)
    if path.is_file():
        text = _read_small(path).decode("ascii", errors="replace")
    return parse_verifier(text)


def _read_small(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(MAX_NOTE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _checkpoint_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith(CHECKPOINT_SUFFIX) and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"no such checkpoint file or directory: {path}")
    if not files:
        raise UsageError(f"no *{CHECKPOINT_SUFFIX} file in {', '.join(paths)}")
    return files


def _open_all(files: list[Path], verifiers: list[NoteVerifier]) -> tuple[list[_Signed], list[str]]:
    """Each file's checkpoint, and one problem line per file that is not a valid checkpoint signed by a verifier."""
    signed, problems = [], []
    for path in files:
        try:
            signed.append(_Signed(path, audit.open_with_any(_read_small(path), verifiers)))
        except NoteError as exc:
            problems.append(f"checkpoint {path}: {exc.code}: {exc.message}")
    return signed, problems


def _contradictions(check: audit.ChainCheck, signed: list[_Signed]) -> tuple[list[str], list[_Signed]]:
    """One line per checkpoint the recomputed chain (or a recorded prune head) does not reproduce, and the
    checkpoints that cover only pruned rows (nothing left to check them against)."""
    problems, pruned = [], []
    for s in signed:
        cp, when = s.checkpoint, to_rfc3339(s.checkpoint.time) if s.checkpoint.time else "an unknown time"
        if cp.size > check.good:
            what = f"the log has {check.good} rows" if check.ok else f"the chain is only consistent to row {check.good}"
            problems.append(f"checkpoint {s.path}: TRUNCATED: it covers {cp.size} rows (signed {when}), {what}")
        elif cp.size not in check.hashes and cp.size < check.pruned:
            pruned.append(s)
        elif check.hashes.get(cp.size) != cp.head:
            problems.append(
                f"checkpoint {s.path}: REWRITTEN: row {cp.size} hashes to {check.hashes.get(cp.size)}, "
                f"the checkpoint signed {when} says {cp.head}: rows 1..{cp.size} were changed"
            )
    return problems, pruned


def _print_head(check: audit.ChainCheck) -> None:
    print(f"head: size {check.good} hash {check.head}")


def _verify(args: argparse.Namespace, base: Settings) -> int:
    if bool(args.checkpoint) != bool(args.key_public):
        raise UsageError("--checkpoint and --key-public go together")
    signed: list[_Signed] = []
    problems: list[str] = []
    verifiers = [read_verifier(text) for text in args.key_public]
    if args.checkpoint:
        signed, problems = _open_all(_checkpoint_files(args.checkpoint), verifiers)
    with audit_log(args, base) as log:
        check = log.verify_chain({s.checkpoint.size for s in signed}, verifiers)
    more, pruned = _contradictions(check, signed)
    problems += more
    signed = [s for s in signed if s not in pruned]
    if check.ok and not problems:
        print(f"audit log intact: {check.rows} rows" + _pruned_text(check))
    elif check.ok:
        print(f"audit log TAMPERED: the chain of {check.rows} rows is consistent but its checkpoints do not check out")
    else:
        print(f"audit log BROKEN at row {check.bad_seq}: {check.reason}")
    _print_head(check)
    for line in problems:
        print(line)
    for s in pruned:
        print(
            f"checkpoint {s.path}: PRUNED: it covers rows 1..{s.checkpoint.size}, deleted by the prune of rows "
            f"1..{check.pruned}; cannot check"
        )
    if signed and not problems:
        latest = max(signed, key=lambda s: (s.checkpoint.size, s.checkpoint.time or _EPOCH))
        cp = latest.checkpoint
        when = to_rfc3339(cp.time) if cp.time else "an unknown time"
        print(
            f"latest checkpoint {latest.path}: origin {cp.origin} size {cp.size} signed {when} matches; "
            f"{check.good - cp.size} rows new since ({len(signed)} checkpoints checked)"
        )
    elif not args.checkpoint:
        eprint(
            "verifier: no signed checkpoint given: a truncated log, or rows rewritten and re-hashed, look intact; "
            "use --checkpoint and --key-public"
            + ("; the checkpoint recorded with the prune was not verified either" if check.pruned else "")
        )
    return 0 if check.ok and not problems else EXIT_TAMPERED


def _pruned_text(check: audit.ChainCheck) -> str:
    if not check.pruned:
        return ""
    latest = check.prunes[-1]
    signed = "verified" if check.prune_verified else "not verified"
    return (
        f" after the pruned rows 1..{check.pruned} (pruned {to_rfc3339(latest.pruned_at)} under a checkpoint of "
        f"size {latest.checkpoint_size}, signature {signed})"
    )


def _keygen(args: argparse.Namespace, _base: Settings) -> int:
    signer = generate_signer(args.name)
    public = Path(f"{args.out}.pub")
    try:
        write_signer(args.out, signer)
    except FileExistsError:
        raise UsageError(f"{args.out} exists; not overwriting a key") from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    try:
        public.write_text(signer.verifier.encode() + "\n", encoding="ascii")
    except OSError as exc:
        raise UsageError(f"cannot write {public}: {exc.strerror}") from None
    print(signer.verifier.encode())
    return 0


def _load_signer(path: Path) -> NoteSigner:
    try:
        return load_signer(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _write_replacing(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a temporary file in the same directory, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checkpoint(args: argparse.Namespace, base: Settings) -> int:
    signer = _load_signer(args.key)
    signed: list[_Signed] = []
    problems: list[str] = []
    if args.dir is not None:
        if not args.dir.is_dir():
            raise UsageError(f"no such directory: {args.dir}")
        files = sorted(p for p in args.dir.iterdir() if p.name.endswith(CHECKPOINT_SUFFIX) and p.is_file())
        signed, problems = _open_all(files, [signer.verifier])
    with audit_log(args, base) as log:
        check = log.verify_chain({s.checkpoint.size for s in signed}, [])
    problems += _contradictions(check, signed)[0]
    if not check.ok or problems:
        print(
            f"not signing: audit log BROKEN at row {check.bad_seq}: {check.reason}"
            if not check.ok
            else "not signing: the log contradicts a checkpoint already in the directory"
        )
        _print_head(check)
        for line in problems:
            print(line)
        return EXIT_TAMPERED
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cp = Checkpoint(args.origin or signer.name, check.good, check.head, now)
    note = sign_checkpoint(cp, signer)
    if args.out is None and args.dir is None:
        sys.stdout.write(note)
        return 0
    target = args.out or args.dir / f"{cp.size:012d}-{now.strftime('%Y%m%dT%H%M%SZ')}{CHECKPOINT_SUFFIX}"
    try:
        _write_replacing(target, note)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    print(f"checkpoint written to {target}")
    _print_head(check)
    return 0


def entry_json(entry: audit.AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": to_rfc3339(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _list(args: argparse.Namespace, base: Settings) -> int:
    with audit_log(args, base) as log:
        rows = [entry_json(e) for e in log.entries(after=args.after, limit=args.limit, action=args.action)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["seq", "at", "action", "subject", "actor"])
    return 0
