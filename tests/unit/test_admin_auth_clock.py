"""Client certificates (admin and appraisal) are judged at the interceptor's injected clock, the same instant its
tokens and audit entries use; before, the certificate check read the wall clock whatever clock was injected
(found while killing issue 16's mutants)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tests.integration.test_admin_auth import _ca, _leaf
from tests.unit.test_mutants_admin_auth import LIST, _call
from verifier.transport.grpc.admin_auth import AdminAuthInterceptor, ClientCertVerifier

APPRAISE = "/verifier.v1.Verifier/Appraise"
NOW = dt.datetime.now(dt.UTC)  # the test certificates are valid from NOW - 5 min to NOW + 1 h


@pytest.mark.parametrize(
    ("offset", "outcome"),
    [
        (dt.timedelta(0), "ok"),
        (dt.timedelta(hours=3), "ADMIN_CERT_INVALID"),
        (-dt.timedelta(days=1), "ADMIN_CERT_INVALID"),
    ],
    ids=["now", "after-not-after", "before-not-before"],
)
def test_the_admin_certificate_is_judged_at_the_injected_clock(offset: dt.timedelta, outcome: str) -> None:
    admin = _ca("admin ca")
    alice = _leaf(admin, "alice")
    interceptor = AdminAuthInterceptor(admin_cas=ClientCertVerifier([admin.cert]), clock=lambda: NOW + offset)
    assert asyncio.run(_call(interceptor, LIST, leaf=alice.pem)) == outcome


@pytest.mark.parametrize(
    ("offset", "outcome"),
    [(dt.timedelta(0), "ok"), (dt.timedelta(hours=3), "APPRAISAL_CERT_INVALID")],
    ids=["now", "after-not-after"],
)
def test_the_appraisal_certificate_is_judged_at_the_injected_clock(offset: dt.timedelta, outcome: str) -> None:
    relying = _ca("appraisal ca")
    workload = _leaf(relying, "workload")
    interceptor = AdminAuthInterceptor(appraisal_cas=ClientCertVerifier([relying.cert]), clock=lambda: NOW + offset)
    assert asyncio.run(_call(interceptor, APPRAISE, leaf=workload.pem)) == outcome
