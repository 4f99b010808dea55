"""The response view at the conversion layer (verifier/transport/grpc/convert.py) and in the client's request."""

from __future__ import annotations

import pytest

from verifier.client.sync import appraise_request
from verifier.errors import RequestError
from verifier.transport.grpc.convert import with_claims
from verifier.v1 import verifier_pb2 as pb


@pytest.mark.parametrize(
    ("view", "claims"),
    [(pb.RESPONSE_VIEW_UNSPECIFIED, True), (pb.RESPONSE_VIEW_FULL, True), (pb.RESPONSE_VIEW_TOKEN, False)],
)
def test_each_known_view_says_whether_the_claims_go_in(view: int, claims: bool) -> None:
    assert with_claims(pb.AppraiseRequest(view=view)) is claims


@pytest.mark.parametrize("view", [3, 7, -1, 2**31 - 1])
def test_any_other_view_is_a_request_error(view: int) -> None:
    with pytest.raises(RequestError) as caught:
        with_claims(pb.AppraiseRequest(view=view))
    assert caught.value.code == "RESPONSE_VIEW_UNKNOWN"


def test_the_client_asks_for_the_token_view_without_claims() -> None:
    full = appraise_request("nitro", b"x", nonce=None, runtime_data=None, collateral=None, policy=None)
    token = appraise_request("nitro", b"x", nonce=None, runtime_data=None, collateral=None, policy=None, claims=False)
    assert (full.view, token.view) == (pb.RESPONSE_VIEW_FULL, pb.RESPONSE_VIEW_TOKEN)
