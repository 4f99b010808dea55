"""NVIDIA's attestation services as `CollateralSource`s: the RIM service and the OCSP responder, as NVIDIA's own
verifiers use them (nv-local-gpu-verifier cc_admin_utils.py `fetch_rim_file`, `send_ocsp_request`; config.py
`RIM_SERVICE_BASE_URL`, `OCSP_URL`).

    GET  {rim_base}/v1/rim/{id}        JSON {"id": ..., "rim": "<base64 SWID tag>", "sha256", "last_updated", ...}
    POST {ocsp_url}                    application/ocsp-request (DER) -> application/ocsp-response (DER)

Keys and the OCSP item envelope are `verifier.collateral.nvidia_keys`. Nothing is verified here: a RIM only has to
be base64 of something that starts like XML (its XML signature is checked by verifier.tee.gpu), an OCSP answer
only has to parse; its signature, CertID, nonce and window are checked by `verifier.trust.ocsp`. The OCSP request
carries a SHA-384 CertID and a fresh 32-byte nonce (critical), as NVIDIA's verifier sends it; the item keeps the
nonce beside the answer.

Caching (`cache.CachedSource` in front): a RIM may be served for RIM_MAX_AGE after it was fetched (RIMs have no
expiry of their own, and NVIDIA re-issues RIMs for the same version, so a stored copy is refetched), an OCSP answer
until its nextUpdate, never past it (an answer without nextUpdate is not cached). Offline, neither is asked:
`base.OfflineSource` answers COLLATERAL_OFFLINE.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from cryptography.x509 import ocsp

from ..trust.ocsp import new_nonce
from ..trust.ocsp_response import OcspResponseError, build_request, load_response
from .base import CollateralItem, CollateralKey, CollateralUnavailableError
from .http import HttpClient, check_base_url
from .nvidia_keys import KIND_OCSP, KIND_RIM, RIM_ID, cert_id_of, ocsp_envelope

DEFAULT_RIM_URL = "https://rim.attestation.nvidia.com"
DEFAULT_OCSP_URL = "https://ocsp.ndis.nvidia.com"
RIM_MAX_AGE = dt.timedelta(days=7)
MAX_RIM_BYTES = 512 * 1024  # a GPU RIM is 20-40 KB
_USER_AGENT = "tee-verifier/collateral"


class NvidiaRimService:
    """A `CollateralSource` for NVIDIA's RIM service (kind "nvidia.rim"); `retries`/`max_wait` bound 429/503."""

    def __init__(
        self,
        base_url: str = DEFAULT_RIM_URL,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Raises ConfigError COLLATERAL_URL_INVALID for a URL that is not https:// (http:// only to loopback)."""
        self.base_url = check_base_url(base_url)
        self._http = HttpClient(timeout=timeout, retries=retries, max_wait=max_wait, sleep=sleep)

    def url(self, key: CollateralKey) -> str:
        """The RIM service URL for `key`. Raises CollateralUnavailableError COLLATERAL_KEY_INVALID."""
        try:
            rim_id = key.param("id")
        except KeyError:
            rim_id = ""
        if key.kind != KIND_RIM or not RIM_ID.fullmatch(rim_id):
            raise CollateralUnavailableError(
                "COLLATERAL_KEY_INVALID", f"the RIM service does not serve {key.cache_id()}"
            )
        return f"{self.base_url}/v1/rim/{urllib.parse.quote(rim_id, safe='')}"

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        """The RIM (SWID tag XML bytes). Raises CollateralUnavailableError (http.py's codes, COLLATERAL_KEY_INVALID,
        COLLATERAL_MALFORMED)."""
        url = self.url(key)
        body = self._http.get(url, headers={"Accept": "application/json"})
        fetched_at = dt.datetime.now(dt.UTC)
        data = rim_document(body, key.param("id"))
        return CollateralItem(
            key=key, data=data, fetched_at=fetched_at, next_update=fetched_at + RIM_MAX_AGE, source="nvidia-rim"
        )


def rim_document(body: bytes, rim_id: str) -> bytes:
    """The RIM in a RIM service answer: base64 "rim" of a JSON object (its "id", when present, must be `rim_id`).
    Raises CollateralUnavailableError COLLATERAL_MALFORMED."""
    try:
        answer: Any = json.loads(body)
        if not isinstance(answer, dict) or not isinstance(answer.get("rim"), str):
            raise ValueError('not a JSON object with a "rim" string')
        if "id" in answer and answer["id"] != rim_id:
            raise ValueError(f"the answer is for {str(answer['id'])[:140]!r}")
        data = base64.b64decode(answer["rim"], validate=True)
    except (ValueError, RecursionError, binascii.Error) as error:
        raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{KIND_RIM} {rim_id}: {str(error)[:200]}") from None
    if len(data) > MAX_RIM_BYTES or not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise CollateralUnavailableError(
            "COLLATERAL_MALFORMED", f"{KIND_RIM} {rim_id}: not an XML document of at most {MAX_RIM_BYTES} bytes"
        )
    return data


class NvidiaOcsp:
    """A `CollateralSource` for NVIDIA's OCSP responder (kind "nvidia.ocsp"). `nonce` makes the request nonce
    (injectable for tests)."""

    def __init__(
        self,
        url: str = DEFAULT_OCSP_URL,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        nonce: Callable[[], bytes] = new_nonce,
    ) -> None:
        """Raises ConfigError COLLATERAL_URL_INVALID for a URL that is not https:// (http:// only to loopback)."""
        checked = check_base_url(url)
        self.url = checked if urllib.parse.urlsplit(checked).path else checked + "/"
        self._http = HttpClient(timeout=timeout, retries=retries, max_wait=max_wait, sleep=sleep)
        self._nonce = nonce

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        """The responder's answer for the CertID `key` names, in the envelope of `nvidia_keys.ocsp_envelope`.
        Raises CollateralUnavailableError: COLLATERAL_KEY_INVALID, http.py's codes, COLLATERAL_MALFORMED (the
        answer does not parse), COLLATERAL_FETCH_FAILED (the responder answered tryLater, internalError...)."""
        try:
            cid = cert_id_of(key)
            request = build_request(cid, nonce := self._nonce())
        except (KeyError, ValueError) as error:
            raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"{key.cache_id()[:200]}: {error}") from None
        headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        der = self._http.post(self.url, request, headers=headers)
        fetched_at = dt.datetime.now(dt.UTC)
        try:
            response = load_response(der)
        except OcspResponseError as error:
            raise CollateralUnavailableError("COLLATERAL_MALFORMED", f"{KIND_OCSP}: {error.message}") from None
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise CollateralUnavailableError(
                "COLLATERAL_FETCH_FAILED", f"the OCSP responder answered {response.response_status.name}"
            )
        return CollateralItem(
            key=key,
            data=ocsp_envelope(der, nonce),
            fetched_at=fetched_at,
            next_update=_next_update(response, cid.serial),
            source="nvidia-ocsp",
        )


def _next_update(response: ocsp.OCSPResponse, serial: int) -> dt.datetime | None:
    """The nextUpdate of the answer's SingleResponse for `serial` (None: not cached). Unverified: an answer that
    does not verify is rejected from the cache by its user."""
    try:
        for single in response.responses:
            if single.serial_number == serial:
                next_update: dt.datetime | None = single.next_update_utc
                return next_update
    except ValueError:
        return None
    return None
