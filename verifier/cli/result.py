"""`verifier result verify TOKEN --jwks URL|FILE`: check a signed attestation result (an EAR JWT) as a relying party
would, with the client library's checks (verifier.client: ES256 signature by the JWKS key its `kid` names, `iss`,
`exp`/`iat`/`nbf` within `--clock-skew`, `eat_nonce`), then print its status and claims; the exit code is the
status's, as for `verify` (`--detailed-exitcode` too). A token that fails a check exits 2 and says why.

`verifier result show TOKEN`: decode without verifying anything, labelled UNVERIFIED: header, summary and claims.

TOKEN may be `-` (stdin). The status is the submodule's `ear_status` (the one a relying party must check,
draft-ietf-rats-ear s3.1); the rest is read tolerantly (either spelling of the EAR claims, the findings and the
workload wherever the submodule carries them), so tokens of other builds print too.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..client.claim_checks import check_issuer, check_lifetime, check_nonce, check_submodule
from ..client.jwks import MAX_JWKS_BYTES, fetch_jwks_http
from ..client.jws import ResultError, verify_jws
from ..clock import to_rfc3339
from .common import (
    EXIT_CONTRAINDICATED,
    UsageError,
    add_detailed_exitcode_flag,
    eprint,
    exit_code,
    failure_class,
    hex_bytes,
    print_json,
    rfc3339,
)
from .output import print_fields
from .summary import print_summary, vector_text, workload_text

STDIN = "-"
MAX_TOKEN_BYTES = 256 * 1024
DEFAULT_CLOCK_SKEW_S = 30
UNVERIFIED = "UNVERIFIED: decoded only; the signature and the claims were not checked"


def register(sub: Any) -> None:
    parser = sub.add_parser("result", help="inspect a signed attestation result (EAR token)")
    rsub = parser.add_subparsers(dest="result_command", required=True)
    check = rsub.add_parser(
        "verify",
        help="verify a token's signature and lifetime against a JWKS and print its status",
        description="Exit 0 affirming, 1 warning, 2 contraindicated or a token that does not verify, 3 the JWKS "
        "cannot be fetched, 64 usage.",
    )
    check.add_argument("token", metavar="TOKEN", help="the compact JWT, or - for stdin")
    check.add_argument(
        "--jwks",
        required=True,
        metavar="URL|FILE",
        help="the verifier's JWKS: an https URL (http on loopback) or a file",
    )
    check.add_argument("--issuer", metavar="ISS", help="the iss the token must carry")
    check.add_argument("--nonce", type=hex_bytes, metavar="HEX", help="the nonce (eat_nonce) the token must carry")
    check.add_argument(
        "--clock-skew",
        type=_seconds,
        default=DEFAULT_CLOCK_SKEW_S,
        metavar="SECONDS",
        help=f"leeway for exp / iat / nbf (default {DEFAULT_CLOCK_SKEW_S})",
    )
    check.add_argument("--at", type=rfc3339, metavar="RFC3339", help="check the lifetime at this time (default: now)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    add_detailed_exitcode_flag(check)
    check.set_defaults(handler=_verify)
    show = rsub.add_parser("show", help="decode a token without verifying it (labelled UNVERIFIED)")
    show.add_argument("token", metavar="TOKEN", help="the compact JWT, or - for stdin")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_show)


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError("must be 0..86400")
    return value


def read_token(value: str) -> str:
    """The token `value`, or stdin's (at most MAX_TOKEN_BYTES) for `-`, without surrounding white space (a
    `Bearer ` prefix is dropped too). Raises UsageError for an empty, oversized or non-ASCII token."""
    raw = sys.stdin.buffer.read(MAX_TOKEN_BYTES + 1) if value == STDIN else value.encode("utf-8", "replace")
    if len(raw) > MAX_TOKEN_BYTES:
        raise UsageError(f"the token is over the {MAX_TOKEN_BYTES}-byte limit")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UsageError("the token is not ASCII (a compact JWT is base64url and dots)") from None
    if token.lower().startswith("bearer "):
        token = token[len("bearer ") :].strip()
    if not token:
        raise UsageError("no token" + (" on stdin" if value == STDIN else ""))
    return token


def load_jwks(source: str) -> dict[str, Any]:
    """The JWKS at `source`: fetched for an http(s) URL (https, or http on loopback; no redirects; bounded), else
    read from a file, which may hold a JWK Set or one JWK. Raises UsageError for an unreadable or malformed file,
    ConfigError JWKS_URL_INVALID, UnavailableError JWKS_UNAVAILABLE / JWKS_INVALID for a URL."""
    if source.startswith(("https://", "http://")):
        return fetch_jwks_http(source)
    path = Path(source)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read --jwks {source}: {exc.strerror}") from None
    if len(raw) > MAX_JWKS_BYTES:
        raise UsageError(f"--jwks {source} is over {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise UsageError(f"--jwks {source} is not JSON") from None
    if isinstance(document, dict) and "kty" in document:
        document = {"keys": [document]}
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise UsageError(f'--jwks {source} is not a JWK Set ({{"keys": [...]}}) or a JWK')
    return {"keys": [k for k in document["keys"] if isinstance(k, dict)]}


def _verify(args: argparse.Namespace, _settings: Any) -> int:
    token = read_token(args.token)
    jwks = load_jwks(args.jwks)
    now = args.at or dt.datetime.now(dt.UTC)
    try:
        header, claims = verify_jws(token, jwks)
        check_issuer(claims, args.issuer)
        check_lifetime(claims, now, dt.timedelta(seconds=args.clock_skew))
        check_nonce(claims, args.nonce)
        tee, submod, status = check_submodule(claims, "none")
    except ResultError as exc:
        if args.json:
            print_json({"verified": False, "error": _error_json(exc)})
        eprint(f"verifier: the token does not verify: {exc.code}: {exc.message}")
        for name in ("expected", "actual"):
            if getattr(exc, name):
                eprint(f"  {name} {getattr(exc, name)}")
        return EXIT_CONTRAINDICATED
    findings = findings_of(submod)
    kind = failure_class(status, findings)
    if args.json:
        print_json(
            {
                "verified": True,
                "status": status,
                "tee": tee,
                "failure_class": kind.value if kind is not None else None,
                "header": header,
                "claims": claims,
            }
        )
    else:
        fields = [("signature", f"verified ({header.get('alg')}, kid {header.get('kid')})"), *_token_fields(claims)]
        print_summary([*fields, *_submod_fields(tee, submod, kind)], findings)
    return exit_code(status, findings, detailed=args.detailed_exitcode)


def _error_json(exc: ResultError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message, "expected": exc.expected, "actual": exc.actual}


def _show(args: argparse.Namespace, _settings: Any) -> int:
    header, claims = decode_unverified(read_token(args.token))
    eprint(f"verifier: {UNVERIFIED}")
    if args.json:
        print_json({"verified": False, "header": header, "claims": claims})
        return 0
    print(UNVERIFIED)
    print()
    print_fields([(f"header {name}", _compact(value)) for name, value in header.items()])
    submods = claims.get("submods")
    rows: list[tuple[str, Any]] = list(_token_fields(claims))
    findings: list[Any] = []
    if isinstance(submods, Mapping):
        for tee, submod in submods.items():
            if isinstance(submod, Mapping):
                rows.extend(_submod_fields(str(tee), submod, None, status_name=f"status ({tee})"))
                findings.extend(findings_of(submod))
    print()
    print_summary(rows, findings)
    print()
    print("claims:")
    print(json.dumps(claims, indent=2))
    return 0


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS, decoded without checking anything. Raises UsageError when it is not
    three base64url parts whose first two are JSON objects."""
    parts = token.split(".")
    if len(parts) != 3:
        raise UsageError("not a compact JWT (three base64url parts separated by dots)")
    decoded = []
    for what, part in (("header", parts[0]), ("payload", parts[1])):
        try:
            value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError, RecursionError):
            raise UsageError(f"the token's {what} is not base64url JSON") from None
        if not isinstance(value, dict):
            raise UsageError(f"the token's {what} is not a JSON object")
        decoded.append(value)
    return decoded[0], decoded[1]


