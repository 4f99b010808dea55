"""The parse caches of verifier.trust.certs (verifier.trust.cert_cache, issue 13): the same certificate, PEM bundle
or CRL bytes are decoded once and every later load returns the identical object; malformed input raises every
time; the caches are bounded; a cached CRL is only a parse, its window is still decided on every check."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.fakes import x509_mutations as mutate
from verifier.errors import EvidenceError
from verifier.trust import certs
from verifier.trust.cert_cache import ContentCache
from verifier.trust.certs import (
    clear_parse_caches,
    load_certificate,
    load_crl,
    load_der_certificate,
    load_pem_certificates,
    parse_cache_info,
)
from verifier.trust.crl import AMD_ARK, check_crl

NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    clear_parse_caches()
    yield
    clear_parse_caches()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _der(cn: str = "cache test", issuer: str | None = None) -> bytes:
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer or cn))
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(_KEY, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _crl(next_update: dt.datetime = NOT_AFTER) -> bytes:
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name("cache test"))
        .last_update(NOT_BEFORE)
        .next_update(next_update)
        .sign(_KEY, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def _copy(data: bytes) -> bytes:
    """Equal bytes in a new object, as the next request would bring them."""
    return bytes(bytearray(data))


def _code(load: object, *args: object, **kwargs: object) -> EvidenceError:
    assert callable(load)
    with pytest.raises(EvidenceError) as info:
        load(*args, **kwargs)
    return info.value


# --- hits -------------------------------------------------------------------------------------------------------


def test_the_same_der_bytes_load_to_the_identical_object() -> None:
    der = _der()
    first = load_der_certificate(der, "first")
    assert load_der_certificate(_copy(der), "second") is first
    assert load_certificate(_copy(der), "third") is first
    assert first.subject.rfc4514_string() == "CN=cache test"


def test_the_same_pem_bundle_loads_to_the_identical_objects_and_the_bounds_are_checked_every_time() -> None:
    bundle = _pem(_der("a")) + b"text between blocks\n" + _pem(_der("b"))
    first = load_pem_certificates(bundle, "bundle", max_count=2)
    again = load_pem_certificates(_copy(bundle), "bundle", max_count=2)
    assert again is first and [c.subject.rfc4514_string() for c in again] == ["CN=a", "CN=b"]
    error = _code(load_pem_certificates, bundle, "bundle", max_count=1)  # a hit does not skip the count bound
    assert (error.code, error.actual) == ("CERT_MALFORMED", "2")
    labelled = bundle.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE").replace(
        b"END CERTIFICATE", b"END X509 CERTIFICATE"
    )  # not seen by the pre-count: bounded after parsing, on a hit too
    assert len(load_pem_certificates(labelled, "bundle", max_count=2)) == 2
    for _ in range(2):
        error = _code(load_pem_certificates, labelled, "bundle", max_count=1)
        assert (error.code, error.expected, error.actual) == ("CERT_MALFORMED", "1..1", "2")


def test_pem_and_der_of_the_same_certificate_are_one_object_in_either_order() -> None:
    der_first, pem_first = _der("der first"), _der("pem first")
    from_der = load_der_certificate(der_first, "DER")
    assert load_certificate(_pem(der_first), "PEM") is from_der
    from_pem = load_certificate(_pem(pem_first), "PEM")
    assert load_der_certificate(_copy(pem_first), "DER") is from_pem
    assert from_pem.public_bytes(Encoding.DER) == pem_first


def test_bundles_that_share_a_certificate_share_its_object() -> None:
    root, a, b = _der("root"), _der("a", "root"), _der("b", "root")
    chain_a = load_pem_certificates(_pem(a) + _pem(root), "chain a", max_count=3)
    chain_b = load_pem_certificates(_pem(b) + _pem(root), "chain b", max_count=3)
    assert chain_a[1] is chain_b[1] is load_der_certificate(root, "root")
    assert chain_a[0] is not chain_b[0]


def test_a_bytearray_key_is_copied_so_later_changes_do_not_reach_the_cache() -> None:
    der = _der()
    data = bytearray(der)
    cert = load_der_certificate(data, "bytearray")  # type: ignore[arg-type]  # callers may hand any buffer
    data[:] = b"\0" * len(data)
    assert load_der_certificate(_copy(der), "again") is cert
    error = _code(load_der_certificate, bytes(data), "zeroed")
    assert error.code == "CERT_MALFORMED"


def test_clearing_forgets_everything() -> None:
    der, crl = _der(), _crl()
    cert, parsed = load_der_certificate(der, "cert"), load_crl(crl)
    assert [info.entries for info in parse_cache_info()] == [1, 0, 1]
    clear_parse_caches()
    assert [(info.entries, info.hits, info.misses) for info in parse_cache_info()] == [(0, 0, 0)] * 3
    assert load_der_certificate(der, "cert") is not cert and load_der_certificate(der, "cert") == cert
    assert load_crl(crl) is not parsed


# --- failures are never kept --------------------------------------------------------------------------------------


def _pem_block(der: bytes) -> bytes:
    """A PEM block around any bytes (`cryptography` will not re-encode a malformed certificate)."""
    return b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    "mutation",
    [mutate.version, mutate.duplicate_extension, lambda der: mutate.bad_name(der, "subject")],
    ids=["version", "duplicate-extension", "bad-subject"],
)
def test_a_malformed_certificate_raises_the_same_error_every_time(mutation: Callable[[bytes], bytes]) -> None:
    bad = mutation(_der())
    for data in (bad, _pem_block(bad)):
        errors = [_code(load_certificate, _copy(data), "leaf") for _ in range(3)]
        assert errors[0].code == "CERT_MALFORMED" and errors[0].message == "leaf: not a valid X.509 certificate"
        assert len({(e.code, e.message, e.expected, e.actual) for e in errors}) == 1
    assert [_code(load_der_certificate, bad, "leaf").actual for _ in range(2)] == [errors[0].actual] * 2
    assert [info.entries for info in parse_cache_info()] == [0, 0, 0]


def test_a_bundle_with_a_malformed_certificate_raises_every_time_even_when_its_good_one_is_cached() -> None:
    good = _der("good")
    cert = load_der_certificate(good, "good")
    bundle = _pem(good) + _pem(mutate.duplicate_extension(_der("bad")))
    errors = [_code(load_pem_certificates, bundle, "bundle", max_count=4) for _ in range(3)]
    assert len({(e.code, e.message, e.actual) for e in errors}) == 1 and errors[0].code == "CERT_MALFORMED"
    assert parse_cache_info()[1].entries == 0  # the bundle is not kept
    assert load_pem_certificates(_pem(good), "good", max_count=1) == (cert,)


def test_a_malformed_crl_raises_the_same_error_every_time() -> None:
    bad = mutate.crl_duplicate_extension(_crl())
    errors = [_code(load_crl, _copy(bad), "PCK CRL") for _ in range(3)]
    assert len({(e.code, e.message, e.actual) for e in errors}) == 1 and errors[0].code == "CRL_MALFORMED"
    assert parse_cache_info()[2].entries == 0


# --- a cached CRL decides nothing ---------------------------------------------------------------------------------


def test_a_cached_crl_is_still_refused_past_next_update() -> None:
    issuer = load_der_certificate(_der(), "issuer")
    data = _crl(next_update=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    crl = load_crl(data)
    check_crl(crl, issuer, dt.datetime(2025, 2, 1, tzinfo=dt.UTC), AMD_ARK)
    cached = load_crl(_copy(data))
    assert cached is crl
    for at in (dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)):
        error = _code(check_crl, cached, issuer, at, AMD_ARK)
        assert error.code == "CRL_EXPIRED"


# --- bounds -------------------------------------------------------------------------------------------------------


def test_the_lru_evicts_the_least_recently_used_beyond_max_entries() -> None:
    cache: ContentCache[str] = ContentCache("test", max_entries=2, max_bytes=1 << 20)
    cache.put(b"a", "A")
    cache.put(b"b", "B")
    assert cache.get(b"a") == "A"  # now b is the least recently used
    cache.put(b"c", "C")
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == ("A", None, "C")
    assert len(cache) == 2
    info = cache.info()
    assert (info.hits, info.misses, info.entries, info.key_bytes) == (3, 1, 2, 2)


def test_the_lru_evicts_beyond_max_bytes_and_never_keeps_a_key_over_an_eighth_of_it() -> None:
    cache: ContentCache[int] = ContentCache("test", max_entries=100, max_bytes=800)
    for i in range(8):
        cache.put(bytes([i]) * 100, i)
    assert cache.info().key_bytes == 800 and len(cache) == 8
    cache.put(b"\xff" * 100, 8)
    assert cache.info().key_bytes == 800 and cache.get(b"\0" * 100) is None
    assert cache.put(b"\xfe" * 101, 9) == 9 and cache.get(b"\xfe" * 101) is None
    assert ContentCache[int]("off", max_entries=0, max_bytes=800).put(b"x", 1) == 1


def test_a_second_put_of_the_same_key_returns_the_first_value() -> None:
    cache: ContentCache[list[int]] = ContentCache("test", max_entries=4, max_bytes=1024)
    first: list[int] = []
    assert cache.put(b"k", first) is first
    assert cache.put(b"k", []) is first
    assert cache.info().key_bytes == 1


def test_the_certificate_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certs.CERTIFICATES, "max_entries", 2)
    ders = [_der(f"c{i}") for i in range(3)]
    loaded = [load_der_certificate(der, f"c{i}") for i, der in enumerate(ders)]
    assert len(certs.CERTIFICATES) == 2
    assert load_der_certificate(ders[2], "c2") is loaded[2]
    again = load_der_certificate(ders[0], "c0")  # evicted: decoded again, an equal new object
    assert again is not loaded[0] and again == loaded[0]
    assert len(certs.CERTIFICATES) == 2


def test_attacker_supplied_distinct_certificates_do_not_grow_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certs.CERTIFICATES, "max_entries", 16)
    for i in range(40):
        load_der_certificate(_der(f"attacker {i}"), "attacker")
    assert len(certs.CERTIFICATES) == 16
    assert certs.CERTIFICATES.info().key_bytes <= certs.CERTIFICATES.max_bytes


def test_the_default_bounds() -> None:
    assert (certs.CERTIFICATES.max_entries, certs.CERTIFICATES.max_bytes) == (1024, 512 * 1024)
    assert (certs.PEM_BUNDLES.max_entries, certs.PEM_BUNDLES.max_bytes) == (256, 512 * 1024)
    assert (certs.CRLS.max_entries, certs.CRLS.max_bytes) == (64, 2 * 1024 * 1024)


# --- threads ------------------------------------------------------------------------------------------------------


def _in_threads(work: Callable[[int], None], count: int = 8) -> None:
    """Run work(0..count-1) in `count` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def run(t: int) -> None:
        try:
            barrier.wait()
            work(t)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def test_threads_loading_the_same_bytes_at_once_all_get_one_object() -> None:
    der, bundle, crl = _der("leaf"), _pem(_der("a")) + _pem(_der("b")), _crl()
    results: list[tuple[object, ...]] = []

    def work(_: int) -> None:
        for _round in range(20):
            loaded = (
                load_der_certificate(_copy(der), "leaf"),
                load_pem_certificates(_copy(bundle), "bundle", max_count=2),
                load_crl(_copy(crl)),
            )
            results.append(loaded)  # list.append is atomic

    _in_threads(work)
    assert len(results) == 8 * 20
    for kind in range(3):
        assert len({id(loaded[kind]) for loaded in results}) == 1


