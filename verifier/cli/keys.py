"""`verifier keys generate|show`: the EAR signing key (ES256, P-256)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..results.keys import generate_key_file, load_keys
from ..results.signer import ResultSigner
from ..settings import Settings
from .common import UsageError, print_json


def register(sub: Any) -> None:
    parser = sub.add_parser("keys", help="result-signing keys")
    ks = parser.add_subparsers(dest="keys_command", required=True)
    gen = ks.add_parser("generate", help="write a new P-256 signing key (PEM, mode 0600)")
    gen.add_argument("--out", type=Path, required=True, metavar="FILE")
    gen.add_argument("--force", action="store_true", help="overwrite an existing file")
    gen.set_defaults(handler=_generate)
    show = ks.add_parser("show", help="print the public JWKS of the configured key(s)")
    show.add_argument("--signing-key", type=Path, action="append", metavar="FILE")
    show.set_defaults(handler=_show)


def _generate(args: argparse.Namespace, base: Settings) -> int:
    key = generate_key_file(args.out, overwrite=args.force)
    print(f"wrote {args.out} (kid {key.kid}); serve with --signing-key {args.out}")
    return 0


def _show(args: argparse.Namespace, base: Settings) -> int:
    paths = list(args.signing_key or base.signing_keys)
    if not paths:
        raise UsageError("no key: pass --signing-key FILE or set VERIFIER_SIGNING_KEY")
    print_json(ResultSigner(load_keys(paths)).jwks())
    return 0
