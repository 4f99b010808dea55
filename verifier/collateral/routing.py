"""Send each collateral key to the vendor service that serves it ("amd.*" -> AMD KDS, "intel.*" -> Intel PCS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from .base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError

VENDORS = {"amd": "amd-kds", "intel": "intel-pcs"}  # the `vendor` label of the collateral metrics


def vendor_of(kind: str) -> str:
    """The service that serves collateral of `kind`: "amd-kds", "intel-pcs", else "other". Never raises."""
    return VENDORS.get(kind.split(".", 1)[0], "other")


class RoutingSource:
    def __init__(self, routes: Mapping[str, CollateralSource]) -> None:
        self._routes = dict(routes)

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        vendor = key.kind.split(".", 1)[0]
        source = self._routes.get(vendor)
        if source is None:
            raise CollateralUnavailableError("COLLATERAL_KEY_INVALID", f"no collateral service for {key.kind}")
        return source.fetch(key, at=at)
