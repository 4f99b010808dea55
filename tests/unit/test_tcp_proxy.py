"""The pausable TCP proxy (tests/fakes/tcp_proxy.py) against a loopback echo server: forward copies both ways,
silent keeps connections open and moves nothing (and resumes on the same connection), drop/refuse reset everything,
close is clean. Every wait is bounded by socket timeouts."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fakes.tcp_proxy import TcpProxy

QUIET = 0.5  # seconds a silent socket is watched for bytes that must not come


class Echo:
    """A threaded loopback echo server that counts the bytes it received."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                with self._lock:
                    self.received += len(data)
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone keeps listening
        self.listener.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: Echo) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo.port) as running:
        yield running


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def assert_quiet(sock: socket.socket) -> None:
    """No byte arrives and the connection is not closed within QUIET seconds."""
    sock.settimeout(QUIET)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(5)


def wait_for(condition: object, bound: float = 5.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_forward_copies_both_ways_including_large_payloads(proxy: TcpProxy) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: partial sends and several chunks
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(sock, len(payload)) == payload
        sender.join(5)
    assert proxy.accepted == 1


def test_silent_keeps_connections_open_moves_nothing_and_resumes(proxy: TcpProxy, echo: Echo) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"one")
        assert recv_exactly(sock, 3) == b"one"
        proxy.silent()
        time.sleep(0.05)
        sock.sendall(b"two")
        assert_quiet(sock)
        assert echo.received == 3  # nothing reached the target
        proxy.forward()
        assert recv_exactly(sock, 3) == b"two"  # the same connection carries on


def test_silent_accepts_new_connections_and_never_answers(proxy: TcpProxy, echo: Echo) -> None:
    proxy.silent()
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert_quiet(sock)
        wait_for(lambda: proxy.accepted == 1)
        assert echo.connections == 0 and echo.received == 0
        proxy.forward()  # the waiting connection is connected to the target now
        assert recv_exactly(sock, 4) == b"ping"


@pytest.mark.parametrize("mode", ["drop", "refuse"])
def test_drop_and_refuse_reset_existing_and_new_connections(proxy: TcpProxy, mode: str) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.set_mode(mode)  # type: ignore[arg-type]
        with _closed():
            assert sock.recv(1) == b""
    with _closed(), connect(proxy) as fresh:  # the reset may show as early as the connect
        fresh.sendall(b"y")
        assert fresh.recv(1) == b""
    wait_for(lambda: proxy.open_connections == 0)
    proxy.forward()
    with connect(proxy) as again:
        again.sendall(b"z")
        assert recv_exactly(again, 1) == b"z"


class _closed:
    """Accepts either way a reset connection shows itself: an empty read or ConnectionResetError."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, (ConnectionResetError, BrokenPipeError))


def test_half_close_is_passed_on(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 10) == b"last words"
        assert sock.recv(1) == b""  # the echo server saw EOF and closed: the FIN came back through the proxy
    wait_for(lambda: proxy.open_connections == 0)


def test_target_down_resets_the_client() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        with TcpProxy("127.0.0.1", unused.getsockname()[1]) as proxy, _closed(), connect(proxy) as sock:
            assert sock.recv(1) == b""


def test_close_is_clean_and_idempotent(echo: Echo) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port).start()
    sock = connect(proxy)
    sock.sendall(b"a")
    assert recv_exactly(sock, 1) == b"a"
    proxy.silent()
    port = proxy.port
    proxy.close()
    proxy.close()
    with _closed():
        assert sock.recv(1) == b""
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_unknown_mode_is_refused(echo: Echo) -> None:
    with pytest.raises(ValueError):
        TcpProxy("127.0.0.1", echo.port, mode="sideways")  # type: ignore[arg-type]
    with TcpProxy("127.0.0.1", echo.port) as proxy, pytest.raises(ValueError):
        proxy.set_mode("sideways")  # type: ignore[arg-type]
