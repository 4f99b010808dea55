"""The rotating keyring: lifecycle on a fixed clock, refusals, and concurrent rotation."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from verifier.bootstrap import build_signer
from verifier.clock import FixedClock
from verifier.errors import ConfigError
from verifier.results.keyring import KEYRING_FILE, Keyring, KeyringWatcher, default_publish_for
from verifier.results.signer import ResultSigner
from verifier.settings import Settings

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LIFETIME = timedelta(minutes=5)
PUBLISH = default_publish_for(LIFETIME)


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _kids(signer: ResultSigner) -> list[str]:
    return [k["kid"] for k in signer.jwks()["keys"]]


def _claims(at: datetime) -> dict[str, object]:
    return {"iss": "test", "iat": int(at.timestamp()), "exp": int((at + LIFETIME).timestamp())}


def _verify(token: str, jwks: dict[str, object], at: datetime) -> dict[str, object]:
    keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    claims = dict(jwt.decode(token, keyset, algorithms=["ES256"]).claims)
    jwt.JWTClaimsRegistry(now=int(at.timestamp()), exp={"essential": True}).validate(claims)
    return claims


def _doc(directory: Path) -> Any:
    return json.loads((directory / KEYRING_FILE).read_text())


def _rewrite(directory: Path, doc: object) -> None:
    path = directory / KEYRING_FILE
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


def test_init_rotate_prune_lifecycle(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    clock = MovableClock(T0)
    first = Keyring.init(d, now=T0)
    assert (d.stat().st_mode & 0o777) == 0o700 and ((d / KEYRING_FILE).stat().st_mode & 0o777) == 0o600
    old_kid = first.active_entry.kid
    assert all((d / e.file).stat().st_mode & 0o777 == 0o600 for e in first.entries)
    signer = ResultSigner.from_keyring(d, clock=clock, reload_interval=timedelta(0))
    assert signer.kid == old_kid and _kids(signer) == [old_kid]
    old_token = signer.sign(_claims(T0))

    rotated_at = T0 + timedelta(hours=1)
    clock.at = rotated_at
    new = Keyring.open(d).rotate(rotated_at, publish_for=PUBLISH, token_lifetime=LIFETIME)
    assert new.kid != old_kid and signer.kid == new.kid
    assert _kids(signer) == [new.kid, old_kid]
    assert _verify(old_token, signer.jwks(), T0 + timedelta(seconds=1))["iss"] == "test"
    new_token = signer.sign(_claims(rotated_at))
    assert new_token.split(".")[0] and ResultSigner.verify(new_token, signer.jwks())["iss"] == "test"
    assert _verify(new_token, signer.jwks(), rotated_at)["iss"] == "test"

    entries = {e["kid"]: e for e in _doc(d)["keys"]}
    assert entries[old_kid]["retired_at"] == "2025-01-01T01:00:00Z"
    assert entries[old_kid]["publish_until"] == "2025-01-01T01:10:00Z"
    assert entries[new.kid]["retired_at"] is None

    clock.at = rotated_at + PUBLISH - timedelta(seconds=1)
    assert _kids(signer) == [new.kid, old_kid]
    assert Keyring.open(d).prune(clock.at) == []
    clock.at = rotated_at + PUBLISH
    assert _kids(signer) == [new.kid]  # no longer published, even before pruning
    gone = Keyring.open(d).prune(clock.at)
    assert [e.kid for e in gone] == [old_kid]
    assert not (d / gone[0].file).exists()
    assert [e.kid for e in Keyring.open(d).entries] == [new.kid]
    assert _kids(signer) == [new.kid] and signer.kid == new.kid


def test_rotate_refuses_publish_window_shorter_than_token_lifetime(tmp_path: Path) -> None:
    keyring = Keyring.init(tmp_path / "k", now=T0)
    with pytest.raises(ConfigError) as caught:
        keyring.rotate(T0, publish_for=LIFETIME - timedelta(seconds=1), token_lifetime=LIFETIME)
    assert caught.value.code == "KEYRING_PUBLISH_TOO_SHORT"
    assert len(Keyring.open(tmp_path / "k").entries) == 1


def test_init_refuses_an_existing_keyring(tmp_path: Path) -> None:
    Keyring.init(tmp_path / "k", now=T0)
    with pytest.raises(ConfigError) as caught:
        Keyring.init(tmp_path / "k", now=T0)
    assert caught.value.code == "KEYRING_EXISTS"


@pytest.mark.parametrize("target", ["dir", "json", "key"])
def test_refuses_group_or_world_readable(tmp_path: Path, target: str) -> None:
    d = tmp_path / "k"
    keyring = Keyring.init(d, now=T0)
    path = {"dir": d, "json": d / KEYRING_FILE, "key": d / keyring.active_entry.file}[target]
    path.chmod(0o750 if target == "dir" else 0o640)
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_PERMISSIONS"


def test_init_refuses_an_existing_open_directory(tmp_path: Path) -> None:
    d = tmp_path / "k"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    with pytest.raises(ConfigError) as caught:
        Keyring.init(d, now=T0)
    assert caught.value.code == "KEYRING_PERMISSIONS"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 1, "keys": {}}',
        '{"version": 2, "keys": []}',
        '{"version": 1, "keys": [{"kid": "x", "file": "../x.pem"}]}',
    ],
)
def test_corrupted_keyring_json(tmp_path: Path, content: str) -> None:
    d = tmp_path / "k"
    Keyring.init(d, now=T0)
    (d / KEYRING_FILE).write_text(content)
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_CORRUPT"


def test_missing_key_file_and_kid_mismatch(tmp_path: Path) -> None:
    d = tmp_path / "k"
    keyring = Keyring.init(d, now=T0)
    keyring.rotate(T0, publish_for=PUBLISH)
    doc = _doc(d)
    first, second = doc["keys"]
    first["kid"], second["kid"] = second["kid"], first["kid"]
    _rewrite(d, doc)
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_KID_MISMATCH"
    first["kid"], second["kid"] = second["kid"], first["kid"]
    _rewrite(d, doc)
    (d / first["file"]).unlink()
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_FILE_MISSING"


def test_two_active_keys_and_none(tmp_path: Path) -> None:
    d = tmp_path / "k"
    Keyring.init(d, now=T0).rotate(T0, publish_for=PUBLISH)
    doc = _doc(d)
    for entry in doc["keys"]:
        entry["retired_at"] = entry["publish_until"] = None
    _rewrite(d, doc)
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_MULTIPLE_ACTIVE"
    for entry in doc["keys"]:
        entry["retired_at"] = entry["publish_until"] = "2025-01-01T00:00:00Z"
    _rewrite(d, doc)
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_NO_ACTIVE"


def test_concurrent_rotations_leave_one_active_key(tmp_path: Path) -> None:
    d = tmp_path / "k"
    Keyring.init(d, now=T0)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def rotate() -> None:
        try:
            keyring = Keyring.open(d)  # every thread opens the same state, then rotates
            barrier.wait()
            keyring.rotate(T0 + timedelta(minutes=1), publish_for=PUBLISH)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = Keyring.open(d)
    assert len(final.entries) == 9 and sum(e.active for e in final.entries) == 1
    assert final.active_entry is final.entries[-1]
    assert sorted(p.name for p in d.glob("*.pem")) == sorted(e.file for e in final.entries)
    assert len(final.published(T0 + timedelta(minutes=1))) == 9


def test_watcher_keeps_last_good_keyring_on_a_bad_change(tmp_path: Path) -> None:
    d = tmp_path / "k"
    kid = Keyring.init(d, now=T0).active_entry.kid
    watcher = KeyringWatcher(d, clock=FixedClock(T0), reload_interval=timedelta(0))
    (d / KEYRING_FILE).write_text("{broken")
    assert watcher.active().kid == kid and [k.kid for k in watcher.published()] == [kid]


def test_watcher_waits_for_the_reload_interval(tmp_path: Path) -> None:
    d = tmp_path / "k"
    kid = Keyring.init(d, now=T0).active_entry.kid
    signer = ResultSigner.from_keyring(d, clock=FixedClock(T0), reload_interval=timedelta(hours=1))
    Keyring.open(d).rotate(T0, publish_for=PUBLISH)
    assert signer.kid == kid


def test_build_signer_uses_the_keyring(tmp_path: Path) -> None:
    d = tmp_path / "k"
    kid = Keyring.init(d, now=T0).active_entry.kid
    assert build_signer(Settings(signing_key_dir=d)).kid == kid
    with pytest.raises(ConfigError) as caught:
        build_signer(Settings(signing_key_dir=d, signing_keys=(tmp_path / "x.pem",)))
    assert caught.value.code == "SIGNING_KEY_CONFLICT"


def test_missing_keyring_and_non_utf8_json(tmp_path: Path) -> None:
    d = tmp_path / "k"
    d.mkdir(mode=0o700)
    with pytest.raises(ConfigError) as caught:
        ResultSigner.from_keyring(d, clock=FixedClock(T0))
    assert caught.value.code == "KEYRING_FILE_MISSING"
    Keyring.init(d, now=T0)
    (d / KEYRING_FILE).write_bytes(b"\xff\xfe{")
    with pytest.raises(ConfigError) as caught:
        Keyring.open(d)
    assert caught.value.code == "KEYRING_CORRUPT"
