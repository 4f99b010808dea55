"""Evidence parsed once per distinct bytes (verifier/tee/parse_memo.py): only successes kept, exact bytes as the key,
and the shared parse read-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verifier.errors import ParseError
from verifier.tee.nitro import evidence as nitro_evidence
from verifier.tee.parse_memo import ParseMemo
from verifier.tee.sevsnp import evidence as snp_evidence
from verifier.tee.tdx import evidence as tdx_evidence


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes) -> tuple[bytes]:
        self.calls += 1
        if data.startswith(b"bad"):
            raise ParseError("TEST_MALFORMED", "malformed")
        return (data,)


def test_the_same_bytes_are_parsed_once_and_share_one_result() -> None:
    parse = _Counting()
    memo = ParseMemo("test", parse)
    first = memo(b"report")
    assert memo(b"rep" + b"ort") is first and parse.calls == 1
    assert memo(b"report!") == (b"report!",) and parse.calls == 2
    assert memo.info().hits == 1


def test_malformed_bytes_raise_every_time_and_are_never_kept() -> None:
    parse = _Counting()
    memo = ParseMemo("test", parse)
    for _ in range(3):
        with pytest.raises(ParseError):
            memo(b"bad report")
    assert parse.calls == 3 and memo.info().entries == 0


def test_a_mutable_buffer_is_copied_into_the_key() -> None:
    parse = _Counting()
    memo = ParseMemo("test", parse)
    buffer = bytearray(b"report")
    assert memo(buffer) == (b"report",)
    buffer[:] = b"bad..."
    with pytest.raises(ParseError):
        memo(buffer)  # the changed buffer is other bytes, parsed (and refused) on its own
    assert memo(b"report") == (b"report",) and parse.calls == 2


def test_what_is_not_bytes_goes_to_the_parser_as_it_is() -> None:
    seen: list[object] = []
    memo: ParseMemo[object] = ParseMemo("test", lambda data: seen.append(data) or data)
    memo("text")  # type: ignore[arg-type]
    assert seen == ["text"] and memo.info().entries == 0


def _evidence(vectors_dir: Path, vector_id: str) -> bytes:
    manifest = json.loads((vectors_dir / "MANIFEST.json").read_text())
    entry = next(v for v in manifest["vectors"] if v["id"] == vector_id)
    return (vectors_dir / entry["dir"] / "evidence.bin").read_bytes()


@pytest.mark.parametrize(
    ("module", "vector_id"),
    [
        (nitro_evidence, "nitro-prod-2024-blocky"),
        (snp_evidence, "snp-genoa-v5-vcek-oak"),
        (tdx_evidence, "tdx-v4-dcapqvl-sample"),
    ],
    ids=["nitro", "snp", "tdx"],
)
def test_each_tee_parses_a_repeated_report_once(module: object, vector_id: str, vectors_dir: Path) -> None:
    memo: ParseMemo[object] = module._PARSED  # type: ignore[attr-defined]
    evidence = _evidence(vectors_dir, vector_id)
    assert memo(evidence) is memo(bytes(evidence))
    flipped = evidence[:-1] + bytes([evidence[-1] ^ 1])
    try:
        other = memo(flipped)
    except ParseError:
        return  # the last byte is checked by the parser: nothing kept for it
    assert other is not memo(evidence)


def test_a_shared_nitro_parse_cannot_be_changed(vectors_dir: Path) -> None:
    parsed = nitro_evidence._PARSED(_evidence(vectors_dir, "nitro-prod-2024-blocky"))
    with pytest.raises(TypeError):
        parsed.cose.protected_header[1] = -7  # type: ignore[index]
    with pytest.raises(TypeError):
        parsed.cose.unprotected["x"] = 1  # type: ignore[index]
