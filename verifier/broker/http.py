"""The broker's HTTP API (JSON over HTTP; put TLS in front or use --tls-cert/--tls-key):

POST /v1/challenge            -> {"nonce": b64url, "expires_at": RFC 3339}
POST /v1/release {"secret", "nonce", "token"} -> {"secret", "jwe", "token_id"} or {"error": CODE, "message"}
GET  /healthz
Request bodies are bounded; errors never carry exception text."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..clock import to_rfc3339
from ..errors import ErrorKind, VerifierError
from .release import Broker, ReleaseRefused

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


def make_server(broker: Broker, host: str, port: int, *, tls_cert: Path | None = None,
                tls_key: Path | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tee-verifier-broker"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "NOT_FOUND"})

        def do_POST(self) -> None:
            try:
                body = self._body()
                if self.path == "/v1/challenge":
                    issued, expires = broker.new_challenge()
                    self._send(200, {"nonce": base64.urlsafe_b64encode(issued).rstrip(b"=").decode(),
                                     "expires_at": to_rfc3339(expires)})
                elif self.path == "/v1/release":
                    secret, nonce_b64, token = (body.get(k) for k in ("secret", "nonce", "token"))
                    if not (isinstance(secret, str) and isinstance(nonce_b64, str) and isinstance(token, str)
                            and secret and nonce_b64 and token):
                        raise ReleaseRefused("REQUEST_MALFORMED", "secret, nonce and token are required", 400)
                    done = broker.release(secret, token, nonce_b64)
                    self._send(200, {"secret": done.secret, "jwe": done.jwe, "token_id": done.token_id})
                else:
                    self._send(404, {"error": "NOT_FOUND"})
            except ReleaseRefused as refused:
                log.warning("refused %s from %s: %s", self.path, self.client_address[0], refused.code)
                self._send(refused.status, {"error": refused.code, "message": refused.message})
            except VerifierError as error:  # the verifier or its JWKS is unreachable: fail closed, retry later
                log.warning("cannot serve %s: %s", self.path, error.code)
                status = 503 if error.kind is ErrorKind.UNAVAILABLE else 502
                self._send(status, {"error": error.code})
            except Exception:
                log.exception("broker error on %s", self.path)
                self._send(500, {"error": "INTERNAL"})

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ReleaseRefused("REQUEST_TOO_LARGE", f"bodies are limited to {MAX_BODY} bytes", 413)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                data = json.loads(raw or b"{}")
            except (ValueError, RecursionError):  # RecursionError: nesting too deep for the decoder
                raise ReleaseRefused("REQUEST_MALFORMED", "the body is not JSON", 400) from None
            if not isinstance(data, dict):
                raise ReleaseRefused("REQUEST_MALFORMED", "the body must be a JSON object", 400)
            return data

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    if tls_cert is not None and tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="broker-http", daemon=True)
    thread.start()
    return thread
