"""A vendor endpoint (AMD KDS, Intel PCS) on loopback that hangs: it accepts connections, reads the request and
never answers (`silent`), or answers only after `delay` seconds (`slow`), or answers at once (`answer`).

tests/fakes/kds_server.py scripts replies per path; this one fails every path the same way, which is what a hung
vendor (or a black-holed network route to it) looks like. Point both vendor URLs at it::

    with SilentVendor() as vendor:                       # mode "silent"
        settings = Settings(..., amd_kds_url=vendor.url, intel_pcs_url=vendor.url)
        vendor.set_mode("slow", delay=3.0)               # answers `reply` after 3 s
        vendor.set_mode("answer")                        # answers `reply` at once (default: 404)
        assert vendor.waiting == 0 and vendor.requests > 0

`close()` releases every waiting handler (their connections are closed without an answer) and stops the server.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

from tests.fakes.kds_server import NOT_FOUND, Reply

VendorMode = Literal["silent", "slow", "answer"]


class SilentVendor:
    """Loopback HTTP server; `mode` silent | slow | answer, `delay` seconds for slow, `reply` what slow/answer send."""

    def __init__(self, mode: VendorMode = "silent", *, delay: float = 5.0, reply: Reply = NOT_FOUND) -> None:
        self._lock = threading.Lock()
        self._mode: VendorMode = mode
        self._delay = delay
        self._reply = reply
        self._release = threading.Event()  # set: silent handlers stop waiting (mode change or shutdown)
        self._stop = threading.Event()
        self.requests = 0
        self.paths: list[str] = []
        self._waiting = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.request_queue_size = 128
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="silent-vendor", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def mode(self) -> VendorMode:
        return self._mode

    @property
    def waiting(self) -> int:
        """Requests held right now without an answer."""
        with self._lock:
            return self._waiting

    def set_mode(self, mode: VendorMode, *, delay: float | None = None, reply: Reply | None = None) -> None:
        """Switch mode. Requests already held in silence get the new behaviour (answered, or delayed) at once."""
        if mode not in ("silent", "slow", "answer"):
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self._delay = delay
            if reply is not None:
                self._reply = reply
            release, self._release = self._release, threading.Event()
        release.set()

    def start(self) -> SilentVendor:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; held requests are closed without an answer. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> SilentVendor:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _hold(self) -> Reply | None:
        """Wait as the mode says; the reply to send, or None (shutting down: close without answering)."""
        with self._lock:
            self._waiting += 1
        try:
            while not self._stop.is_set():
                with self._lock:
                    mode, delay, reply, release = self._mode, self._delay, self._reply, self._release
                if mode == "answer":
                    return reply
                if mode == "slow":
                    return None if self._stop.wait(delay) else reply
                release.wait()
            return None
        finally:
            with self._lock:
                self._waiting -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with vendor._lock:
                    vendor.requests += 1
                    vendor.paths.append(self.path)
                reply = vendor._hold()
                if reply is None:
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
