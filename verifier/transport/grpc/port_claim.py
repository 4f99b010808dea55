"""How the `--workers N` supervisor holds its gRPC port (and `admin_listen`'s) so that its workers, and nothing else,
share it with SO_REUSEPORT.

For a fixed port the supervisor (1) takes an exclusive flock on `<runtime dir>/verifier-port-<port>.lock`, held until
it and every worker (which inherit the descriptor) have exited, so a second supervisor stops with ADDRESS_IN_USE;
(2) under that lock, checks that the port is free with a bind without SO_REUSEPORT, so a `--workers 1` server or
anything else listening there is ADDRESS_IN_USE too; (3) then holds a bound, non-listening SO_REUSEPORT socket on
it for its whole life, so the port stays taken while workers are replaced and no server without SO_REUSEPORT can
bind it. Port 0 gets its port in step 3 (the kernel never hands out a port already in use), then its lock. The
kernel only lets sockets of one user share a port, so the lock directory is per user.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import tempfile
from pathlib import Path

from ...errors import ConfigError
from .binding import raise_if_in_use
from .http import split_hostport


def runtime_directory() -> Path:
    """Port locks and per-run metrics directories: `<temp dir>/tee-verifier-<uid>`, a directory of this user with
    mode 0700. Raises ConfigError RUNTIME_DIRECTORY_UNSAFE otherwise."""
    path = Path(tempfile.gettempdir()) / f"tee-verifier-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as error:
        raise ConfigError("RUNTIME_DIRECTORY_UNSAFE", f"cannot create {path}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError("RUNTIME_DIRECTORY_UNSAFE", f"{path} must be a directory of this user with mode 0700")
    return path


def lock_port(directory: Path, port: int, address: str) -> int:
    """An fd holding the exclusive flock of `directory/verifier-port-<port>.lock` (released once every process
    holding the descriptor has exited). Raises ConfigError ADDRESS_IN_USE when another supervisor holds it."""
    path = directory / f"verifier-port-{port}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise ConfigError("RUNTIME_DIRECTORY_UNSAFE", f"cannot open {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(
            "ADDRESS_IN_USE", f"gRPC address {address} is already in use (another `verifier serve` holds {path})"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def reserve_port(address: str) -> tuple[int, list[socket.socket]]:
    """Bound, non-listening SO_REUSEPORT sockets on every address `address` names (port 0: the port the kernel
    picks), beside which the workers bind. Raises ConfigError ADDRESS_IN_USE or LISTEN_FAILED."""
    host, port = split_hostport(address)
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((sockaddr[0], port, *sockaddr[2:]))
            port = port or int(sock.getsockname()[1])
    except OSError as error:
        for sock in held:
            sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ConfigError("ADDRESS_IN_USE", f"gRPC address {address} is already in use") from None
        raise ConfigError("LISTEN_FAILED", f"cannot listen on {address}: {error.strerror or error}") from None
    return port, held


class PortClaims:
    """The ports one supervisor holds (see the module): their lock descriptors and reserving sockets."""

    def __init__(self) -> None:
        """Raises ConfigError RUNTIME_DIRECTORY_UNSAFE (see `runtime_directory`)."""
        self.runtime = runtime_directory()
        self.locks: list[int] = []
        self.sockets: list[socket.socket] = []

    def claim(self, address: str) -> tuple[str, int]:
        """Lock, check and reserve the port of `address`; (the address with its port, the port). Raises
        ConfigError ADDRESS_IN_USE, LISTEN_FAILED or RUNTIME_DIRECTORY_UNSAFE."""
        host, port = split_hostport(address)
        if port:
            self.locks.append(lock_port(self.runtime, port, address))
            raise_if_in_use(address)
        bound, sockets = reserve_port(address)
        self.sockets.extend(sockets)
        if not port:
            self.locks.append(lock_port(self.runtime, bound, address))
        return (f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"), bound

    def close_sockets(self) -> None:
        """The reserving sockets only (a new worker: its own socket holds the port; it keeps the locks)."""
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    def release(self) -> None:
        """Close everything. The lock files stay: removing one could let two supervisors lock two files."""
        self.close_sockets()
        for fd in self.locks:
            os.close(fd)
        self.locks.clear()
