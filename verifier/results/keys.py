"""Result-signing keys: P-256 only (ES256, RFC 7518 s3.4), identified by their RFC 7638 JWK thumbprint.

Key files are PKCS#8 PEM, one key per file. Files are created 0600 from the start and refused at load time when
group or others can access them, unless the caller explicitly allows it. Key material is never logged or put in
an error message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.errors import ConfigError

COORDINATE_SIZE = 32  # P-256 field element size in bytes (RFC 7518 s6.2.1.2)


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 s2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def claims_json(value: Any) -> bytes:
    """The UTF-8 compact JSON a JWS header or claims-set is signed as (RFC 7515 s7.1): no whitespace, no escaped
    non-ASCII text, no NaN. Raises TypeError, ValueError for values JSON cannot carry."""
    return _COMPACT.encode(value).encode("utf-8")


@dataclass(frozen=True)
class SigningKey:
    """A P-256 private key and its key id (the RFC 7638 thumbprint). `not_after`: last instant it may sign."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    kid: str
    not_after: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            self.private_key.curve, ec.SECP256R1
        ):
            raise ConfigError("SIGNING_KEY_INVALID", "result-signing key must be an EC P-256 (secp256r1) key")
        if self.not_after is not None and self.not_after.tzinfo is None:
            raise ValueError("SigningKey.not_after must be timezone-aware")

    @classmethod
    def from_private_key(cls, private_key: ec.EllipticCurvePrivateKey, not_after: datetime | None = None) -> SigningKey:
        """Wrap a key, deriving `kid` from its public key."""
        return cls(private_key, thumbprint(private_key.public_key()), not_after)


def _coordinates(public_key: ec.EllipticCurvePublicKey) -> tuple[str, str]:
    numbers = public_key.public_numbers()
    return (
        b64url_encode(numbers.x.to_bytes(COORDINATE_SIZE, "big")),
        b64url_encode(numbers.y.to_bytes(COORDINATE_SIZE, "big")),
    )


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 s3: SHA-256 over the required members {crv, kty, x, y} in lexicographic order, no whitespace."""
    x, y = _coordinates(public_key)
    canonical = json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(key: SigningKey) -> dict[str, Any]:
    """The public JWK (RFC 7517, RFC 7518 s6.2) of a signing key."""
    x, y = _coordinates(key.private_key.public_key())
    return {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": key.kid, "alg": "ES256", "use": "sig"}


def ephemeral_key() -> SigningKey:
    """An in-memory key that dies with the process. Development mode only: relying parties cannot pin it."""
    return SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()))


def _pem(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` exclusively with mode 0600 (never wider, even briefly) and write `data` durably."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may only narrow the mode; make it exactly 0600
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_key_file(path: Path, *, overwrite: bool = False) -> SigningKey:
    """Generate a P-256 key and write it as PKCS#8 PEM, mode 0600. Refuses an existing file unless `overwrite`.

    Overwriting writes a new 0600 file beside the old one and renames it over, so the path never holds a partial
    or wider-mode key.
    """
    path = Path(path)
    key = SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()))
    data = _pem(key.private_key)
    if not overwrite:
        try:
            _write_new(path, data)
        except FileExistsError:
            raise ConfigError("SIGNING_KEY_EXISTS", f"{path} already exists; refusing to overwrite it") from None
        return key
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def access_summary(path: Path) -> str:
    """Who owns `path` with which mode (or, when it cannot be examined, the nearest parent that can: the directory
    that is not searchable) and which uid/gid this process runs as. For one-line "cannot read" errors; never raises.
    """
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            st = candidate.stat()
        except OSError:
            continue
        what = "it" if candidate == path else f"its directory {candidate}"
        owner = f"{what} is owned by uid {st.st_uid} gid {st.st_gid} mode {stat.S_IMODE(st.st_mode):04o}"
        break
    else:
        owner = "its owner cannot be examined"
    return f"{owner}; this process runs as uid {os.geteuid()} gid {os.getegid()}"


def _unreadable(path: Path, error: OSError, what: str = "signing key file") -> ConfigError:
    """SIGNING_KEY_UNREADABLE naming the path, its owner and mode, and this process's uid (a container user that
    differs from the key's owner is the usual cause: chown the file to that uid, mode 0400)."""
    return ConfigError(
        "SIGNING_KEY_UNREADABLE",
        f"cannot read {what} {path} ({error.strerror or type(error).__name__}): {access_summary(path)}; "
        f"give uid {os.geteuid()} access (e.g. chown {os.geteuid()}; mode 0400 for the file, 0700 for a directory)",
    )


def _load_one(path: Path, allow_insecure_permissions: bool) -> SigningKey:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError("SIGNING_KEY_MISSING", f"signing key file {path} does not exist") from None
    except OSError as error:  # a parent directory this process may not search
        raise _unreadable(path, error) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("SIGNING_KEY_MISSING", f"signing key path {path} is not a regular file")
    if st.st_mode & 0o077 and not allow_insecure_permissions:
        raise ConfigError(
            "SIGNING_KEY_PERMISSIONS",
            f"signing key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be accessible by group "
            "or others (chmod 600)",
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _unreadable(path, error) from None
    if data.count(b"-----BEGIN") != 1:
        raise ConfigError("SIGNING_KEY_INVALID", f"{path} must hold exactly one PEM private key")
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The exception text is not forwarded: it is not needed and must never risk echoing key bytes.
        raise ConfigError("SIGNING_KEY_INVALID", f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(private_key.curve, ec.SECP256R1):
        raise ConfigError("SIGNING_KEY_INVALID", f"{path}: only EC P-256 keys are accepted (ES256)")
    return SigningKey.from_private_key(private_key)


def load_key_file(path: Path, *, allow_insecure_permissions: bool = False) -> list[SigningKey]:
    """Load a PEM key file (one key), or every `*.pem` of a directory, newest-modified first (the active key).

    Raises ConfigError: SIGNING_KEY_MISSING, SIGNING_KEY_PERMISSIONS (group/other access), SIGNING_KEY_UNREADABLE
    (this process may not read the file or directory: the message names the owner, mode and this process's uid),
    SIGNING_KEY_INVALID."""
    path = Path(path)
    try:
        is_dir = path.is_dir()
    except OSError as error:  # a parent directory this process may not search
        raise _unreadable(path, error) from None
    if not is_dir:
        return [_load_one(path, allow_insecure_permissions)]
    try:
        names = [name for name in os.listdir(path) if name.endswith(".pem") and not name.startswith(".")]
        files = sorted((path / name for name in names), key=lambda p: (-p.stat().st_mtime_ns, p.name))
    except OSError as error:
        raise _unreadable(path, error, "signing key directory") from None
    if not files:
        raise ConfigError("SIGNING_KEY_MISSING", f"signing key directory {path} holds no *.pem file")
    return [_load_one(p, allow_insecure_permissions) for p in files]


def load_keys(paths: Sequence[Path], *, allow_insecure_permissions: bool = False) -> list[SigningKey]:
    """Load keys from files or directories in order; the first key is active, duplicates (same kid) are dropped."""
    keys: list[SigningKey] = []
    seen: set[str] = set()
    for path in paths:
        for key in load_key_file(path, allow_insecure_permissions=allow_insecure_permissions):
            if key.kid not in seen:
                seen.add(key.kid)
                keys.append(key)
    if not keys:
        raise ConfigError("SIGNING_KEY_MISSING", "no result-signing key configured")
    return keys
