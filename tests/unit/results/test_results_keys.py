from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey

from verifier.errors import ConfigError
from verifier.results.keys import (
    SigningKey,
    ephemeral_key,
    generate_key_file,
    load_key_file,
    load_keys,
    public_jwk,
)


def _write_pem(path: Path, key: object, mode: int = 0o600) -> Path:
    data = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_generate_creates_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "result.pem"
    key = generate_key_file(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    [loaded] = load_key_file(path)
    assert loaded.kid == key.kid


def test_generate_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k.pem"
        generate_key_file(path)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_generate_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "result.pem"
    first = generate_key_file(path)
    with pytest.raises(ConfigError) as err:
        generate_key_file(path)
    assert err.value.code == "SIGNING_KEY_EXISTS"
    assert load_key_file(path)[0].kid == first.kid
    second = generate_key_file(path, overwrite=True)
    assert second.kid != first.kid
    assert load_key_file(path)[0].kid == second.kid
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["result.pem"]


@pytest.mark.parametrize(
    "key",
    [ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(public_exponent=65537, key_size=2048)],
    ids=["p384", "rsa"],
)
def test_load_rejects_non_p256(tmp_path: Path, key: object) -> None:
    path = _write_pem(tmp_path / "bad.pem", key)
    with pytest.raises(ConfigError) as err:
        load_key_file(path)
    assert err.value.code == "SIGNING_KEY_INVALID"


def test_load_rejects_garbage_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as err:
        load_key_file(path)
    assert err.value.code == "SIGNING_KEY_INVALID"
    assert "U0VDUkVU" not in str(err.value)


def test_load_rejects_0644_unless_allowed(tmp_path: Path) -> None:
    path = _write_pem(tmp_path / "k.pem", ec.generate_private_key(ec.SECP256R1()), mode=0o644)
    with pytest.raises(ConfigError) as err:
        load_key_file(path)
    assert err.value.code == "SIGNING_KEY_PERMISSIONS"
    assert len(load_key_file(path, allow_insecure_permissions=True)) == 1


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_keys([tmp_path / "nope.pem"])
    assert err.value.code == "SIGNING_KEY_MISSING"
    with pytest.raises(ConfigError) as err:
        load_key_file(tmp_path)  # empty directory
    assert err.value.code == "SIGNING_KEY_MISSING"


def test_load_keys_first_is_active_and_directory_newest_first(tmp_path: Path) -> None:
    a = generate_key_file(tmp_path / "a.pem")
    b = generate_key_file(tmp_path / "b.pem")
    os.utime(tmp_path / "a.pem", (1_000_000, 1_000_000))
    os.utime(tmp_path / "b.pem", (2_000_000, 2_000_000))
    assert [k.kid for k in load_key_file(tmp_path)] == [b.kid, a.kid]
    assert [k.kid for k in load_keys([tmp_path / "a.pem", tmp_path])] == [a.kid, b.kid]


def test_kid_is_rfc7638_thumbprint(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "k.pem")
    pub_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.kid == ECKey.import_key(pub_pem).thumbprint()


def test_public_jwk_members() -> None:
    key = ephemeral_key()
    jwk = public_jwk(key)
    assert {k: jwk[k] for k in ("kty", "crv", "kid", "alg", "use")} == {
        "kty": "EC",
        "crv": "P-256",
        "kid": key.kid,
        "alg": "ES256",
        "use": "sig",
    }
    assert "d" not in jwk
    assert ECKey.import_key(jwk).thumbprint() == key.kid


def test_signing_key_rejects_other_curves_and_hides_key_in_repr() -> None:
    with pytest.raises(ConfigError):
        SigningKey(ec.generate_private_key(ec.SECP384R1()), "kid")
    key = ephemeral_key()
    assert "private_key" not in repr(key)
