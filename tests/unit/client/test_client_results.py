"""verify_result and JwksCache against tokens from our own signer (and joserfc as an independent check)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from verifier.appraisal.model import AFFIRMING, WARNING_UNSAFE, Appraisal, Claim, Finding, Tier, TrustVector
from verifier.client import JwksCache, ResultError, verify_result
from verifier.client.jwks import fetch_jwks_http
from verifier.errors import ConfigError, EvidenceError, UnavailableError
from verifier.results.ear import build_ear
from verifier.results.keys import SigningKey, ephemeral_key
from verifier.results.signer import ResultSigner

ISSUED = datetime(2024, 9, 7, 14, 37, 39, tzinfo=UTC)
NONCE = b"\x01" * 32
ISSUER = "tee-verifier"
WORKLOAD_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def appraisal(status: Tier = Tier.AFFIRMING, labels: tuple[str, ...] = ("image v1",)) -> Appraisal:
    value = {Tier.AFFIRMING: AFFIRMING, Tier.WARNING: WARNING_UNSAFE, Tier.CONTRAINDICATED: 96}[status]
    findings = () if status is Tier.AFFIRMING else (Finding("X", Claim.HARDWARE, value, "m"),)
    vector = TrustVector({Claim.HARDWARE: value, Claim.EXECUTABLES: AFFIRMING})
    workloads = tuple(
        {"name": label, "version": "1", "id": label, "policy": "default", "status": status.value} for label in labels
    )
    return Appraisal(
        tee="nitro",
        status=status,
        trust_vector=vector,
        claims={"module_id": "i-1"},
        findings=findings,
        policy_id="default",
        matched_labels=labels,
        workload=workloads[0] if workloads else None,
        workloads=workloads,
    )


def claims(
    *,
    status: Tier = Tier.AFFIRMING,
    nonce: bytes | None = NONCE,
    labels: tuple[str, ...] = ("image v1",),
    cnf: dict[str, Any] | None = WORKLOAD_JWK,
) -> dict[str, Any]:
    return build_ear(
        appraisal(status, labels),
        issuer=ISSUER,
        issued_at=ISSUED,
        lifetime=timedelta(minutes=5),
        nonce=nonce,
        token_id="tok-1",
        verifier_build="test",
        cnf_jwk=cnf,
    )


@pytest.fixture
def signer() -> ResultSigner:
    return ResultSigner([ephemeral_key()])


def check(token: str, jwks: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("now", ISSUED + timedelta(seconds=1))
    kwargs.setdefault("expected_nonce", NONCE)
    return verify_result(token, jwks, **kwargs)


def rejected(code: str, token: str, jwks: Any, **kwargs: Any) -> ResultError:
    with pytest.raises(ResultError) as caught:
        check(token, jwks, **kwargs)
    assert caught.value.code == code, caught.value
    assert isinstance(caught.value, EvidenceError)
    return caught.value


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


def test_a_good_token_passes_and_joserfc_agrees(signer: ResultSigner) -> None:
    token = signer.sign(claims())
    result = check(token, signer.jwks(), issuer=ISSUER, required_labels={"image v1"})
    assert (result.status, result.tee, result.submod_status) == ("affirming", "nitro", "affirming")
    assert result.trust_vector == {"executables": 2, "hardware": 2}
    assert result.claims == {"module_id": "i-1"} and result.policy_id == "default"
    assert result.matched_labels == ("image v1",) and result.findings == ()
    assert result.cnf_jwk == WORKLOAD_JWK and result.nonce == NONCE
    assert (result.token_id, result.issuer, result.kid) == ("tok-1", ISSUER, signer.kid)
    assert result.issued_at == ISSUED and result.expires_at == ISSUED + timedelta(minutes=5)
    decoded = jwt.decode(token, KeySet.import_key_set(signer.jwks()), algorithms=["ES256"])  # type: ignore[arg-type]
    assert decoded.claims == result.raw == claims()
    assert check(signer.sign(claims(cnf=None, nonce=None)), signer.jwks(), expected_nonce=None).cnf_jwk is None


def test_expiry_with_and_without_leeway(signer: ResultSigner) -> None:
    token = signer.sign(claims())
    exp = ISSUED + timedelta(minutes=5)
    assert check(token, signer.jwks(), now=exp + timedelta(seconds=10)).status == "affirming"  # within 30 s
    rejected("TOKEN_EXPIRED", token, signer.jwks(), now=exp + timedelta(seconds=10), leeway=timedelta(0))
    rejected("TOKEN_EXPIRED", token, signer.jwks(), now=exp, leeway=timedelta(0))  # exp itself is too late
    rejected("TOKEN_EXPIRED", token, signer.jwks(), now=exp + timedelta(seconds=31))


def test_issued_in_the_future(signer: ResultSigner) -> None:
    token = signer.sign(claims())
    assert check(token, signer.jwks(), now=ISSUED - timedelta(seconds=20)).status == "affirming"
    rejected("TOKEN_NOT_YET_VALID", token, signer.jwks(), now=ISSUED - timedelta(seconds=31))
    rejected("TOKEN_NOT_YET_VALID", token, signer.jwks(), now=ISSUED - timedelta(seconds=1), leeway=timedelta(0))
    late = dict(claims(), nbf=int(ISSUED.timestamp()) + 3600)
    rejected("TOKEN_NOT_YET_VALID", signer.sign(late), signer.jwks())


def test_foreign_key_and_tampering(signer: ResultSigner) -> None:
    foreign = ResultSigner([ephemeral_key()])
    rejected("TOKEN_KID_UNKNOWN", foreign.sign(claims()), signer.jwks())
    # A foreign key claiming our kid: the signature does not verify with our key.
    impostor = ResultSigner([SigningKey(ephemeral_key().private_key, signer.kid)])
    rejected("TOKEN_SIGNATURE_INVALID", impostor.sign(claims()), signer.jwks())
    header, payload, signature = signer.sign(claims(status=Tier.CONTRAINDICATED)).split(".")
    upgraded = b64(base64.urlsafe_b64decode(payload + "==").replace(b'"contraindicated"', b'"affirming"'))
    rejected("TOKEN_SIGNATURE_INVALID", f"{header}.{upgraded}.{signature}", signer.jwks())
    rejected("TOKEN_SIGNATURE_INVALID", f"{header}.{payload}.{signature[:-4]}", signer.jwks())
    bad_key = {"keys": [dict(signer.jwks()["keys"][0], crv="P-384")]}
    rejected("TOKEN_KEY_INVALID", signer.sign(claims()), bad_key)


def test_alg_none_and_hs256_are_refused(signer: ResultSigner) -> None:
    jwk = signer.jwks()["keys"][0]
    payload = claims()
    rejected(
        "TOKEN_ALG_UNSUPPORTED", forge({"alg": "none", "typ": "eat+jwt", "kid": signer.kid}, payload), signer.jwks()
    )
    rejected("TOKEN_ALG_UNSUPPORTED", forge({"typ": "eat+jwt", "kid": signer.kid}, payload), signer.jwks())
    # Algorithm confusion: an HMAC "signed" with the public key's published bytes.
    header = {"alg": "HS256", "typ": "eat+jwt", "kid": signer.kid}
    signing_input = forge(header, payload).rsplit(".", 1)[0]
    mac = hmac.new(json.dumps(jwk).encode(), signing_input.encode(), hashlib.sha256).digest()
    rejected("TOKEN_ALG_UNSUPPORTED", f"{signing_input}.{b64(mac)}", signer.jwks())


def test_malformed_tokens(signer: ResultSigner) -> None:
    good = signer.sign(claims())
    header, payload, signature = good.split(".")
    for token in (
        "",
        "a.b",
        f"{good}.x",
        f"{header}.{payload}\u00e9.{signature}",
        f"{header}=.{payload}.{signature}",
        f"!!.{payload}.{signature}",
        f"{b64(b'[1]')}.{payload}.{signature}",
        f"{b64(b'{')}.{payload}.{signature}",
    ):
        rejected("TOKEN_MALFORMED", token, signer.jwks())
    dup = b64(b'{"alg":"ES256","typ":"eat+jwt","kid":"x","kid":"' + signer.kid.encode() + b'"}')
    rejected("TOKEN_MALFORMED", f"{dup}.{payload}.{signature}", signer.jwks())
    rejected("TOKEN_MALFORMED", forge({"alg": "ES256", "typ": "at+jwt", "kid": signer.kid}, claims()), signer.jwks())
    rejected(
        "TOKEN_MALFORMED",
        forge({"alg": "ES256", "typ": "eat+jwt", "kid": signer.kid, "crit": ["b64"]}, claims()),
        signer.jwks(),
    )
    rejected("TOKEN_KID_UNKNOWN", forge({"alg": "ES256", "typ": "eat+jwt"}, claims()), signer.jwks())
    two = claims()
    two["submods"]["snp"] = two["submods"]["nitro"]
    rejected("TOKEN_MALFORMED", signer.sign(two), signer.jwks())
    no_exp = {k: v for k, v in claims().items() if k != "exp"}
    rejected("TOKEN_MALFORMED", signer.sign(no_exp), signer.jwks())
    rejected("TOKEN_MALFORMED", signer.sign(dict(claims(), cnf={"jwk": dict(WORKLOAD_JWK, d="AA")})), signer.jwks())


def test_issuer(signer: ResultSigner) -> None:
    token = signer.sign(claims())
    rejected("TOKEN_ISSUER_MISMATCH", token, signer.jwks(), issuer="https://other.example")
    assert check(token, signer.jwks(), issuer=ISSUER).issuer == ISSUER


def test_nonce(signer: ResultSigner) -> None:
    token = signer.sign(claims())
    error = rejected("TOKEN_NONCE_MISMATCH", token, signer.jwks(), expected_nonce=b"\x02" * 32)
    assert error.actual == b64(NONCE)
    rejected("TOKEN_NONCE_MISMATCH", token, signer.jwks(), expected_nonce=NONCE[:-1])
    rejected("TOKEN_NONCE_MISSING", signer.sign(claims(nonce=None)), signer.jwks())
    assert check(token, signer.jwks(), expected_nonce=None).nonce == NONCE  # the caller opted out


def test_status_order(signer: ResultSigner) -> None:
    affirming, warning = signer.sign(claims()), signer.sign(claims(status=Tier.WARNING))
    contra = signer.sign(claims(status=Tier.CONTRAINDICATED))
    error = rejected("TOKEN_STATUS_INSUFFICIENT", warning, signer.jwks())
    assert (error.expected, error.actual) == ("affirming", "warning")
    assert check(warning, signer.jwks(), required_status="warning").status == "warning"
    assert check(affirming, signer.jwks(), required_status="warning").status == "affirming"
    rejected("TOKEN_STATUS_INSUFFICIENT", contra, signer.jwks(), required_status="warning")
    assert check(contra, signer.jwks(), required_status="none").status == "contraindicated"  # audit only
    mixed = claims()
    mixed["submods"]["nitro"]["ear_status"] = "warning"  # a signed token whose submodule is worse than its top
    rejected("TOKEN_STATUS_INSUFFICIENT", signer.sign(mixed), signer.jwks())
    with pytest.raises(ValueError):
        check(affirming, signer.jwks(), required_status="excellent")


def test_labels(signer: ResultSigner) -> None:
    token = signer.sign(claims(labels=("image v1", "base v3")))
    assert check(token, signer.jwks(), required_labels=["base v3", "image v1"]).matched_labels == (
        "image v1",
        "base v3",
    )
    error = rejected("TOKEN_LABEL_MISSING", token, signer.jwks(), required_labels={"image v2"})
    assert error.actual == "image v1,base v3"
    rejected("TOKEN_LABEL_MISSING", signer.sign(claims(labels=())), signer.jwks(), required_labels={"image v1"})


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Source:
    """A JWKS endpoint whose document can change (rotation) and that counts fetches."""

    def __init__(self, *signers: ResultSigner) -> None:
        self.signers = list(signers)
        self.calls = 0
        self.delay = 0.0
        self.fail = False

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise OSError("connection refused")
        return {"keys": [k for s in self.signers for k in s.jwks()["keys"]]}


def test_rotation_refreshes_once_and_unknown_kids_are_rate_limited(signer: ResultSigner) -> None:
    source, clock = Source(signer), FakeClock()
    cache = JwksCache(source, min_refresh=timedelta(seconds=30), clock=clock)
    check(signer.sign(claims()), cache)
    assert source.calls == 1
    check(signer.sign(claims()), cache)
    assert source.calls == 1  # cached
    clock.t += 31
    rotated = ResultSigner([ephemeral_key()])
    source.signers.insert(0, rotated)  # the verifier rotated: the new kid is not cached yet
    assert check(rotated.sign(claims()), cache).kid == rotated.kid
    assert source.calls == 2  # exactly one refresh
    stranger = ResultSigner([ephemeral_key()])
    for _ in range(20):
        rejected("TOKEN_KID_UNKNOWN", stranger.sign(claims()), cache)
    assert source.calls == 2  # within min_refresh: no fetch at all
    clock.t += 30
    rejected("TOKEN_KID_UNKNOWN", stranger.sign(claims()), cache)
    rejected("TOKEN_KID_UNKNOWN", stranger.sign(claims()), cache)
    assert source.calls == 3  # one more per min_refresh
    assert {k["kid"] for k in cache.keys()["keys"]} == {signer.kid, rotated.kid}


def test_max_age_drops_withdrawn_keys_and_survives_outages(signer: ResultSigner) -> None:
    source, clock = Source(signer), FakeClock()
    cache = JwksCache(source, clock=clock, max_age=timedelta(minutes=10))
    token = signer.sign(claims())
    check(token, cache)
    clock.t += 601
    source.fail = True
    check(token, cache)  # stale set kept while the verifier is unreachable
    assert source.calls == 2
    source.fail = False
    source.signers = [ResultSigner([ephemeral_key()])]  # our key withdrawn
    clock.t += 31
    rejected("TOKEN_KID_UNKNOWN", token, cache)
    assert source.calls == 3


def test_fetch_failures_are_unavailable(signer: ResultSigner) -> None:
    source = Source(signer)
    source.fail = True
    cache = JwksCache(source, clock=FakeClock())
    with pytest.raises(UnavailableError) as caught:
        check(signer.sign(claims()), cache)
    assert caught.value.code == "JWKS_UNAVAILABLE" and caught.value.retryable
    with pytest.raises(UnavailableError):  # rate-limited, still nothing loaded: not "kid unknown"
        check(signer.sign(claims()), cache)
    assert source.calls == 1
    with pytest.raises(UnavailableError) as caught:
        JwksCache(lambda: {"nope": 1}).keys()
    assert caught.value.code == "JWKS_INVALID"


def test_concurrent_unknown_kid_fetches_once(signer: ResultSigner) -> None:
    source = Source(signer)
    source.delay = 0.05
    cache = JwksCache(source)
    token = signer.sign(claims())
    errors: list[BaseException] = []

    def run() -> None:
        try:
            check(token, cache)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and source.calls == 1


@pytest.mark.parametrize(
    "url", ["http://verifier.example/.well-known/jwks.json", "file:///etc/passwd", "ftp://127.0.0.1/jwks.json"]
)
def test_jwks_url_must_be_https_or_loopback(url: str) -> None:
    with pytest.raises(ConfigError):
        fetch_jwks_http(url)


def test_jwks_http_refuses_redirects_and_huge_bodies(signer: ResultSigner) -> None:
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"/ok": json.dumps(signer.jwks()).encode(), "/huge": b" " * 300_000}.get(self.path)
            if body is None:
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/ok")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert fetch_jwks_http(f"{base}/ok") == signer.jwks()
        for path, code in (("/moved", "JWKS_UNAVAILABLE"), ("/huge", "JWKS_INVALID")):
            with pytest.raises(UnavailableError) as caught:
                fetch_jwks_http(base + path)
            assert caught.value.code == code
    finally:
        server.shutdown()
        server.server_close()
