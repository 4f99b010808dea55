"""Broker configuration (JSON, schema in README "Reference key broker"). Secrets are read from files, never from
the configuration itself, and never logged."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..reference_values.kinds import known_tees

STATUSES = ("affirming", "warning")


@dataclass(frozen=True)
class ReleaseRule:
    """Who gets one secret: evidence that matched the approved `workload` completely (at least `min_version`),
    with status at least `require_status` under the workload's own policy, of a TEE in `tees`, appraised under one
    of `require_policies` when given."""

    name: str
    secret: bytes
    workload: str
    require_status: str = "affirming"
    tees: tuple[str, ...] = field(default_factory=known_tees)
    # Policy ids and/or policy SHA-256s the result must have been appraised under (empty: any policy).
    require_policies: tuple[str, ...] = ()
    min_version: str | None = None
    require_labels: tuple[str, ...] = ()  # deprecated (pre-workload tokens); kept for one release
    min_gpus: int = 0  # GPU components the result must carry, each affirming (composite evidence)

    def __repr__(self) -> str:  # never show the secret
        return (
            f"ReleaseRule(name={self.name!r}, workload={self.workload!r}, min_version={self.min_version!r}, "
            f"tees={self.tees!r}, require_policies={self.require_policies!r})"
        )


@dataclass(frozen=True)
class BrokerConfig:
    verifier: str  # gRPC target of the verifier, host:port
    jwks_url: str  # the verifier's /.well-known/jwks.json
    issuer: str
    rules: dict[str, ReleaseRule]
    listen: str = "127.0.0.1:8443"
    nonce_ttl_seconds: float = 120.0
    leeway_seconds: float = 30.0
    max_pending: int = 10000  # unused nonces in all
    max_pending_per_client: int = 16  # unused nonces per client (peer IPv4 address or IPv6 /64)
    request_timeout_seconds: float = 10.0  # to receive one request's headers and body, else the connection is dropped
    max_connections: int = 64  # connections served at once; more get 503 and are closed
    max_body_bytes: int = 64 * 1024


def load_config(path: Path) -> BrokerConfig:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("BROKER_CONFIG_INVALID", f"cannot read broker config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("BROKER_CONFIG_INVALID", "the broker config must be a JSON object")
    verifier = data.get("verifier") or {}
    rules = {}
    for entry in data.get("secrets") or []:
        rule = _rule(entry, path.parent)
        if rule.name in rules:
            raise ConfigError("BROKER_CONFIG_INVALID", f"secret {rule.name!r} is configured twice")
        rules[rule.name] = rule
    if not rules:
        raise ConfigError("BROKER_CONFIG_INVALID", "the broker config names no secrets")
    try:
        return BrokerConfig(
            verifier=str(verifier["grpc"]),
            jwks_url=str(verifier["jwks_url"]),
            issuer=str(verifier.get("issuer", "tee-verifier")),
            rules=rules,
            listen=str(data.get("listen", "127.0.0.1:8443")),
            nonce_ttl_seconds=float(data.get("nonce_ttl_seconds", 120)),
            leeway_seconds=float(data.get("leeway_seconds", 30)),
            max_pending=_positive_int(data, "max_pending", 10000),
            max_pending_per_client=_positive_int(data, "max_pending_per_client", 16),
            request_timeout_seconds=_positive_seconds(data, "request_timeout_seconds", 10.0),
            max_connections=_positive_int(data, "max_connections", 64, 4096),
            max_body_bytes=_positive_int(data, "max_body_bytes", 64 * 1024, 1 << 20),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError("BROKER_CONFIG_INVALID", f"broker config: {exc}") from None


def _positive_int(data: dict[str, Any], key: str, default: int, maximum: int = 10_000_000) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ConfigError("BROKER_CONFIG_INVALID", f"broker config: {key!r} must be an integer in [1, {maximum}]")
    return value


def _positive_seconds(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 86400:
        raise ConfigError("BROKER_CONFIG_INVALID", f"broker config: {key!r} must be a number of seconds (0, 86400)")
    return float(value)


def _rule(entry: Any, base: Path) -> ReleaseRule:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry.get("file"):
        raise ConfigError("BROKER_CONFIG_INVALID", "every secret needs a 'name' and a 'file'")
    workload = entry.get("workload")
    if not isinstance(workload, str) or not workload:
        # A rule without a workload would release to any approved workload of any image: refuse it.
        raise ConfigError(
            "BROKER_CONFIG_INVALID",
            f"secret {entry['name']!r} needs a 'workload' (the approved workload whose evidence may receive it)",
        )
    min_version = entry.get("min_version")
    labels = entry.get("require_labels", [])
    if (
        (min_version is not None and (not isinstance(min_version, str) or not min_version))
        or not isinstance(labels, list)
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise ConfigError(
            "BROKER_CONFIG_INVALID",
            f"secret {entry['name']!r}: 'min_version' is a version string, 'require_labels' a list of labels",
        )
    status = entry.get("require_status", "affirming")
    tees = tuple(entry.get("tees") or known_tees())
    if status not in STATUSES or set(tees) - set(known_tees()):
        raise ConfigError("BROKER_CONFIG_INVALID", f"secret {entry['name']!r}: bad require_status or tees")
    policies = entry.get("require_policies", [])
    if not isinstance(policies, list) or not all(isinstance(x, str) and x for x in policies):
        raise ConfigError(
            "BROKER_CONFIG_INVALID", f"secret {entry['name']!r}: 'require_policies' is a list of policy ids or SHA-256s"
        )
    min_gpus = entry.get("min_gpus", 0)
    if isinstance(min_gpus, bool) or not isinstance(min_gpus, int) or not 0 <= min_gpus <= 8:
        raise ConfigError("BROKER_CONFIG_INVALID", f"secret {entry['name']!r}: 'min_gpus' is an integer of 0..8")
    file = (base / entry["file"]).resolve()
    try:
        mode = file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError("BROKER_SECRET_PERMISSIONS", f"secret file {file} is readable by group/others")
        secret = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            "BROKER_SECRET_MISSING", f"cannot read secret file {file}: {os.strerror(exc.errno or 0)}"
        ) from None
    return ReleaseRule(
        entry["name"], secret, workload, status, tees, tuple(policies), min_version, tuple(labels), min_gpus
    )
