"""A rotating result-signing keyring: a private directory of PEM keys plus `keyring.json`.

`keyring.json` lists the keys in creation order as {kid, file, created_at, activated_at, retired_at,
publish_until}; exactly one key is active (retired_at null). A retired key stays published in the JWKS until
publish_until = retired_at + publish_for, so every token it signed can still be verified; `prune` then deletes it.
The directory, keyring.json and key files must not be accessible by group or others. keyring.json is replaced
atomically (temp file + rename, 0600); writers hold an exclusive flock on keyring.json.lock, readers a shared one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from verifier.clock import Clock, parse_rfc3339, to_rfc3339
from verifier.errors import ConfigError, VerifierError
from verifier.results.keys import SigningKey, _write_new, access_summary, generate_key_file, load_key_file

log = logging.getLogger(__name__)

KEYRING_FILE = "keyring.json"
LOCK_FILE = "keyring.json.lock"
VERSION = 1
PUBLISH_MARGIN = timedelta(minutes=5)
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.pem")


def default_publish_for(token_lifetime: timedelta) -> timedelta:
    """How long a retired key stays published by default: the token lifetime plus a 5-minute margin."""
    return token_lifetime + PUBLISH_MARGIN


@dataclass(frozen=True)
class KeyEntry:
    """One keyring.json entry. Active when `retired_at` is None; published until `publish_until`."""

    kid: str
    file: str
    created_at: datetime
    activated_at: datetime
    retired_at: datetime | None = None
    publish_until: datetime | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def published(self, now: datetime) -> bool:
        return self.publish_until is None or now < self.publish_until

    def to_json(self) -> dict[str, Any]:
        def ts(value: datetime | None) -> str | None:
            return None if value is None else to_rfc3339(value)

        return {
            "kid": self.kid,
            "file": self.file,
            "created_at": ts(self.created_at),
            "activated_at": ts(self.activated_at),
            "retired_at": ts(self.retired_at),
            "publish_until": ts(self.publish_until),
        }

    @classmethod
    def from_json(cls, value: Any) -> KeyEntry:
        if not isinstance(value, dict):
            raise ValueError("entry is not an object")
        kid, file = value.get("kid"), value.get("file")
        if not isinstance(kid, str) or not kid or not isinstance(file, str) or not _FILE_NAME.fullmatch(file):
            raise ValueError("entry needs a kid and a plain *.pem file name")

        def ts(name: str, optional: bool) -> datetime | None:
            raw = value.get(name)
            if raw is None and optional:
                return None
            if not isinstance(raw, str):
                raise ValueError(f"entry {kid}: {name} is not an RFC 3339 timestamp")
            return parse_rfc3339(raw)

        created, activated = ts("created_at", False), ts("activated_at", False)
        retired, until = ts("retired_at", True), ts("publish_until", True)
        assert created is not None and activated is not None
        if (retired is None) != (until is None):
            raise ValueError(f"entry {kid}: retired_at and publish_until go together")
        return cls(kid, file, created, activated, retired, until)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("keyring times must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)  # keyring.json keeps whole seconds


def _check_private(path: Path, what: str) -> os.stat_result:
    """Refuse a missing path, a symlinked file, or any group/other access."""
    is_dir = what == "keyring directory"
    try:
        st = path.stat() if is_dir else path.lstat()
    except FileNotFoundError:
        raise ConfigError("KEYRING_FILE_MISSING", f"{what} {path} does not exist") from None
    except OSError as error:  # the keyring directory is not searchable by this process
        raise ConfigError(
            "KEYRING_UNREADABLE", f"cannot examine {what} {path} ({error.strerror}): {access_summary(path)}"
        ) from None
    if not (stat.S_ISDIR if is_dir else stat.S_ISREG)(st.st_mode):
        raise ConfigError("KEYRING_FILE_INVALID", f"{what} {path} is not a plain {what.split()[-1]} (no symlinks)")
    if st.st_mode & 0o077:
        raise ConfigError(
            "KEYRING_PERMISSIONS",
            f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must "
            "not be accessible by group or others (chmod 700 for the directory, 600 for files)",
        )
    return st


@contextlib.contextmanager
def _locked(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """flock on keyring.json.lock. A reader that cannot create the lock file reads without it."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as error:
        if exclusive:
            raise ConfigError("KEYRING_UNWRITABLE", f"cannot lock {directory / LOCK_FILE}: {error.strerror}") from None
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


