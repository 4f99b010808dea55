"""Who is acting: the authenticated principal of the current call, and the actor string stores record.

The gRPC admin interceptor sets `CURRENT_PRINCIPAL` for the duration of a handler (`asyncio.to_thread` copies the
context, so a store running in a worker thread sees it too). Outside a call (the CLI) the actor is the OS user.

    current_actor()  ->  "token:<name>" | "cert:<subject CN>" | "static:<digest prefix>" | "cli:<os user>"
"""

from __future__ import annotations

import contextvars
import getpass
import os
from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["token", "cert", "static", "cli"]
Role = Literal["admin", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "auditor")
# What each role may do; `admin` includes everything an auditor may do.
_GRANTS: dict[Role, frozenset[Role]] = {"admin": frozenset({"admin", "auditor"}), "auditor": frozenset({"auditor"})}


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def may(self, needed: Role) -> bool:
        """True when this principal's role grants `needed` (admin > auditor)."""
        return needed in _GRANTS.get(self.role, frozenset())


CURRENT_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("verifier_principal", default=None)


def is_role(value: str) -> bool:
    return value in ROLES


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def current_actor() -> str:
    """The actor of the current call, or `cli:<os user>` when no principal is set (the CLI, scripts)."""
    principal = CURRENT_PRINCIPAL.get()
    return principal.actor if principal is not None else f"cli:{os_user()}"
