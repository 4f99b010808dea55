"""The well-known documents of the HTTP side server: the JWKS (RFC 7517) and an OpenID Connect Discovery 1.0
document, so that relying parties and cloud token exchanges (workload identity federation) find the signing keys of
the result tokens with stock OIDC libraries.

The discovery document exists when a base URL is known: `public_url`, else the issuer when it is an http(s) URL.
Its `issuer` is the configured issuer exactly (the tokens' `iss`, as discovery requires), `jwks_uri` is
<base>/.well-known/jwks.json. Both documents are served at the root and below the path of the issuer and of the
public URL (https://example/tee: /tee/.well-known/openid-configuration), so a proxy may or may not strip that prefix.

Of the provider metadata OpenID Connect Discovery 1.0 (section 3) marks REQUIRED, the document carries issuer,
jwks_uri, response_types_supported, subject_types_supported and id_token_signing_alg_values_supported; it has no
authorization_endpoint or token_endpoint because the verifier is no OpenID Provider: its tokens are issued over
gRPC, never through an OAuth flow (as the Kubernetes API server's service-account issuer discovery does). The
base URL is never taken from a request's Host header: a client could otherwise make a cache keep a document that
points relying parties at its own keys.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass

from ...errors import ConfigError

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
SIGNING_ALGS = ("ES256",)  # results.signer signs ES256 only


def _web_url(text: str) -> urllib.parse.SplitResult | None:
    """`text` split as an absolute http(s) URL with a host and without query, fragment, user info or blanks;
    else None."""
    if any(c.isspace() for c in text):
        return None
    try:
        url = urllib.parse.urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if url.scheme not in ("https", "http") or not url.hostname or url.query or url.fragment or "@" in url.netloc:
        return None
    return url


def _prefix(url: urllib.parse.SplitResult) -> str:
    """The URL's path without its terminating "/" (discovery section 4: removed before appending the suffix)."""
    return url.path.rstrip("/")


@dataclass(frozen=True)
class Discovery:
    """The discovery document of one configuration, and the paths it and the JWKS are served at."""

    issuer: str
    jwks_uri: str
    prefixes: tuple[str, ...]  # "" and the path prefixes of the issuer and of the public URL

    @classmethod
    def from_settings(cls, issuer: str, public_url: str | None) -> Discovery | None:
        """The document for `issuer` (the tokens' iss) and `public_url` (the HTTP side server's public base URL),
        None when neither is an http(s) URL. Raises ConfigError PUBLIC_URL_INVALID for a `public_url` that is not
        an absolute http(s) URL without query, fragment or user info."""
        issuer_url = _web_url(issuer)
        public = None
        if public_url:
            public = _web_url(public_url)
            if public is None:
                raise ConfigError(
                    "PUBLIC_URL_INVALID",
                    "--public-url must be an absolute http(s) URL without query, fragment or user info",
                )
        base = public or issuer_url
        if base is None:
            return None
        if issuer_url is None:
            log.warning("the issuer %r is no https URL: OIDC consumers will refuse its discovery document", issuer)
        elif issuer_url.scheme != "https":
            log.warning("the issuer %s is no https URL, which OpenID Connect Discovery requires", issuer)
        prefixes = dict.fromkeys(["", *(_prefix(u) for u in (issuer_url, public) if u is not None)])
        return cls(issuer, urllib.parse.urlunsplit(base._replace(path=_prefix(base) + JWKS_PATH)), tuple(prefixes))

    def document(self) -> dict[str, object]:
        """The OpenID Provider metadata (OpenID Connect Discovery 1.0 section 3)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
        }

    def body(self) -> bytes:
        return json.dumps(self.document(), sort_keys=True).encode()

    def paths(self, suffix: str) -> frozenset[str]:
        """Where a document ending in `suffix` (JWKS_PATH, DISCOVERY_PATH) is served."""
        return frozenset(prefix + suffix for prefix in self.prefixes)
