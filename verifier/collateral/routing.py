"""Send each collateral key to the vendor service that serves it ("amd.*" -> AMD KDS, "intel.*" -> Intel PCS,
"nvidia.rim" -> NVIDIA's RIM service, "nvidia.ocsp" -> NVIDIA's OCSP responder): a route named by a whole kind
wins over one named by the kind's vendor prefix."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from .base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError

# the `vendor` label of the collateral metrics, by kind or by the kind's prefix
VENDORS = {"amd": "amd-kds", "intel": "intel-pcs", "nvidia.rim": "nvidia-rim", "nvidia.ocsp": "nvidia-ocsp"}


def vendor_of(kind: str) -> str:
    """The service that serves collateral of `kind`: "amd-kds", "intel-pcs", "nvidia-rim", "nvidia-ocsp", else
    "other". Never raises."""
    return VENDORS.get(kind) or VENDORS.get(kind.split(".", 1)[0], "other")


class RoutingSource:
    def __init__(self, routes: Mapping[str, CollateralSource]) -> None:
        self._routes = dict(routes)

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        vendor = key.kind.split(".", 1)[0]
        source = self._routes.get(key.kind)
        if source is None:
            source = self._routes.get(vendor)
        if source is None:
            raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"no collateral service for {key.kind}")
        return source.fetch(key, at=at)
