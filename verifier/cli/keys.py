"""`verifier keys generate|show|init|rotate|prune|list`: the EAR signing key(s) (ES256, P-256)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from ..clock import SystemClock, to_rfc3339
from ..errors import ConfigError
from ..results.keyring import KeyEntry, Keyring, default_publish_for
from ..results.keys import generate_key_file, load_keys
from ..results.signer import ResultSigner
from ..settings import Settings
from .common import UsageError, print_json


def register(sub: Any) -> None:
    parser = sub.add_parser("keys", help="result-signing keys")
    ks = parser.add_subparsers(dest="keys_command", required=True)
    gen = ks.add_parser(
        "generate", help="write a new P-256 signing key (PEM, mode 0600; missing parent directories are made 0700)"
    )
    gen.add_argument("--out", type=Path, required=True, metavar="FILE")
    gen.add_argument("--force", action="store_true", help="overwrite an existing file")
    gen.set_defaults(handler=_generate)
    show = ks.add_parser("show", help="print the public JWKS of the configured key(s) or keyring")
    show.add_argument("--signing-key", type=Path, action="append", metavar="FILE")
    _dir_flag(show, "keyring directory (its currently published keys)")
    show.set_defaults(handler=_show)
    init = ks.add_parser("init", help="create a keyring directory (0700) with its first active key")
    _dir_flag(init)
    init.set_defaults(handler=_init)
    rotate = ks.add_parser("rotate", help="add a new active key; the old one stays published for --publish-for")
    _dir_flag(rotate)
    rotate.add_argument(
        "--publish-for",
        type=float,
        metavar="SECONDS",
        help="how long the retired key stays in the JWKS (default token lifetime + 300)",
    )
    rotate.set_defaults(handler=_rotate)
    prune = ks.add_parser("prune", help="delete retired keys whose publish window has passed")
    _dir_flag(prune)
    prune.set_defaults(handler=_prune)
    listing = ks.add_parser("list", help="list the keyring's keys and their state")
    _dir_flag(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)


def _dir_flag(parser: argparse.ArgumentParser, help_text: str = "keyring directory") -> None:
    parser.add_argument("--dir", type=Path, metavar="DIR", help=f"{help_text} (default VERIFIER_SIGNING_KEY_DIR)")


def _directory(args: argparse.Namespace, base: Settings) -> Path:
    directory: Path | None = args.dir or base.signing_key_dir
    if directory is None:
        raise UsageError("no keyring: pass --dir DIR or set VERIFIER_SIGNING_KEY_DIR")
    return directory


def _make_parents(path: Path) -> None:
    """Create the missing parent directories of `path`, each mode 0700 (a key directory is private; `mkdir -p`
    would leave the umask's mode on them). ConfigError SIGNING_KEY_UNWRITABLE when one cannot be made."""
    missing = [parent for parent in path.parents if not os.path.lexists(parent)]
    for parent in reversed(missing):
        try:
            parent.mkdir(mode=0o700)
            parent.chmod(0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: use it as it is
        except OSError as error:
            raise ConfigError(
                "SIGNING_KEY_UNWRITABLE", f"cannot create directory {parent} for {path}: {error.strerror}"
            ) from None


def _generate(args: argparse.Namespace, base: Settings) -> int:
    out: Path = args.out
    _make_parents(out)
    try:
        key = generate_key_file(out, overwrite=args.force)
    except OSError as error:  # a read-only or foreign directory, a full disk, a directory in the way
        raise ConfigError("SIGNING_KEY_UNWRITABLE", f"cannot write {out}: {error.strerror}") from None
    print(f"wrote {out} (kid {key.kid}, mode 0600); serve with --signing-key {out}")
    return 0


def _show(args: argparse.Namespace, base: Settings) -> int:
    if args.dir is not None or (not args.signing_key and base.signing_key_dir is not None):
        keyring = Keyring.open(_directory(args, base))
        print_json(ResultSigner(keyring.published(SystemClock().now())).jwks())
        return 0
    paths = list(args.signing_key or base.signing_keys)
    if not paths:
        raise UsageError("no key: pass --signing-key FILE, --dir DIR or set VERIFIER_SIGNING_KEY(_DIR)")
    print_json(ResultSigner(load_keys(paths)).jwks())
    return 0


def _init(args: argparse.Namespace, base: Settings) -> int:
    directory = _directory(args, base)
    keyring = Keyring.init(directory, now=SystemClock().now())
    print(
        f"created keyring {directory} with active key {keyring.active_entry.kid}; "
        f"serve with --signing-key-dir {directory}"
    )
    return 0


def _rotate(args: argparse.Namespace, base: Settings) -> int:
    if args.publish_for is not None and args.publish_for < 0:
        raise UsageError("--publish-for must not be negative")
    publish_for = (
        dt.timedelta(seconds=args.publish_for)
        if args.publish_for is not None
        else default_publish_for(base.token_lifetime)
    )
    keyring = Keyring.open(_directory(args, base))
    now = SystemClock().now()
    key = keyring.rotate(now, publish_for=publish_for, token_lifetime=base.token_lifetime)
    print(f"new active key {key.kid}")
    for entry in keyring.published_entries(now)[1:]:
        assert entry.publish_until is not None
        print(f"still published: {entry.kid} until {to_rfc3339(entry.publish_until)}")
    return 0


def _prune(args: argparse.Namespace, base: Settings) -> int:
    gone = Keyring.open(_directory(args, base)).prune(SystemClock().now())
    for entry in gone:
        print(f"removed {entry.kid} ({entry.file})")
    if not gone:
        print("nothing to prune")
    return 0


def _state(entry: KeyEntry, now: dt.datetime) -> str:
    if entry.active:
        return "active"
    return "published" if entry.published(now) else "expired"


def _list(args: argparse.Namespace, base: Settings) -> int:
    keyring = Keyring.open(_directory(args, base))
    now = SystemClock().now()
    rows = [{**e.to_json(), "state": _state(e, now)} for e in keyring.entries]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        until = f" until {row['publish_until']}" if row["publish_until"] else ""
        print(f"{row['kid']}  {row['state']}{until}  created {row['created_at']}  {row['file']}")
    return 0
