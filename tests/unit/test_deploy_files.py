"""docker-compose.yml, the Dockerfile and the Prometheus config agree with each other and with the service
(Docker itself does not run here, so their structure is what can be checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from verifier.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_the_four_services_wired_in_order() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "migrate", "verifier", "prometheus"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["verifier"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["healthcheck"]["test"]


def test_verifier_and_migration_share_the_postgres_database() -> None:
    services = _compose()["services"]
    pg = services["postgres"]["environment"]
    for name in ("migrate", "verifier"):
        env = services[name]["environment"]
        url = env["VERIFIER_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert url.endswith("/" + pg["POSTGRES_DB"])
        assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@" in url


def test_verifier_has_a_signing_key_and_no_development_flag() -> None:
    compose = _compose()
    verifier = compose["services"]["verifier"]
    assert "--dev" not in verifier["command"]
    assert "VERIFIER_DEVELOPMENT" not in verifier["environment"]
    assert verifier["environment"]["VERIFIER_SIGNING_KEY"] == "/run/secrets/signing_key"
    assert "signing_key" in verifier["secrets"] and "signing_key" in compose["secrets"]


def test_ports_match_the_service_and_prometheus_scrapes_the_metrics_port() -> None:
    compose = _compose()
    verifier = compose["services"]["verifier"]
    command = verifier["command"]
    grpc_port = command[command.index("--listen") + 1].rsplit(":", 1)[1]
    http_port = command[command.index("--http-listen") + 1].rsplit(":", 1)[1]
    assert grpc_port == Settings().listen.rsplit(":", 1)[1]
    assert http_port == Settings().http_listen.rsplit(":", 1)[1]
    assert f"{grpc_port}:{grpc_port}" in verifier["ports"] and f"{http_port}:{http_port}" in verifier["ports"]
    mount = next(v for v in compose["services"]["prometheus"]["volumes"] if "prometheus.yml" in v)
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"verifier:{http_port}"]


def test_dockerfile_builds_the_verifier_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("# ") and "FROM python:3.11" in text
    assert 'ENTRYPOINT ["verifier"]' in text
    assert "USER verifier" in text
    # issue 12: the image installs the wheel (migrations inside it as package data), never the tree or -e
    assert "COPY migrations" not in text and " -e " not in text
    assert "pip wheel" in text and "pip install --no-cache-dir /wheels/*.whl" in text
    for service in ("migrate", "verifier"):
        assert _compose()["services"][service]["build"] == "."


def test_published_grpc_port_uses_tls_and_the_healthcheck_asks_for_readiness() -> None:
    """Issue 11 item 12: admin bearer tokens only over TLS, so what compose publishes on 0.0.0.0 has TLS; item 5:
    the container is healthy when ready (database reachable), not merely alive; item 6: stop waits out the drain."""
    compose = _compose()
    verifier = compose["services"]["verifier"]
    env, command = verifier["environment"], verifier["command"]
    assert "--allow-plaintext-admin" not in command and "VERIFIER_ALLOW_PLAINTEXT_ADMIN" not in env
    for variable, secret in (("VERIFIER_TLS_CERT", "tls_cert"), ("VERIFIER_TLS_KEY", "tls_key")):
        assert env[variable] == f"/run/secrets/{secret}"
        assert secret in verifier["secrets"] and secret in compose["secrets"]
    assert "/readyz" in " ".join(verifier["healthcheck"]["test"])
    drain, grace = float(env["VERIFIER_DRAIN_SECONDS"]), Settings().grace_seconds
    assert float(verifier["stop_grace_period"].rstrip("s")) > drain + grace