class Keyring:
    """The keys of one keyring directory. Every change re-reads keyring.json under the exclusive lock."""

    def __init__(self, directory: Path, entries: tuple[KeyEntry, ...], keys: dict[str, SigningKey]) -> None:
        self.directory = directory
        self.entries = entries
        self._keys = keys

    # -- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path) -> Keyring:
        """Load and validate the keyring (KEYRING_* ConfigError on any inconsistency)."""
        directory = Path(directory)
        _check_private(directory, "keyring directory")
        with _locked(directory, exclusive=False):
            return cls._read(directory)

    @classmethod
    def init(cls, directory: Path, *, now: datetime) -> Keyring:
        """Create the directory (0700) if needed and its first, active key. Refuses an existing keyring."""
        directory = Path(directory)
        now = _utc(now)
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)
        _check_private(directory, "keyring directory")
        with _locked(directory, exclusive=True):
            if (directory / KEYRING_FILE).exists():
                raise ConfigError("KEYRING_EXISTS", f"{directory} already holds a {KEYRING_FILE}")
            key, entry = _new_key(directory, now)
            _write_json(directory, (entry,))
            return cls(directory, (entry,), {key.kid: key})

    @classmethod
    def _read(cls, directory: Path) -> Keyring:
        path = directory / KEYRING_FILE
        _check_private(path, "keyring file")
        try:
            text = path.read_bytes()
        except OSError as error:
            raise ConfigError(
                "KEYRING_UNREADABLE", f"cannot read {path} ({error.strerror}): {access_summary(path)}"
            ) from None
        try:
            document = json.loads(text)
            if not isinstance(document, dict) or document.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} keyring")
            raw = document.get("keys")
            if not isinstance(raw, list):
                raise ValueError("keys is not a list")
            entries = tuple(KeyEntry.from_json(item) for item in raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ConfigError("KEYRING_CORRUPT", f"{path} is not a valid keyring: {error}") from None
        active = [e.kid for e in entries if e.active]
        if len(active) > 1:
            raise ConfigError("KEYRING_MULTIPLE_ACTIVE", f"{path} marks {len(active)} keys active: {active}")
        if not active:
            raise ConfigError("KEYRING_NO_ACTIVE", f"{path} has no active key")
        if len({e.kid for e in entries}) != len(entries) or len({e.file for e in entries}) != len(entries):
            raise ConfigError("KEYRING_CORRUPT", f"{path} lists a kid or a file twice")
        keys: dict[str, SigningKey] = {}
        for entry in entries:
            file = directory / entry.file
            _check_private(file, "key file")
            try:
                (key,) = load_key_file(file)
            except OSError as error:
                raise ConfigError("KEYRING_UNREADABLE", f"cannot read {file}: {error.strerror}") from None
            if key.kid != entry.kid:
                raise ConfigError("KEYRING_KID_MISMATCH", f"{file} holds key {key.kid}, keyring.json says {entry.kid}")
            keys[key.kid] = key
        return cls(directory, entries, keys)

    # -- reading ---------------------------------------------------------------------------------------------

    @property
    def active_entry(self) -> KeyEntry:
        return next(e for e in self.entries if e.active)

    def active(self) -> SigningKey:
        return self._keys[self.active_entry.kid]

    def published_entries(self, now: datetime) -> list[KeyEntry]:
        """Active first, then the retired keys still published, most recently retired first."""
        retired = [e for e in reversed(self.entries) if not e.active and e.published(now)]
        retired.sort(key=lambda e: e.retired_at or now, reverse=True)
        return [self.active_entry, *retired]

    def published(self, now: datetime) -> list[SigningKey]:
        return [self._keys[e.kid] for e in self.published_entries(now)]

    # -- changing --------------------------------------------------------------------------------------------

    def rotate(self, now: datetime, *, publish_for: timedelta, token_lifetime: timedelta | None = None) -> SigningKey:
        """Add a new active key; the previous one is retired at `now` and published for `publish_for` more.

        `publish_for` must cover the token lifetime (when given) so no token outlives its key in the JWKS.
        """
        if publish_for < timedelta(0) or (token_lifetime is not None and publish_for < token_lifetime):
            raise ConfigError(
                "KEYRING_PUBLISH_TOO_SHORT",
                f"publish_for {publish_for} must be at least the token lifetime {token_lifetime}",
            )
        now = _utc(now)
        with _locked(self.directory, exclusive=True):
            current = self._read(self.directory)  # another process may have rotated since we opened
            until = now + publish_for
            entries = tuple(replace(e, retired_at=now, publish_until=until) if e.active else e for e in current.entries)
            key, entry = _new_key(self.directory, now)
            entries = (*entries, entry)
            _write_json(self.directory, entries)
            self.entries, self._keys = entries, {**current._keys, key.kid: key}
            return key

    def prune(self, now: datetime) -> list[KeyEntry]:
        """Delete the retired keys whose publish window has passed (entry first, then the file); return them."""
        now = _utc(now)
        with _locked(self.directory, exclusive=True):
            current = self._read(self.directory)
            gone = [e for e in current.entries if not e.published(now)]
            if gone:
                kept = tuple(e for e in current.entries if e.published(now))
                _write_json(self.directory, kept)
                for entry in gone:
                    (self.directory / entry.file).unlink(missing_ok=True)
            self.entries = tuple(e for e in current.entries if e.published(now))
            self._keys = {e.kid: current._keys[e.kid] for e in self.entries}
            return gone


def _new_key(directory: Path, now: datetime) -> tuple[SigningKey, KeyEntry]:
    name = f"key-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}.pem"
    key = generate_key_file(directory / name)
    return key, KeyEntry(key.kid, name, now, now)


def _write_json(directory: Path, entries: tuple[KeyEntry, ...]) -> None:
    """Replace keyring.json atomically: a new 0600 temp file, fsync, rename, fsync the directory."""
    data = json.dumps({"version": VERSION, "keys": [e.to_json() for e in entries]}, indent=2).encode() + b"\n"
    tmp = directory / f".{KEYRING_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        _write_new(tmp, data)
        os.replace(tmp, directory / KEYRING_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyringWatcher:
    """A keyring that re-reads itself when keyring.json changes (checked at most every `reload_interval`).

    Thread-safe. A keyring that fails to load after a change is logged and the last good one kept, so a bad
    edit never stops a running server from signing.
    """

    def __init__(self, directory: Path, *, clock: Clock, reload_interval: timedelta = timedelta(seconds=5)) -> None:
        self._directory = Path(directory)
        self._clock = clock
        self._interval = reload_interval.total_seconds()
        self._lock = threading.Lock()
        try:
            self._stamp = self._file_stamp()  # before reading, so a change in between is reloaded later
        except OSError:
            self._stamp = (0, 0, 0)
        self._keyring = Keyring.open(self._directory)
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self._directory / KEYRING_FILE)
        return st.st_mtime_ns, st.st_ino, st.st_size

    def current(self) -> Keyring:
        with self._lock:
            if time.monotonic() - self._checked >= self._interval:
                self._checked = time.monotonic()
                self._reload()
            return self._keyring

    def _reload(self) -> None:
        try:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            self._keyring = Keyring.open(self._directory)
            self._stamp = stamp
            log.info("result-signing keyring reloaded: active kid %s", self._keyring.active_entry.kid)
        except (VerifierError, OSError) as error:
            log.error(
                "result-signing keyring %s failed to reload, keeping the previous keys: %s",
                self._directory,
                getattr(error, "code", type(error).__name__),
            )

    def active(self) -> SigningKey:
        return self.current().active()

    def published(self) -> list[SigningKey]:
        return self.current().published(self._clock.now())
