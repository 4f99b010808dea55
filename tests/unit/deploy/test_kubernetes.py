"""deploy/kubernetes (issue 14 item 2): every kustomization renders (`kubectl kustomize`), its core, apps, batch,
policy, autoscaling and networking resources validate against the Kubernetes schemas (kubernetes-validate, strict,
offline), its CRD resources (ServiceMonitor, CloudNativePG Cluster) are checked structurally, and the manifests agree
with the service: the probe paths it serves, its ports and settings, the keyring it accepts."""

from __future__ import annotations

import ast
import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from verifier.errors import ConfigError
from verifier.results.keyring import Keyring
from verifier.settings import Settings, declarations, from_environment
from verifier.storage.engine import POOL_MAX_OVERFLOW, POOL_SIZE

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")

KUSTOMIZATIONS = ["base", "migration", *(f"examples/cloudnativepg/{d}" for d in ("database", "migration", "verifier"))]
COMPONENTS = ["monitoring", "network-policy", "autoscaling"]
ALL_COMPONENTS = "base+all-components"  # rendered from a temporary overlay
SCHEMA_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
K8S_VERSIONS = ("1.29.0", "1.33.0")  # the oldest release the manifests claim, and the newest bundled schema
LIBPQ_ENV = {"PGSSLMODE", "PGSSLROOTCERT"}  # read by libpq itself (CloudNativePG example), not verifier settings
UID = 10001
CNPG = "examples/cloudnativepg"
HTTP_SIDE = ROOT / "verifier" / "transport" / "grpc" / "http.py"


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    """Without kubectl these tests skip, unless VERIFIER_REQUIRE_KUBECTL=1 (then they fail: CI checks the manifests)."""
    if KUBECTL is None:
        message = "kubectl is not installed (needed for `kubectl kustomize`)"
        if os.environ.get("VERIFIER_REQUIRE_KUBECTL") == "1":
            pytest.fail(f"VERIFIER_REQUIRE_KUBECTL=1 but {message}", pytrace=False)
        pytest.skip(message)


