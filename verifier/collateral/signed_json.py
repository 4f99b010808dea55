"""Intel PCS v4 signed JSON documents (Intel Trusted Services API: GET /tdx/certification/v4/tcb and
/tdx/certification/v4/qe/identity): {"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}. The ECDSA
signature covers the exact bytes of the member value as served, so `SignedJson.raw` is cut out of the original text
and never re-serialised.

Only the split of the PCS format, nothing verified: strict JSON (no duplicate keys, no NaN/Infinity), one object
holding the member (an object) and a 64-byte signature. `SignedJsonError` (a ValueError, no error code) says what
is wrong. This is the only implementation of the split (issue 12: each trust rule written once): the TDX verifier
(verifier.tee.tdx.collateral_documents) calls it and raises EvidenceError TDX_COLLATERAL_MALFORMED with the same
message and actual, the PCS client (verifier.collateral.pcs_items.next_update) COLLATERAL_MALFORMED. The import goes
tee -> collateral only: nothing here imports verifier.tee.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_DOC_BYTES = 1 << 20
_WS = " \t\r\n"


class SignedJsonError(ValueError):
    """The document is not a PCS signed JSON document: `message` says why, `actual` (at most 200 characters) what
    was found."""

    def __init__(self, message: str, actual: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.actual = actual[:200]


@dataclass(frozen=True)
class SignedJson:
    raw: bytes  # exact bytes of the signed member value
    signature: bytes  # ECDSA r||s, 64 bytes
    data: dict[str, Any]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=lambda name: float(f"{name}x"))


def member_dict(raw: bytes, what: str) -> dict[str, Any]:
    """`raw` decoded by `DECODER`; SignedJsonError unless it is a JSON object."""
    try:
        data = DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise SignedJsonError(f"{what} is not JSON", str(exc)) from None
    if isinstance(data, dict):
        return data
    raise SignedJsonError(f"{what} is not a JSON object")


def signature(value: Any, what: str) -> bytes:
    """The 64 bytes r||s of a 128-character hex string; SignedJsonError for anything else."""
    try:
        sig = bytes.fromhex(value) if isinstance(value, str) and len(value) == 128 else b""
    except ValueError:
        sig = b""
    if len(sig) == 64:
        return sig
    raise SignedJsonError(f"{what} signature must be 64 bytes r||s as hex", repr(value))


def _skip(text: str, pos: int) -> int:
    return len(text) - len(text[pos:].lstrip(_WS))


def split_signed_json(doc: bytes, member: str) -> SignedJson:
    """Split `{"<member>": {...}, "signature": "<hex>"}` keeping the member value's exact bytes. Raises
    SignedJsonError (too large, not strict JSON, not one object, `member` or "signature" missing, a signature that
    is not 64 bytes of hex, a member that is not an object)."""
    if len(doc) > MAX_DOC_BYTES:
        raise SignedJsonError(f"{member} document too large", str(len(doc)))
    try:
        text = doc.decode("utf-8")
        spans: dict[str, tuple[int, int]] = {}
        pos = _skip(text, 0)
        if text[pos : pos + 1] != "{":
            raise ValueError("not a JSON object")
        sep = ","
        while sep == ",":
            key, pos = DECODER.raw_decode(text, _skip(text, pos + 1))
            if not isinstance(key, str) or key in spans:
                raise ValueError(f"bad or duplicate key {key!r}")
            pos = _skip(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError("':' expected")
            start = _skip(text, pos + 1)
            _, end = DECODER.raw_decode(text, start)
            spans[key], pos = (start, end), _skip(text, end)
            sep = text[pos : pos + 1]
        if sep != "}" or text[pos + 1 :].strip(_WS):
            raise ValueError("'}' expected at the end")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignedJsonError(f"{member} document is not a signed JSON object", str(exc)) from None
    if member not in spans or "signature" not in spans:
        raise SignedJsonError(f"{member} document needs '{member}' and 'signature'", ",".join(spans))
    start, end = spans[member]
    raw = text[start:end].encode("utf-8")
    sig_start, sig_end = spans["signature"]
    return SignedJson(raw, signature(json.loads(text[sig_start:sig_end]), member), member_dict(raw, member))
