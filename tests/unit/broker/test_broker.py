"""Broker pieces: configuration refusals, single-use expiring nonces, JWE to every supported cnf key type."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from jwcrypto import jwe as jw_jwe
from jwcrypto import jwk as jw_jwk

from verifier.broker.config import load_config
from verifier.broker.release import ChallengeRefused, PendingNonces, ReleaseRefused, client_key, encrypt_to
from verifier.errors import ConfigError
from verifier.results.cnf import key_to_jwk

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def write(tmp_path: Path, secrets: list[dict[str, object]], mode: int = 0o600) -> Path:
    (tmp_path / "s.bin").write_bytes(b"top secret")
    (tmp_path / "s.bin").chmod(mode)
    path = tmp_path / "broker.json"
    path.write_text(
        json.dumps({"verifier": {"grpc": "127.0.0.1:1", "jwks_url": "http://127.0.0.1:2/jwks"}, "secrets": secrets})
    )
    return path


def test_config_loads_and_never_shows_the_secret(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1"}]))
    rule = config.rules["db"]
    assert rule.secret == b"top secret" and "top secret" not in repr(rule) and "top secret" not in repr(config)


@pytest.mark.parametrize(
    ("secrets", "mode", "code"),
    [
        ([{"name": "db", "file": "s.bin"}], 0o600, "BROKER_CONFIG_INVALID"),  # no label: would release to anyone
        ([{"name": "db", "file": "s.bin", "workload": ""}], 0o600, "BROKER_CONFIG_INVALID"),
        (
            [{"name": "db", "file": "s.bin", "workload": "a", "require_status": "contraindicated"}],
            0o600,
            "BROKER_CONFIG_INVALID",
        ),
        ([{"name": "db", "file": "s.bin", "workload": "a"}], 0o644, "BROKER_SECRET_PERMISSIONS"),
        ([{"name": "db", "file": "missing.bin", "workload": "a"}], 0o600, "BROKER_SECRET_MISSING"),
        ([], 0o600, "BROKER_CONFIG_INVALID"),
    ],
)
def test_config_refusals(tmp_path: Path, secrets: list[dict[str, object]], mode: int, code: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, secrets, mode))
    assert info.value.code == code


def test_pending_nonces_are_single_use_expiring_and_bounded() -> None:
    pending = PendingNonces(dt.timedelta(seconds=60), limit=2, per_client=1)
    pending.add(b"a" * 32, NOW, "10.0.0.1")
    assert pending.consume(b"a" * 32, NOW) and not pending.consume(b"a" * 32, NOW)
    pending.add(b"b" * 32, NOW, "10.0.0.1")
    assert not pending.consume(b"b" * 32, NOW + dt.timedelta(seconds=61))
    for n, client in ((b"c", "10.0.0.2"), (b"d", "10.0.0.3"), (b"e", "10.0.0.4")):
        pending.add(n * 32, NOW, client)
    assert not pending.consume(b"c" * 32, NOW)  # evicted: at most `limit` outstanding
    assert pending.consume(b"e" * 32, NOW) and len(pending) == 1


def test_one_client_flooding_challenges_cannot_evict_another_clients_nonce() -> None:
    """10,000 challenges from one address used to push every other client's nonce out of the 10,000-entry store;
    now that client is refused (429, Retry-After until its oldest nonce expires) once it holds its share."""
    pending = PendingNonces(dt.timedelta(seconds=60), limit=10000, per_client=16)
    pending.add(b"real" * 8, NOW, "192.0.2.7")
    refused = 0
    for i in range(10000):
        try:
            pending.add(i.to_bytes(32, "big"), NOW + dt.timedelta(seconds=i / 1000), "198.51.100.9")
        except ChallengeRefused as error:
            assert (error.code, error.status) == ("CHALLENGE_RATE_LIMITED", 429) and 1 <= error.retry_after <= 60
            refused += 1
    assert refused == 10000 - 16 and len(pending) == 17
    with pytest.raises(ChallengeRefused):
        pending.admit("198.51.100.9", NOW)
    pending.admit("192.0.2.7", NOW)  # the other client is not limited
    assert pending.consume(b"real" * 8, NOW + dt.timedelta(seconds=30))
    assert pending.consume((9999).to_bytes(32, "big"), NOW) is False  # refused nonces were never remembered


def test_a_full_store_evicts_from_the_client_holding_the_most() -> None:
    pending = PendingNonces(dt.timedelta(seconds=60), limit=8, per_client=4)
    pending.add(b"real" * 8, NOW, "192.0.2.7")  # the oldest entry of all
    flooders = [f"198.51.100.{i}" for i in range(1, 4)]
    for i in range(100):  # a flood from three addresses, each up to its cap
        try:
            pending.add(i.to_bytes(32, "big"), NOW, flooders[i % 3])
        except ChallengeRefused:
            pass
    assert len(pending) == 8 and pending.consume(b"real" * 8, NOW)


def test_ipv6_clients_are_counted_per_64_prefix() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1" and client_key("192.0.2.1") == "192.0.2.1"
    pending = PendingNonces(dt.timedelta(seconds=60), limit=100, per_client=2)
    pending.add(b"a" * 32, NOW, "2001:db8::1")
    pending.add(b"b" * 32, NOW, "2001:db8::2")
    with pytest.raises(ChallengeRefused):
        pending.add(b"c" * 32, NOW, "2001:db8::3")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_pending_per_client", 0),
        ("max_connections", True),
        ("request_timeout_seconds", -1),
        ("max_body_bytes", 1 << 30),
        ("max_pending", "10"),
    ],
)
def test_http_limits_must_be_positive(tmp_path: Path, key: str, value: object) -> None:
    path = write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1"}])
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.code == "BROKER_CONFIG_INVALID"


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: x25519.X25519PrivateKey.generate(),
    ],
)
def test_jwe_to_each_key_type_decrypts_with_an_independent_library(make) -> None:  # type: ignore[no-untyped-def]
    private = make()
    jwk = key_to_jwk(private.public_key())
    assert jwk is not None
    token = encrypt_to(jwk, b"the secret")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    message = jw_jwe.JWE()
    message.deserialize(token, key=jw_jwk.JWK.from_pem(pem))
    assert message.payload == b"the secret"


def test_signing_only_keys_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    jwk = key_to_jwk(ed25519.Ed25519PrivateKey.generate().public_key())
    assert jwk is not None
    with pytest.raises(ReleaseRefused) as info:
        encrypt_to(jwk, b"x")
    assert info.value.code == "KEY_UNSUITABLE"


def test_unreachable_verifier_keys_fail_closed_with_503(tmp_path: Path) -> None:
    import base64
    import urllib.error
    import urllib.request

    from verifier.broker.http import make_server, serve_in_thread
    from verifier.broker.release import Broker
    from verifier.client.jwks import JwksCache
    from verifier.clock import FixedClock
    from verifier.errors import UnavailableError

    def down() -> dict[str, object]:
        raise UnavailableError("JWKS_UNAVAILABLE", "verifier down")

    config = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1"}]))
    broker = Broker(config, JwksCache(down), lambda: b"n" * 32, FixedClock(NOW))
    server = make_server(broker, "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        nonce, _ = broker.new_challenge()
        header = base64.urlsafe_b64encode(b'{"alg":"ES256","typ":"eat+jwt","kid":"k"}').rstrip(b"=").decode()
        body = json.dumps(
            {
                "secret": "db",
                "nonce": base64.urlsafe_b64encode(nonce).rstrip(b"=").decode(),
                "token": f"{header}.e30.AA",
            }
        ).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/v1/release", body)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 503
        assert json.loads(info.value.read())["error"] == "JWKS_UNAVAILABLE"
    finally:
        server.shutdown()
        server.server_close()
