"""docker-compose.yml, the Dockerfile, the image lock and the Prometheus config agree with each other and with the
service (Docker itself does not run here, so their structure is what can be checked; deploy/smoke.sh runs the
stack where an engine is available, tests/unit/deploy/ checks the scripts and the build context)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from verifier.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_the_five_services_wired_in_order() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "migrate", "verifier", "prometheus", "grafana"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["verifier"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["healthcheck"]["test"]
    assert services["prometheus"]["depends_on"] == ["verifier"]
    assert services["grafana"]["depends_on"] == ["prometheus"]


def test_compose_says_it_needs_compose_v2_and_the_key_step() -> None:
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:")[0]
    assert "Requires Docker Compose v2" in header
    assert 'eval "$(deploy/make-keys.sh)"' in header and "docker compose up -d" in header
    assert "10001" in header and "0400" in header


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


def test_every_secret_file_is_one_make_keys_writes() -> None:
    script = (ROOT / "deploy" / "make-keys.sh").read_text()
    for name, secret in _compose()["secrets"].items():
        directory, _, file = secret["file"].rpartition("/")
        assert directory == "${VERIFIER_KEYS_DIR:-./keys}", name
        assert f'"$DIR/{file}"' in script, f"make-keys.sh does not write {file}"


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


def test_grafana_is_provisioned_from_deploy_grafana_and_only_viewable_anonymously() -> None:
    grafana = _compose()["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # never a literal: a file secret made by make-keys.sh
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["secrets"] == ["grafana_admin_password"]
    for provider in (ROOT / "deploy" / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"):
        for entry in yaml.safe_load(provider.read_text()).get("providers", []):
            assert entry["options"]["path"] == "/var/lib/grafana/dashboards", provider


def test_every_image_is_pinned_by_tag_and_digest() -> None:
    for name, service in _compose()["services"].items():
        if "build" in service:
            assert "image" not in service, name  # built here, from the Dockerfile's pinned base
            continue
        image = service["image"]
        assert DIGEST.search(image), f"{name}: {image} is not pinned by digest"
        assert re.fullmatch(r"[a-z0-9/._-]+:[A-Za-z0-9._-]+", DIGEST.sub("", image)), f"{name}: no tag"


def _froms() -> list[str]:
    return [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]


def test_dockerfile_stages_use_one_base_pinned_by_digest_with_its_source_cited() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = _froms()
    assert len(froms) == 2 and len(set(froms)) == 1
    assert froms[0].startswith("python:3.11-slim@sha256:") and DIGEST.search(froms[0])
    assert "docker-library/repo-info" in text and "repos/python/remote/3.11-slim.md" in text


def test_dockerfile_installs_the_locked_dependencies_then_the_wheel() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("# ")
    assert 'ENTRYPOINT ["verifier"]' in text
    assert "USER 10001:10001" in text and "--uid 10001" in text and "--gid 10001" in text
    # issue 12: the image installs the wheel (migrations inside it as package data), never the tree or -e
    assert "COPY migrations" not in text and " -e " not in text
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in text
    lock = "pip install --no-cache-dir --require-hashes --only-binary :all: --no-deps -r /tmp/image-requirements.lock"
    wheel = "pip install --no-cache-dir --no-deps /wheels/*.whl && pip check"
    assert lock in text and wheel in text and text.index(lock) < text.index(wheel)
    assert "COPY deploy/image-requirements.lock /tmp/image-requirements.lock" in text
    for service in ("migrate", "verifier"):
        assert _compose()["services"][service]["build"] == "."


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    """name -> the whole requirement (backslash continuations joined) of deploy/image-requirements.lock."""
    text = (ROOT / "deploy" / "image-requirements.lock").read_text().replace("\\\n", " ")
    entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return {_canonical(entry.split("==")[0]): entry for entry in entries}


def test_the_image_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    for requirement in project["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
        assert match is not None, requirement
        name, extras = _canonical(match.group(1)), match.group(2)
        assert name in locked, f"{name} is missing from the image lock: regenerate it (see the Dockerfile)"
        for extra in (extras or "").split(","):
            if extra.strip() == "binary":  # psycopg[binary] brings psycopg-binary
                assert f"{name}-binary" in locked
    for name, entry in locked.items():
        assert re.match(r"[A-Za-z0-9._-]+==[^\s;]+", entry), f"{name} is not pinned with =="
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{name} has no --hash"
    for dev_only in ("pytest", "mypy", "ruff", "hypothesis", "grpcio-tools"):
        assert dev_only not in locked, f"{dev_only} is a development dependency"


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