@functools.cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """The resources `kubectl kustomize` renders for a kustomization under deploy/kubernetes, or for ALL_COMPONENTS
    (the base with every component, from a temporary overlay)."""
    assert KUBECTL is not None
    with tempfile.TemporaryDirectory(prefix="k8s-overlay-") as overlay:
        target = K8S / name
        if name == ALL_COMPONENTS:
            target = Path(overlay)
            parts = {"resources": [K8S / "base"], "components": [K8S / "components" / c for c in COMPONENTS]}
            document = {key: [os.path.relpath(p, overlay) for p in paths] for key, paths in parts.items()}
            (target / "kustomization.yaml").write_text(yaml.safe_dump({"kind": "Kustomization", **document}))
        done = subprocess.run([KUBECTL, "kustomize", target], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def one(name: str, kind: str) -> dict[str, Any]:
    (found,) = [r for r in render(name) if r["kind"] == kind]
    return found


def workloads(name: str) -> Iterator[dict[str, Any]]:
    """The pod specs of the Deployments and Jobs a kustomization renders."""
    for resource in render(name):
        if resource["kind"] in ("Deployment", "Job"):
            yield resource["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_kustomizations_are_all_listed() -> None:
    found = {p.parent.relative_to(K8S).as_posix() for p in K8S.rglob("kustomization.yaml")}
    kinds = {d: yaml.safe_load((K8S / d / "kustomization.yaml").read_text())["kind"] for d in found}
    assert {d for d, k in kinds.items() if k == "Kustomization"} == set(KUSTOMIZATIONS)
    assert {d for d, k in kinds.items() if k == "Component"} == {f"components/{c}" for c in COMPONENTS}


@pytest.mark.parametrize("name", [*KUSTOMIZATIONS, ALL_COMPONENTS])
def test_rendered_resources_are_valid(name: str) -> None:
    import kubernetes_validate

    for resource in render(name):
        if resource["apiVersion"] in SCHEMA_GROUPS:
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(resource, version, strict=True)
        elif resource["kind"] == "ServiceMonitor":
            check_service_monitor(resource, render(name))
        elif resource["kind"] == "Cluster":
            check_cnpg_cluster(resource)
        else:
            pytest.fail(f"{name}: no check for {resource['apiVersion']} {resource['kind']}")


def check_service_monitor(monitor: dict[str, Any], rendered: tuple[dict[str, Any], ...]) -> None:
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [r for r in rendered if r["kind"] == "Service" and matches(selector, r["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in services] == ["verifier"]  # scraped once, not through the headless one
    port_names = {p["name"] for p in services[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
        assert endpoint["scheme"] == _http_side_scheme().lower()
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "tlsConfig"}


def check_cnpg_cluster(cluster: dict[str, Any]) -> None:
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert isinstance(spec["instances"], int) and spec["instances"] >= 1 and spec["storage"]["size"]
    assert set(spec["bootstrap"]["initdb"]) == {"database", "owner"} and spec["enableSuperuserAccess"] is False
    assert all(isinstance(v, str) for v in spec["postgresql"]["parameters"].values())  # a map of strings
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1}


def test_base_and_migration_are_namespace_agnostic_and_the_example_is_in_one() -> None:
    for name in ("base", "migration", ALL_COMPONENTS):
        assert all("namespace" not in r["metadata"] for r in render(name)), name
    namespaces = {
        r["metadata"]["namespace"] for d in ("database", "migration", "verifier") for r in render(f"{CNPG}/{d}")
    }
    assert namespaces == {"verifier"}


def test_every_container_runs_the_image_and_the_examples_override_it() -> None:
    for name in KUSTOMIZATIONS:
        for pod in workloads(name):
            images = {c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]}
            expected = "registry.example.com/tee-verifier:0.1.0" if name.startswith(CNPG) else "tee-verifier"
            assert images == {expected}, name


def _served_paths() -> set[str]:
    """Every string constant of the HTTP side server that looks like a path."""
    constants = (n.value for n in ast.walk(ast.parse(HTTP_SIDE.read_text())) if isinstance(n, ast.Constant))
    return {c for c in constants if isinstance(c, str) and c.startswith("/")}


def _server_settings() -> Settings:
    container = one("base", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return from_environment({k: e["value"] for k, e in env_of(container).items() if "value" in e})


def _http_side_scheme() -> str:
    """HTTPS when the server has a TLS certificate and its HTTP side server speaks TLS with it (http.py's
    `tls_context`) unless VERIFIER_HTTP_PLAINTEXT says otherwise; else HTTP."""
    settings = _server_settings()
    functions = {n.name for n in ast.parse(HTTP_SIDE.read_text()).body if isinstance(n, ast.FunctionDef)}
    speaks_tls = "tls_context" in functions
    plaintext = getattr(settings, "http_plaintext", False)
    return "HTTPS" if speaks_tls and settings.tls_cert is not None and not plaintext else "HTTP"


def test_probes_ask_paths_the_http_server_serves_on_its_port() -> None:
    container = one("base", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    served = _served_paths()
    for probe in probes.values():
        assert probe["path"] in served and probe["port"] == "https"
        assert probe.get("scheme", "HTTP") == _http_side_scheme()
    assert probes["readinessProbe"]["path"] == "/readyz"  # serving, every worker ready, the database check
    # liveness without the database (not /readyz or its alias /healthz): an outage must not restart every replica
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/livez"
    assert "/metrics" in served


def test_container_ports_match_the_listen_flags_the_services_and_the_network_policy() -> None:
    pod = one(ALL_COMPONENTS, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50051, "https": 9464}
    args = container["args"]
    assert container["command"] == ["verifier"] and args[0] == "serve"
    assert args[args.index("--listen") + 1] == f"0.0.0.0:{ports['grpc']}"
    assert args[args.index("--http-listen") + 1] == f"0.0.0.0:{ports['https']}"
    flags = {d.flag for d in declarations().values() if d.flag}
    assert {a for a in args if a.startswith("--")} <= flags
    pod_labels = one(ALL_COMPONENTS, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for service in (r for r in render(ALL_COMPONENTS) if r["kind"] == "Service"):
        assert matches(service["spec"]["selector"], pod_labels)
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"] and port["name"] == port["targetPort"]
    policy = one(ALL_COMPONENTS, "NetworkPolicy")
    assert matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == set(ports)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_env_var_is_a_verifier_setting_with_a_valid_value(name: str) -> None:
    declared = {d.env_name: d for d in declarations().values()}
    for pod in workloads(name):
        assert all("env" not in c for c in pod.get("initContainers", []))
        for container in pod["containers"]:
            env = env_of(container)
            unknown = set(env) - set(declared) - (LIBPQ_ENV if name.startswith(CNPG) else set())
            assert not unknown, f"{name}: not verifier settings: {sorted(unknown)}"
            literals = {k: e["value"] for k, e in env.items() if "value" in e and k in declared}
            for key, value in literals.items():
                declared[key].parse(value)  # raises ConfigError on a malformed value
            from_environment(literals)


def test_the_server_signs_from_the_keyring_serves_tls_runs_a_worker_per_cpu_and_drains_in_time() -> None:
    container = one("base", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    settings = _server_settings()
    assert settings.signing_keys == () and settings.signing_key_dir is not None
    assert not settings.development and settings.fixed_time is None
    assert settings.tls_cert is not None and settings.tls_key is not None
    assert settings.tls_key.parent == settings.tls_cert.parent
    assert {"mountPath": str(settings.tls_cert.parent), "name": "tls", "readOnly": True} in container["volumeMounts"]
    assert settings.workers == int(container["resources"]["limits"]["cpu"])
    assert env["VERIFIER_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "verifier-database", "key": "url"}
    # SIGTERM: drain, then the grace period, both before the kubelet's SIGKILL
    assert settings.drain_seconds is not None
    grace = one("base", "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= settings.drain_seconds + settings.grace_seconds + 5


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_pods_run_as_non_root_without_privileges(name: str) -> None:
    assert f"--uid {UID}" in (ROOT / "Dockerfile").read_text()  # the image's user is the one the pods run as
    for pod in workloads(name):
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == UID
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]} and sc.get("privileged") is False
            assert "runAsUser" not in sc  # no container overrides the pod's user
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}


def test_pdb_and_services_select_the_server_pods_and_never_the_migration() -> None:
    deployment = one(ALL_COMPONENTS, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    pdb = one(ALL_COMPONENTS, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"] == pod_labels
    job_labels = one("migration", "Job")["spec"]["template"]["metadata"]["labels"]
    selectors = [deployment["spec"]["selector"]["matchLabels"], pdb["spec"]["selector"]["matchLabels"]]
    selectors += [r["spec"]["selector"] for r in render(ALL_COMPONENTS) if r["kind"] == "Service"]
    selectors.append(one(ALL_COMPONENTS, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    assert not any(matches(s, job_labels) for s in selectors)
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert all(c["labelSelector"]["matchLabels"] == pod_labels for c in spread)
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_autoscaling_owns_the_replica_count() -> None:
    assert one("base", "Deployment")["spec"]["replicas"] == 2
    assert "replicas" not in one(ALL_COMPONENTS, "Deployment")["spec"]
    hpa = one(ALL_COMPONENTS, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "verifier"}
    assert hpa["minReplicas"] > one(ALL_COMPONENTS, "PodDisruptionBudget")["spec"]["minAvailable"]


@pytest.mark.parametrize("name", ["migration", f"{CNPG}/migration"])
def test_the_job_runs_db_upgrade_on_the_servers_database(name: str) -> None:
    job = one(name, "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert [*container["command"], *container["args"]] == ["verifier", "db", "upgrade"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    assert "serviceAccountName" not in pod  # applied before the base, which creates the `verifier` account
    server = one(name.replace("migration", "verifier") if name.startswith(CNPG) else "base", "Deployment")
    server_env = env_of(server["spec"]["template"]["spec"]["containers"][0])
    for key in ("VERIFIER_DATABASE_URL", *(LIBPQ_ENV if name.startswith(CNPG) else ())):
        assert env_of(container)[key] == server_env[key]


def test_cloudnativepg_example_wires_the_operators_secrets_and_enough_connections() -> None:
    cluster = one(f"{CNPG}/database", "Cluster")
    name = cluster["metadata"]["name"]
    for kustomization in (f"{CNPG}/migration", f"{CNPG}/verifier"):
        for pod in workloads(kustomization):
            env = env_of(pod["containers"][0])
            assert env["VERIFIER_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{name}-app", "key": "uri"}
            assert env["PGSSLMODE"]["value"] in ("verify-ca", "verify-full")
            (ca,) = [v for v in pod["volumes"] if v["name"] == "db-ca"]
            assert ca["secret"]["secretName"] == f"{name}-ca"
            assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the CA's private key
            mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
            assert env["PGSSLROOTCERT"]["value"] == f"{mounts['db-ca']}/ca.crt"
    most = one(ALL_COMPONENTS, "HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    needed = most * _server_settings().workers * (POOL_SIZE + POOL_MAX_OVERFLOW + 1)
    assert int(cluster["spec"]["postgresql"]["parameters"]["max_connections"]) >= needed + 10


def _secret_refs(name: str) -> set[tuple[str, str]]:
    """(secret, key) pairs a kustomization's pods read: env secretKeyRefs and secret volumes' keys ("*": all)."""
    refs: set[tuple[str, str]] = set()
    for pod in workloads(name):
        env = [e for c in pod["containers"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
        refs |= {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"]) for e in env}
        for volume in pod["volumes"]:
            if "secret" in volume:
                items = volume["secret"].get("items") or [{"key": "*"}]
                refs |= {(volume["secret"]["secretName"], i["key"]) for i in items}
    return refs


def test_the_secrets_referenced_are_the_documented_placeholders() -> None:
    import kubernetes_validate

    examples = list(yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()))
    for secret in examples:
        kubernetes_validate.validate(secret, K8S_VERSIONS[-1], strict=True)
        assert all("REPLACE" in value for value in secret["stringData"].values())
    documented = {(s["metadata"]["name"], key) for s in examples for key in [*s["stringData"], "*"]}
    assert _secret_refs("base") | _secret_refs("migration") <= documented
    assert {s["metadata"]["name"] for s in examples} == {n for n, _ in _secret_refs("base")}
    assert next(s for s in examples if s["metadata"]["name"] == "verifier-tls")["type"] == "kubernetes.io/tls"
    cnpg = _secret_refs(f"{CNPG}/verifier") - _secret_refs("base")
    assert {n for n, _ in cnpg} == {"verifier-db-app", "verifier-db-ca"}


def _keyring_copy() -> dict[str, Any]:
    (init,) = one("base", "Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == "keyring" and init["command"][:2] == ["python", "-c"]
    return dict(init)


def test_the_keyring_copy_is_where_the_server_reads_it() -> None:
    pod, init = one("base", "Deployment")["spec"]["template"]["spec"], _keyring_copy()
    server = pod["containers"][0]
    source, target = init["args"]
    init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[init_mounts[source]]["secret"]["secretName"] == "verifier-keyring"
    run = volumes[init_mounts[str(Path(target).parent)]]
    assert run["emptyDir"]["medium"] == "Memory"  # the private keys never touch the node's disk
    assert {"mountPath": str(Path(target).parent), "name": run["name"], "readOnly": True} in server["volumeMounts"]
    assert env_of(server)["VERIFIER_SIGNING_KEY_DIR"]["value"] == target


def _secret_volume(keyring: Path, volume: Path) -> None:
    """Lay `keyring`'s files out as the kubelet lays a Secret out: a timestamped directory, `..data` pointing at
    it, one symlink per key, files 0440 (fsGroup) in a world-writable directory."""
    data = volume / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    for file in keyring.iterdir():
        if file.is_file():
            (data / file.name).write_bytes(file.read_bytes())
            (data / file.name).chmod(0o440)
            (volume / file.name).symlink_to(f"..data/{file.name}")
    (volume / "..data").symlink_to(data.name)
    volume.chmod(0o1777)


def _run_copy(script: str, source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, source, target], capture_output=True, text=True, check=False)


def test_the_keyring_copy_turns_a_secret_volume_into_a_keyring_the_server_opens(tmp_path: Path) -> None:
    script = _keyring_copy()["command"][2]
    original = Keyring.init(tmp_path / "keyring", now=datetime(2026, 1, 1, tzinfo=UTC))
    _secret_volume(original.directory, volume := tmp_path / "secret-volume")
    with pytest.raises(ConfigError) as refused:
        Keyring.open(volume)  # why the copy exists: the check refuses a Secret volume as it is mounted
    assert refused.value.code.startswith("KEYRING_")
    target = tmp_path / "run" / "keyring"
    done = _run_copy(script, volume, target)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in target.iterdir())
    assert Keyring.open(target).active().kid == original.active().kid
    assert _run_copy(script, volume, target).returncode == 0  # a restarted init container finds it done


def test_the_keyring_copy_refuses_a_secret_without_a_keyring_in_one_line(tmp_path: Path) -> None:
    script = _keyring_copy()["command"][2]
    (tmp_path / "empty").mkdir()
    done = _run_copy(script, tmp_path / "empty", tmp_path / "run" / "keyring")
    assert done.returncode == 1 and done.stderr.startswith("keyring copy: ") and "keyring.json" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    unreadable = _run_copy(script, tmp_path / "missing", tmp_path / "run" / "keyring")
    assert unreadable.returncode == 1 and "Traceback" not in unreadable.stderr
