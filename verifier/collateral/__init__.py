"""Collateral: vendor certificates, CRLs and TCB data, from the request, a cache, or the vendor service."""
