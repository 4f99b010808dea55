"""The `verifier` command line (contract: ARCHITECTURE.md "Contracts other programs rely on")."""

from .main import main

__all__ = ["main"]
