"""The OIDC discovery document and where the well-known documents are served (transport/grpc/wellknown.py)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from verifier.errors import ConfigError
from verifier.metrics import Metrics
from verifier.settings import Settings
from verifier.transport.grpc.http import HttpApp
from verifier.transport.grpc.wellknown import DISCOVERY_PATH, JWKS_PATH, Discovery


def test_no_url_no_discovery() -> None:
    assert Discovery.from_settings("tee-verifier", None) is None
    assert Discovery.from_settings("tee-verifier", "") is None
    for not_a_url in ("verifier.example", "https://", "urn:tee:verifier", "https://v.example/?q=1", "https://v/#x"):
        assert Discovery.from_settings(not_a_url, None) is None, not_a_url


def test_issuer_url_is_the_base() -> None:
    discovery = Discovery.from_settings("https://verifier.example", None)
    assert discovery is not None
    assert discovery.document() == {
        "issuer": "https://verifier.example",
        "jwks_uri": "https://verifier.example/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }
    assert discovery.paths(DISCOVERY_PATH) == {DISCOVERY_PATH}
    assert json.loads(discovery.body()) == discovery.document()


def test_issuer_path_and_public_url() -> None:
    """The issuer is kept verbatim (it must equal the tokens' iss); its path without the terminating "/" is where
    discovery lives (OIDC Discovery section 4); jwks_uri is below the public URL when there is one."""
    discovery = Discovery.from_settings("https://verifier.example/tee/", None)
    assert discovery is not None
    assert discovery.issuer == "https://verifier.example/tee/"
    assert discovery.jwks_uri == "https://verifier.example/tee/.well-known/jwks.json"
    assert discovery.paths(DISCOVERY_PATH) == {DISCOVERY_PATH, "/tee" + DISCOVERY_PATH}
    public = Discovery.from_settings("https://verifier.example/tee", "https://keys.example:8443/base")
    assert public is not None
    assert public.issuer == "https://verifier.example/tee"
    assert public.jwks_uri == "https://keys.example:8443/base/.well-known/jwks.json"
    assert public.paths(JWKS_PATH) == {JWKS_PATH, "/tee" + JWKS_PATH, "/base" + JWKS_PATH}


def test_public_url_without_issuer_url_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        discovery = Discovery.from_settings("tee-verifier", "https://verifier.example")
        assert discovery is not None and discovery.issuer == "tee-verifier"
        assert "no https URL" in caplog.text
        caplog.clear()
        http = Discovery.from_settings("http://127.0.0.1:9464", None)
        assert http is not None and http.jwks_uri == "http://127.0.0.1:9464/.well-known/jwks.json"
        assert "OpenID Connect Discovery requires" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "verifier.example",
        "ftp://verifier.example",
        "https://verifier.example/?q=1",
        "https://verifier.example/#top",
        "https://user@verifier.example",
        "https://verifier.example:99999",
        "https://verifier.example/a b",
        " https://verifier.example",
        "https://",
    ],
)
def test_a_bad_public_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Discovery.from_settings("https://verifier.example", url)
    assert caught.value.code == "PUBLIC_URL_INVALID"


def call(app: HttpApp, path: str) -> tuple[str, dict[str, str], bytes]:
    captured: list[Any] = []
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h: captured.append((s, h))))
    status, headers = captured[0]
    return status, dict(headers), body


def test_the_app_serves_discovery_only_with_a_url() -> None:
    jwks = {"keys": [{"kty": "EC", "kid": "k"}]}
    plain = HttpApp.from_settings(Settings(), Metrics(), lambda: jwks, lambda: True)
    status, _, body = call(plain, DISCOVERY_PATH)
    assert status.startswith("404") and b"--issuer" in body
    assert call(plain, "/tee" + JWKS_PATH)[0].startswith("404")
    status, headers, body = call(plain, JWKS_PATH)
    assert status.startswith("200") and json.loads(body) == jwks
    assert headers["Cache-Control"] == "max-age=300" and headers["Access-Control-Allow-Origin"] == "*"
    app = HttpApp.from_settings(Settings(issuer="https://v.example/tee"), Metrics(), lambda: jwks, lambda: True)
    for path in (DISCOVERY_PATH, "/tee" + DISCOVERY_PATH):
        status, headers, body = call(app, path)
        assert status.startswith("200") and headers["Content-Type"] == "application/json", path
        assert json.loads(body)["issuer"] == "https://v.example/tee"
    assert json.loads(call(app, "/tee" + JWKS_PATH)[2]) == jwks
    assert call(app, "/other" + DISCOVERY_PATH)[0].startswith("404")