def test_threads_churning_a_small_cache_always_get_the_right_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certs.CERTIFICATES, "max_entries", 8)
    monkeypatch.setattr(certs.PEM_BUNDLES, "max_entries", 2)
    shared = [_der(f"shared {i}") for i in range(4)]
    distinct = [[_der(f"thread {t} cert {i}") for i in range(6)] for t in range(8)]
    wrong: list[str] = []

    def work(t: int) -> None:
        for round_ in range(30):
            for der in (shared[round_ % 4], distinct[t][round_ % 6]):
                if load_der_certificate(_copy(der), "cert").public_bytes(Encoding.DER) != der:
                    wrong.append(f"thread {t} round {round_}")
            pem = _pem(shared[round_ % 4]) + _pem(distinct[t][round_ % 6])
            got = load_pem_certificates(pem, "bundle", max_count=2)
            if [c.public_bytes(Encoding.DER) for c in got] != [shared[round_ % 4], distinct[t][round_ % 6]]:
                wrong.append(f"thread {t} round {round_} bundle")
            assert len(certs.CERTIFICATES) <= 8 and len(certs.PEM_BUNDLES) <= 2

    _in_threads(work)
    assert not wrong
    assert len(certs.CERTIFICATES) <= 8 and certs.CERTIFICATES.info().hits > 0
