"""C2SP signed notes with Ed25519 keys (https://c2sp.org/signed-note), as Go's golang.org/x/mod/sumdb/note writes them.

A note is UTF-8 text ending in a newline, a blank line, then signature lines "— <key name> <base64(key ID ||
signature)>" (U+2014, a space). The signature covers the text including its final newline. The key ID is the first
four bytes of SHA-256(key name || 0x0A || 0x01 || public key), 0x01 being the Ed25519 signature type. A verifier key
is "<name>+<hex key ID>+<base64(0x01 || public key)>"; a private key (Go's encoding) is
"PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>". Verifiers ignore signatures by unknown keys and
reject the note when a known key's signature does not verify. No database import: this module only formats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verifier.errors import ErrorKind, RequestError, VerifierError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_NOTE_BYTES = 64 * 1024  # ours: a checkpoint is a few hundred bytes
MAX_SIGNATURES = 100  # as Go's note.Open
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class NoteError(VerifierError):
    """A note that is malformed, unsigned by the expected key, or whose signature does not verify.
    Codes: NOTE_MALFORMED, NOTE_UNKNOWN_KEY, NOTE_SIGNATURE_INVALID."""

    kind = ErrorKind.EVIDENCE


class NoteKeyError(RequestError):
    """A key file or verifier key line that does not parse (code NOTE_KEY_INVALID): a usage error."""


def _check_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name) or not name.isprintable():
        raise NoteKeyError("NOTE_KEY_INVALID", "a key name must be non-empty, printable, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The RECOMMENDED 4-byte key ID of signed-note: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 verifier key: its name, key ID and public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey = field(repr=False)

    def encode(self) -> str:
        raw = _raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + raw).decode()}"


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 signing key with its name; `verifier` is the matching public key."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def verifier(self) -> NoteVerifier:
        public = self.private_key.public_key()
        return NoteVerifier(self.name, key_id(self.name, _raw_public(public)), public)

    def encode(self) -> str:
        seed = self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        data = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{data}"


def generate_signer(name: str) -> NoteSigner:
    """A fresh Ed25519 key named `name`. Raises NoteKeyError for a name signed-note does not allow."""
    _check_name(name)
    return NoteSigner(name, Ed25519PrivateKey.generate())


def _split_key(text: str, parts_wanted: int) -> list[str]:
    parts = text.strip().split("+", parts_wanted - 1)  # base64 key data may contain "+"
    if len(parts) != parts_wanted:
        raise NoteKeyError("NOTE_KEY_INVALID", "not a signed-note key (name+keyid+base64)")
    return parts


def _key_data(name: str, hex_id: str, data: str) -> tuple[bytes, bytes]:
    _check_name(name)
    try:
        raw = base64.b64decode(data, validate=True)
        wanted_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise NoteKeyError("NOTE_KEY_INVALID", "the key ID or key data is not hex / base64") from None
    if len(wanted_id) != 4 or len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteKeyError("NOTE_KEY_INVALID", "only Ed25519 keys (type 0x01, 32 bytes) are supported")
    return wanted_id, raw[1:]


def parse_verifier(text: str) -> NoteVerifier:
    """Parse "<name>+<hex key ID>+<base64(0x01 || public key)>". Raises NoteKeyError (also when the key ID does not
    match the key)."""
    name, hex_id, data = _split_key(text, 3)
    wanted_id, raw = _key_data(name, hex_id, data)
    if key_id(name, raw) != wanted_id:
        raise NoteKeyError("NOTE_KEY_INVALID", "the key ID does not match the name and public key")
    return NoteVerifier(name, wanted_id, Ed25519PublicKey.from_public_bytes(raw))


def parse_signer(text: str) -> NoteSigner:
    """Parse "PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>". Raises NoteKeyError."""
    parts = _split_key(text, 5)
    if parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise NoteKeyError("NOTE_KEY_INVALID", "not a signed-note private key (PRIVATE+KEY+...)")
    wanted_id, seed = _key_data(parts[2], parts[3], parts[4])
    signer = NoteSigner(parts[2], Ed25519PrivateKey.from_private_bytes(seed))
    if signer.verifier.key_id != wanted_id:
        raise NoteKeyError("NOTE_KEY_INVALID", "the key ID does not match the private key")
    return signer


def write_signer(path: Path, signer: NoteSigner) -> None:
    """Create `path` 0600 (never overwriting) holding the private key. Raises FileExistsError / OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(signer.encode() + "\n")


def load_signer(path: Path) -> NoteSigner:
    """Read a private key written by `write_signer`. Raises NoteKeyError when group or others may read it or it does
    not parse, OSError when unreadable."""
    if path.stat().st_mode & 0o077:
        raise NoteKeyError("NOTE_KEY_INVALID", f"{path} is readable by group or others; chmod 600 it")
    return parse_signer(path.read_text(encoding="ascii", errors="replace"))


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or any(ch < " " and ch != "\n" for ch in text):
        raise NoteError("NOTE_MALFORMED", "note text must end in a newline, have no blank or control characters")


def sign(text: str, signer: NoteSigner) -> str:
    """The signed note of `text` (Ed25519 over the UTF-8 text, signed-note section "Signatures")."""
    _check_text(text)
    blob = signer.verifier.key_id + signer.private_key.sign(text.encode())
    return f"{text}\n{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n"


def open_note(note: bytes, verifier: NoteVerifier) -> str:
    """Verify `note` against `verifier` and return its text. Raises NoteError: NOTE_MALFORMED (size, encoding,
    layout), NOTE_UNKNOWN_KEY (no signature by this key name and key ID), NOTE_SIGNATURE_INVALID (a signature by
    this key that does not verify: the whole note is rejected, as signed-note requires)."""
    if len(note) > MAX_NOTE_BYTES:
        raise NoteError("NOTE_MALFORMED", f"note larger than {MAX_NOTE_BYTES} bytes")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("NOTE_MALFORMED", "note is not UTF-8") from None
    split = decoded.rfind("\n\n")
    if split < 0 or not decoded.endswith("\n"):
        raise NoteError("NOTE_MALFORMED", "no blank line before the signatures")
    text, lines = decoded[: split + 1], decoded[split + 2 :].splitlines()
    _check_text(text)
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError("NOTE_MALFORMED", f"a note needs 1..{MAX_SIGNATURES} signature lines")
    for line in lines:
        name, blob = _signature_line(line)
        if name != verifier.name or blob[:4] != verifier.key_id:
            continue
        try:
            verifier.public_key.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise NoteError("NOTE_SIGNATURE_INVALID", f"the signature by {name} does not verify") from None
        return text
    raise NoteError("NOTE_UNKNOWN_KEY", f"the note carries no signature by {verifier.name}+{verifier.key_id.hex()}")


def _signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("NOTE_MALFORMED", "a signature line must start with an em dash and a space")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2 or not parts[0]:
        raise NoteError("NOTE_MALFORMED", "a signature line is '— <name> <base64>'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise NoteError("NOTE_MALFORMED", "a signature is not base64") from None
    if len(blob) < 5:
        raise NoteError("NOTE_MALFORMED", "a signature is shorter than a key ID")
    return parts[0], blob
