"""gRPC transport: `VerifierServer` / `serve` (server.py), servicers, interceptors, conversion, HTTP side server."""

from .server import VerifierServer, serve

__all__ = ["VerifierServer", "serve"]
