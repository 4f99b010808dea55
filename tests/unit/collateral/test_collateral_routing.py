from __future__ import annotations

import datetime as dt

import pytest

from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError, OfflineSource
from verifier.collateral.routing import RoutingSource

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Echo:
    def __init__(self, name: str) -> None:
        self.name = name

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        return CollateralItem(key, self.name.encode(), at, None, self.name)


def test_routes_by_vendor_prefix() -> None:
    source = RoutingSource({"amd": Echo("kds"), "intel": Echo("pcs")})
    assert source.fetch(CollateralKey("amd.vcek"), at=AT).source == "kds"
    assert source.fetch(CollateralKey("intel.tcb_info", (("fmspc", "B0C06F000000"),)), at=AT).source == "pcs"
    with pytest.raises(CollateralUnavailableError) as info:
        source.fetch(CollateralKey("arm.cca"), at=AT)
    assert info.value.code == "COLLATERAL_KEY_INVALID"


def test_offline_source_never_fetches() -> None:
    with pytest.raises(CollateralUnavailableError) as info:
        OfflineSource().fetch(CollateralKey("amd.vcek"), at=AT)
    assert info.value.code == "COLLATERAL_OFFLINE"