def findings_of(submod: Mapping[str, Any]) -> list[Any]:
    """The findings a submodule carries: the first list under a key naming findings, at the top of the submodule
    or one map down (an extension map of this verifier's, whatever its name). Never raises."""
    places: list[Mapping[str, Any]] = [submod, *(v for v in submod.values() if isinstance(v, Mapping))]
    for place in places:
        for key, value in place.items():
            if isinstance(key, str) and key.rsplit(".", 1)[-1].endswith("findings") and isinstance(value, list):
                return value
    return []


def _lookup(submod: Mapping[str, Any], suffix: str) -> Any:
    """The value of the first key ending in `suffix` in the submodule or one map down (tolerant of renames)."""
    places: list[Mapping[str, Any]] = [submod, *(v for v in submod.values() if isinstance(v, Mapping))]
    for place in places:
        for key, value in place.items():
            if isinstance(key, str) and (key == suffix or key.endswith(("." + suffix, "-" + suffix, "/" + suffix))):
                return value
    return None


def ear_claim(claims: Mapping[str, Any], name: str) -> Any:
    """EAR claim `name` (e.g. `ear_status`) under either spelling: draft-ietf-rats-ear's `ear_status` or the older
    `ear.status` / `ear.trustworthiness-vector` (a `.` for the first `_`, `-` for the others). None when absent;
    never raises."""
    if name in claims:
        return claims[name]
    prefix, _, rest = name.partition("_")
    return claims.get(f"{prefix}.{rest.replace('_', '-')}")


def _token_fields(claims: Mapping[str, Any]) -> list[tuple[str, Any]]:
    verifier_id = ear_claim(claims, "ear_verifier_id")
    return [
        ("issuer", claims.get("iss")),
        ("issued at", _instant(claims.get("iat"))),
        ("expires at", _instant(claims.get("exp"))),
        ("token id", claims.get("jti")),
        ("nonce", claims.get("eat_nonce")),
        ("key bound", "yes (cnf)" if "cnf" in claims else None),
        ("verifier", _compact(verifier_id) if verifier_id is not None else None),
    ]


def _submod_fields(
    tee: str, submod: Mapping[str, Any], kind: Any, status_name: str = "status"
) -> list[tuple[str, Any]]:
    status = str(ear_claim(submod, "ear_status"))
    if kind is not None:
        status += f" ({kind.value})"
    policies = ear_claim(submod, "ear_appraisal_policy_ids")
    policy = (
        ", ".join(map(str, policies)) if isinstance(policies, list) else ear_claim(submod, "ear_appraisal_policy_id")
    )
    return [
        (status_name, status),
        ("tee", tee),
        ("workload", workload_text(_lookup(submod, "workload"))),
        ("policy", policy),
        ("trust vector", vector_text(ear_claim(submod, "ear_trustworthiness_vector"))),
    ]


def _instant(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None if value is None else str(value)
    try:
        return to_rfc3339(dt.datetime.fromtimestamp(value, dt.UTC))
    except (OverflowError, OSError, ValueError):
        return str(value)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
