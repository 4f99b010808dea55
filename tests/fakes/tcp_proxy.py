"""A pausable loopback TCP proxy for fault tests and benchmarks (stdlib only, one selector thread).

Usage::

    with TcpProxy("127.0.0.1", 5432) as proxy:     # listens on 127.0.0.1:<proxy.port>
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        proxy.silent()                             # the network goes quiet: connections stay open, nothing moves
        proxy.forward()                            # bytes flow again, on the same connections
        proxy.drop()                               # every connection is reset; new ones are reset at once

Modes (switch at any time from any thread; each switch takes effect within one loop turn, about 10 ms):

- `forward`: bytes are copied both ways. A connection accepted while silent is connected to the target now.
- `silent`: nothing is read from or written to any socket (the data waits in the kernel buffers, so nothing is
  buffered towards the target either), established connections stay open, new connections are accepted and
  never answered: a hung server or a partitioned network as the client sees it.
- `refuse` / `drop`: every connection is closed with a reset (SO_LINGER 0) and new ones are accepted and reset at
  once: a crashed server or a firewall sending RSTs.

`close()` (or leaving the `with` block) stops the loop thread and closes every socket; it is idempotent.
Connection counters (`accepted`, `open_connections`) help tests check what reached the proxy.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

Mode = Literal["forward", "silent", "refuse", "drop"]
MODES: tuple[Mode, ...] = ("forward", "silent", "refuse", "drop")
CHUNK = 65536


@dataclass(eq=False)
class _Pair:
    """One proxied connection: the client side, the target side (None until connected) and the bytes read from one
    side not yet written to the other (at most one chunk each: a side is not read while its peer has pending data)."""

    client: socket.socket
    target: socket.socket | None = None
    to_target: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    client_eof: bool = False
    target_eof: bool = False


def _reset(sock: socket.socket) -> None:
    """Close with a reset (RST) rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class TcpProxy:
    """A loopback proxy in front of `target_host:target_port`, listening on `listen_host:port` (0: any free port).

    Raises OSError when the listening port cannot be bound."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        mode: Mode = "forward",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.target = (target_host, target_port)
        self._mode: Mode = mode
        self._lock = threading.Lock()
        self._listener = socket.create_server((listen_host, port))
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._pairs: set[_Pair] = set()
        self._stopping = False
        self._closed = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self._started = False

    # --- public API -------------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._listener.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def start(self) -> TcpProxy:
        """Start the loop thread (once); returns self."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; raises ValueError for an unknown mode."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self._mode = mode
        self._wake()

    def forward(self) -> None:
        self.set_mode("forward")

    def silent(self) -> None:
        self.set_mode("silent")

    def refuse(self) -> None:
        self.set_mode("refuse")

    def drop(self) -> None:
        self.set_mode("drop")

    def close(self) -> None:
        """Stop the loop and close every socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake()
        if self._started:
            self._thread.join(5)
        if not self._started or not self._thread.is_alive():
            self._close_all()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the loop ---------------------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # buffer full (a wake-up is pending anyway) or closed

    def _loop(self) -> None:
        try:
            while not self._stopping:
                self._apply_mode()
                self._register()
                for key, events in self._selector.select(timeout=0.5):
                    sock = key.fileobj
                    if sock is self._wake_r:
                        self._drain_wake()
                    elif sock is self._listener:
                        self._accept()
                    else:
                        assert isinstance(key.data, _Pair)
                        self._service(key.data, sock, events)  # type: ignore[arg-type]
        finally:
            self._close_all()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _apply_mode(self) -> None:
        mode = self._mode
        if mode in ("refuse", "drop"):
            for pair in list(self._pairs):
                self._discard(pair, reset=True)
        elif mode == "forward":
            for pair in list(self._pairs):
                if pair.target is None:
                    self._connect(pair)

    def _register(self) -> None:
        """(Re)compute each socket's interest from the mode and the pending bytes."""
        wanted: dict[socket.socket, tuple[int, object]] = {
            self._wake_r: (selectors.EVENT_READ, None),
            self._listener: (selectors.EVENT_READ, None),
        }
        if self._mode == "forward":
            for pair in self._pairs:
                if pair.target is None:
                    continue
                for sock, inbox, outbox, eof in (
                    (pair.client, pair.to_target, pair.to_client, pair.client_eof),
                    (pair.target, pair.to_client, pair.to_target, pair.target_eof),
                ):
                    events = 0
                    if not eof and not inbox:
                        events |= selectors.EVENT_READ
                    if outbox:
                        events |= selectors.EVENT_WRITE
                    if events:
                        wanted[sock] = (events, pair)
        current: dict[Any, selectors.SelectorKey] = {k.fileobj: k for k in self._selector.get_map().values()}
        for fileobj in current:
            if fileobj not in wanted:
                self._selector.unregister(fileobj)
        for sock, (events, data) in wanted.items():
            existing = current.get(sock)
            if existing is None:
                self._selector.register(sock, events, data)
            elif existing.events != events or existing.data is not data:
                self._selector.modify(sock, events, data)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.accepted += 1
            if self._mode in ("refuse", "drop"):
                _reset(client)
                continue
            client.setblocking(False)
            pair = _Pair(client)
            with self._lock:
                self._pairs.add(pair)
            if self._mode == "forward":
                self._connect(pair)

    def _connect(self, pair: _Pair) -> None:
        try:
            target = socket.create_connection(self.target, timeout=2)
        except OSError:
            self._discard(pair, reset=True)
            return
        target.setblocking(False)
        target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair.target = target

    def _service(self, pair: _Pair, sock: socket.socket, events: int) -> None:
        if pair not in self._pairs or self._mode != "forward" or pair.target is None:
            return
        from_client = sock is pair.client
        peer = pair.target if from_client else pair.client
        inbox = pair.to_target if from_client else pair.to_client
        outbox = pair.to_client if from_client else pair.to_target
        try:
            if events & selectors.EVENT_WRITE and outbox:
                sent = sock.send(outbox)
                del outbox[:sent]
                if not outbox and (pair.target_eof if from_client else pair.client_eof):
                    sock.shutdown(socket.SHUT_WR)  # the peer half-closed: pass the FIN on once its bytes are out
            if events & selectors.EVENT_READ and not inbox:
                data = sock.recv(CHUNK)
                if data:
                    inbox.extend(data)
                    sent = peer.send(inbox)  # try at once; the rest waits for EVENT_WRITE on the peer
                    del inbox[:sent]
                else:
                    if from_client:
                        pair.client_eof = True
                    else:
                        pair.target_eof = True
                    if not inbox:
                        peer.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._discard(pair, reset=True)
            return
        if pair.client_eof and pair.target_eof and not pair.to_client and not pair.to_target:
            self._discard(pair, reset=False)

    def _discard(self, pair: _Pair, *, reset: bool) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for sock in (pair.client, pair.target):
            if sock is None:
                continue
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            if reset:
                _reset(sock)
            else:
                sock.close()

    def _close_all(self) -> None:
        for pair in list(self._pairs):
            self._discard(pair, reset=True)
        try:
            self._selector.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._listener.close()
