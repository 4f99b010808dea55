"""Signed checkpoints of the audit log's hash chain, in the C2SP tlog-checkpoint layout (https://c2sp.org/tlog-checkpoint)
carried in a signed note (https://c2sp.org/signed-note).

Body: the origin line, the size (number of rows, decimal, no leading zeros), the base64 of the 32-byte SHA-256
chain hash of row `size` (64 zeros' bytes for an empty log), then one extension line "time <RFC 3339>" saying when
it was signed. The chain is a hash chain, not a Merkle tree, so "root hash" here is the head of the chain; a
checkpoint of size N pins rows 1..N. No database import: formatting and signatures only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from verifier.clock import parse_rfc3339, to_rfc3339
from verifier.results.signed_note import NoteError, NoteSigner, NoteVerifier, open_note, sign

_TIME = "time "
_MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class Checkpoint:
    """The log's size, the chain hash of row `size` (hex, as the database stores it) and when it was signed."""

    origin: str
    size: int
    head: str
    time: dt.datetime | None = None

    def body(self) -> str:
        head = base64.b64encode(bytes.fromhex(self.head)).decode()
        lines = [self.origin, str(self.size), head]
        if self.time is not None:
            lines.append(_TIME + to_rfc3339(self.time))
        return "\n".join(lines) + "\n"


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The signed note of `checkpoint`. Raises NoteError when the origin holds a newline or control character."""
    if not checkpoint.origin or "\n" in checkpoint.origin:
        raise NoteError("NOTE_MALFORMED", "a checkpoint origin is one non-empty line")
    return sign(checkpoint.body(), signer)


def open_checkpoint(note: bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify the signature of `note` by `verifier` (signed-note), then parse its checkpoint body (tlog-checkpoint).
    Raises NoteError: NOTE_MALFORMED, NOTE_UNKNOWN_KEY, NOTE_SIGNATURE_INVALID, CHECKPOINT_MALFORMED."""
    lines = open_note(note, verifier).split("\n")[:-1]
    if len(lines) < 3:
        raise NoteError("CHECKPOINT_MALFORMED", "a checkpoint has an origin, a size and a hash line")
    origin, size_text, head_text = lines[:3]
    if not origin:
        raise NoteError("CHECKPOINT_MALFORMED", "empty origin line")
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError("CHECKPOINT_MALFORMED", "the size is not a decimal number without leading zeros")
    size = int(size_text)
    if size > _MAX_SIZE:
        raise NoteError("CHECKPOINT_MALFORMED", "the size is out of range")
    try:
        head = base64.b64decode(head_text, validate=True)
    except binascii.Error:
        raise NoteError("CHECKPOINT_MALFORMED", "the hash line is not base64") from None
    if len(head) != 32:
        raise NoteError("CHECKPOINT_MALFORMED", "the hash is not 32 bytes (SHA-256)")
    when = None
    for line in lines[3:]:
        if line.startswith(_TIME) and when is None:
            try:
                when = parse_rfc3339(line[len(_TIME) :])
            except ValueError:
                raise NoteError("CHECKPOINT_MALFORMED", "the time line is not RFC 3339") from None
    return Checkpoint(origin, size, head.hex(), when)
