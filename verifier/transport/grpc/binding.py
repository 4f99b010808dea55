"""Binding the gRPC server: its ports (with the reason a bind failed) and which services go on grpc.aio's table of
registered methods."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from ...errors import ConfigError, UnavailableError
from .http import split_hostport


class GenericHandlersOnly:
    """A server as the generated `add_*_to_server` functions see it, keeping their service off gRPC's table of
    registered methods: grpc.aio keeps one pending request per registered method (plus one for all the others) and
    waits on all of them (`asyncio.wait`) for every incoming call, so each registered method costs every RPC. Only
    the Verifier service (Appraise, CreateChallenge, GetSigningKeys) is registered; the admin, health and reflection
    services answer through their generic handlers, the same answers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Left out: the generic handler added beside it serves the same methods."""


def add_port(bind: Any, address: str) -> int:
    """Bind a gRPC port. Raises ConfigError `ADDRESS_IN_USE` (another process listens there) or UnavailableError
    `LISTEN_FAILED`."""
    try:
        port = int(bind())
    except RuntimeError as error:
        raise_if_in_use(address)
        raise UnavailableError("LISTEN_FAILED", f"cannot listen on {address}: {error}") from None
    if port == 0:
        raise_if_in_use(address)
        raise UnavailableError("LISTEN_FAILED", f"cannot listen on {address}")
    return port


def raise_if_in_use(address: str) -> None:
    """gRPC does not say why a bind failed: try the address ourselves and raise ADDRESS_IN_USE if it is taken."""
    try:
        host, port = split_hostport(address)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (ValueError, OSError):
        return
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise ConfigError("ADDRESS_IN_USE", f"gRPC address {address} is already in use") from None


def write_port_file(path: Path, ports: dict[str, int]) -> None:
    """Write the bound ports atomically (a reader never sees a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(ports))
    os.replace(tmp, path)
