"""The HTTP side server's WSGI app and address parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from verifier.metrics import Metrics
from verifier.transport.grpc.http import HttpApp, is_loopback, split_hostport


def call(app: HttpApp, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method}, start_response))
    return captured["status"], captured["headers"], body


def test_routes() -> None:
    metrics = Metrics()
    metrics.challenge("replayed")
    healthy = [True]
    app = HttpApp(metrics, lambda: {"keys": [{"kid": "k"}]}, lambda: healthy[0])
    status, headers, body = call(app, "/metrics")
    assert status == "200 OK" and b'verifier_challenges_total{outcome="replayed"} 1.0' in body
    status, headers, body = call(app, "/.well-known/jwks.json")
    assert status == "200 OK" and json.loads(body) == {"keys": [{"kid": "k"}]}
    assert headers["Content-Type"] == "application/jwk-set+json"
    assert call(app, "/healthz")[0] == "200 OK"
    healthy[0] = False
    assert call(app, "/healthz")[0].startswith("503")
    assert call(app, "/metrics", "POST")[0].startswith("405")
    assert call(app, "/")[0].startswith("404")


def test_jwks_failure_is_503_without_detail() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("secret detail")

    status, _, body = call(HttpApp(Metrics(), broken, lambda: True), "/.well-known/jwks.json")
    assert status.startswith("503") and b"secret" not in body


def test_addresses() -> None:
    assert split_hostport("127.0.0.1:0") == ("127.0.0.1", 0)
    assert split_hostport("[::1]:9464") == ("::1", 9464)
    assert split_hostport(":80") == ("0.0.0.0", 80)
    with pytest.raises(ValueError):
        split_hostport("localhost")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
