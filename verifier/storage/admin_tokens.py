"""Admin API bearer tokens in SQL. Only the SHA-256 hex of a token is stored; the token itself is shown once.

    tokens = SqlAdminTokens(db)
    info, token = tokens.create("ci-deployer", "admin", now=now, actor=current_actor())   # token: "vat_..."
    tokens.authenticate(token, now=now)   # -> TokenInfo, or None when unknown or revoked
    tokens.revoke(info.id, now=now, actor=...)

Creation and revocation append to the audit log in the same transaction (never the token). `authenticate` looks
the token up by its SHA-256 (an indexed equality on a hash of a 256-bit secret leaks nothing usable about the
token), compares the digests in constant time, and refreshes `last_used_at` at most once a minute so a busy
client does not turn every call into a write.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update

from ..auth import ROLES
from ..errors import NotFoundError, RequestError
from . import audit
from .engine import Database
from .tables import AdminTokenRow, new_id

TOKEN_PREFIX = "vat_"  # noqa: S105 (a prefix, not a secret)
TOKEN_BYTES = 32
MAX_NAME = 100
MAX_TOKEN_CHARS = 200  # anything longer is refused before hashing
LAST_USED_GRANULARITY = dt.timedelta(minutes=1)
_DUMMY_DIGEST = "0" * 64


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    role: str
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode("ascii")


def _info(row: AdminTokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        revoked_by=row.revoked_by,
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise RequestError("TOKEN_NAME_REQUIRED", "a token needs a name (who or what uses it)")
    if len(name) > MAX_NAME:
        raise RequestError("TOKEN_NAME_TOO_LONG", f"the token name has more than {MAX_NAME} characters")
    if not name.isprintable():
        raise RequestError("TOKEN_NAME_INVALID", "the token name has control characters")
    return name


class SqlAdminTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, role: str, *, now: dt.datetime, actor: str) -> tuple[TokenInfo, str]:
        """A new active token; returns its record and the token text (the only time it is available)."""
        name = _check_name(name)
        if role not in ROLES:
            raise RequestError("TOKEN_ROLE_UNKNOWN", f"role must be one of {', '.join(ROLES)}")
        token = new_token()
        row = AdminTokenRow(
            id=new_id(), name=name, role=role, token_sha256=token_digest(token), created_at=now, created_by=actor[:200]
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            audit.append(
                session,
                at=now,
                actor=actor,
                action="token.create",
                subject=row.id,
                details={"name": name, "role": role},
            )
            return _info(row), token

    def authenticate(self, token: str, *, now: dt.datetime) -> TokenInfo | None:
        """The active token's record, or None (unknown, revoked, malformed). Never raises for a bad token."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            hmac.compare_digest(_DUMMY_DIGEST, _DUMMY_DIGEST)
            return None
        presented = token_digest(token)
        with self._db.session() as session:
            row = session.scalars(select(AdminTokenRow).where(AdminTokenRow.token_sha256 == presented)).first()
            stored = row.token_sha256 if row is not None else _DUMMY_DIGEST
            if not hmac.compare_digest(presented, stored) or row is None or row.revoked_at is not None:
                return None
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY:
                session.execute(update(AdminTokenRow).where(AdminTokenRow.id == row.id).values(last_used_at=now))
                row.last_used_at = now
            return _info(row)

    def revoke(self, token_id: str, *, now: dt.datetime, actor: str) -> TokenInfo:
        """Mark revoked (kept for the record). NotFoundError for an unknown id, RequestError if already revoked."""
        with self._db.session() as session:
            row = session.get(AdminTokenRow, token_id, with_for_update=True)
            if row is None:
                raise NotFoundError("TOKEN_NOT_FOUND", f"no admin token with id {token_id!r}")
            if row.revoked_at is not None:
                raise RequestError("TOKEN_REVOKED", f"admin token {token_id} is already revoked")
            row.revoked_at = now
            row.revoked_by = actor[:200]
            session.flush()
            audit.append(
                session,
                at=now,
                actor=actor,
                action="token.revoke",
                subject=row.id,
                details={"name": row.name, "role": row.role},
            )
            return _info(row)

    def get(self, token_id: str) -> TokenInfo | None:
        with self._db.session() as session:
            row = session.get(AdminTokenRow, token_id)
            return _info(row) if row is not None else None

    def list(self, *, include_revoked: bool = True) -> builtins.list[TokenInfo]:
        query = select(AdminTokenRow).order_by(AdminTokenRow.created_at, AdminTokenRow.id)
        if not include_revoked:
            query = query.where(AdminTokenRow.revoked_at.is_(None))
        with self._db.session() as session:
            return [_info(row) for row in session.scalars(query)]
