"""The whole pipeline on mutated real evidence and collateral: every outcome is a signed result (or a typed
request/unavailable error), never a crash. Found two real bugs: a mutated VCEK whose key type is unknown, and a
PCK chain whose subject only fails to decode when first read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import manifest_vectors, vector_ids
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock, parse_rfc3339
from verifier.errors import ErrorKind, VerifierError
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage.migrate import upgrade

VECTORS = [v for tee in ("nitro", "snp", "tdx") for v in manifest_vectors(tee)]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'v.db'}"
    upgrade(url)
    yield url


def _components(url: str, at: dt.datetime) -> Components:
    return build(Settings(database_url=url, development=True, offline=True, keep_evidence=0), clock=FixedClock(at))


def _mutate(data: bytes, draw: Any) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS] or vector_ids("nitro"))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_never_crash(database: str, vectors_dir: Path, vector: dict[str, Any], data: st.DataObject) -> None:
    folder = vectors_dir / vector["dir"]
    evidence = (folder / "evidence.bin").read_bytes()
    collateral = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "evidence.bin"}
    if data.draw(st.booleans()) and collateral:
        name = data.draw(st.sampled_from(sorted(collateral)))
        collateral[name] = _mutate(collateral[name], data.draw)
    else:
        evidence = _mutate(evidence, data.draw)
    components = _components(database, parse_rfc3339(vector["verify_at"]))
    try:
        result = components.service.appraise(
            AppraisalRequest(tee=vector["tee"], evidence=evidence, collateral=collateral), allow_incomplete=True)
        assert result.appraisal.status.value in ("affirming", "warning", "contraindicated", "none")
        assert result.token.count(".") == 2
    except VerifierError as error:
        assert error.kind in (ErrorKind.REQUEST, ErrorKind.UNAVAILABLE), error
    finally:
        components.close()
