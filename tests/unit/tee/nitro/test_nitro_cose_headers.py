"""COSE header rules for Nitro documents: crit (RFC 9052 section 3.1) and the unprotected bucket.

We understand exactly one header parameter, alg (label 1). Every document is signed by the fake AWS leaf, so only
the header rules can refuse it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import ParseError
from verifier.tee.nitro.parse import parse
from verifier.tee.nitro.verify import verify


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


def _error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value


@pytest.mark.parametrize(
    "protected",
    [
        {1: -35, 2: [99], 99: 0},  # a label we do not understand, present in the header
        {1: -35, 2: [99]},  # ... and absent from it: still "not understood" first
        {1: -35, 2: [4], 4: b"kid"},  # kid: a known COSE label, but not one this verifier processes
        {1: -35, 2: [1, 33], 33: b"x"},  # x5chain next to alg
        {1: -35, 2: ["reserved"]},  # a text label
    ],
)
def test_crit_naming_a_label_we_do_not_understand_is_rejected(pki: FakeAwsPki, protected: dict[Any, Any]) -> None:
    err = _error(pki.mint(protected=protected))
    assert err.code == "NITRO_COSE_CRIT_UNSUPPORTED"
    assert err.expected == "[1]"


@pytest.mark.parametrize(
    "crit",
    [[], 1, "1", {1: 1}, [1, 1], [True], [None], [[1]], [b"\x01"]],
    ids=["empty", "int", "text", "map", "repeated", "bool", "null", "nested", "bytes"],
)
def test_crit_that_is_not_a_non_empty_array_of_labels_is_malformed(pki: FakeAwsPki, crit: object) -> None:
    assert _error(pki.mint(protected={1: -35, 2: crit})).code == "NITRO_COSE_CRIT_MALFORMED"


def test_crit_naming_a_label_absent_from_the_protected_header(pki: FakeAwsPki) -> None:
    """alg is understood, but crit may only name labels of the protected header (RFC 9052 section 3.1)."""
    err = _error(pki.mint(protected_raw=bytes.fromhex("a1028101")))  # {2: [1]}: crit names alg, which is missing
    assert err.code == "NITRO_COSE_CRIT_MALFORMED"


def test_a_float_label_in_crit_is_not_cbor_we_accept(pki: FakeAwsPki) -> None:
    assert _error(pki.mint(protected={1: -35, 2: [1.5]})).code == "NITRO_CBOR_UNSUPPORTED"


def test_crit_naming_alg_verifies(pki: FakeAwsPki) -> None:
    """alg is understood, so crit [1] (allowed, though RFC 9052 says labels 0..7 SHOULD be omitted) is fine."""
    evidence = parse(pki.mint(protected={1: -35, 2: [1]}))
    assert evidence.cose.protected_header == {1: -35, 2: [1]}
    verify(evidence, pki.anchors(), pki.now)


def test_unlisted_unknown_protected_labels_are_ignored(pki: FakeAwsPki) -> None:
    """RFC 9052 section 3: a label not named in crit may be ignored; none of them is ever read here."""
    verify(parse(pki.mint(protected={1: -35, 4: b"kid", 99: "x"})), pki.anchors(), pki.now)


@pytest.mark.parametrize(
    "unprotected",
    [{2: [99]}, {4: b"kid"}, {33: b"\x30"}, {"x": 1}, {-1: 0}],
    ids=["crit", "kid", "x5chain", "text", "negative"],
)
def test_unprotected_header_must_be_empty(pki: FakeAwsPki, unprotected: dict[Any, Any]) -> None:
    err = _error(pki.mint(unprotected=unprotected))
    assert (err.code, err.expected) == ("NITRO_COSE_UNPROTECTED_NOT_EMPTY", "{}")


def test_alg_in_the_unprotected_header_keeps_its_code(pki: FakeAwsPki) -> None:
    assert _error(pki.mint(unprotected={1: -35})).code == "NITRO_ALG_UNSUPPORTED"
