"""A fake AMD KDS on loopback: recorded responses per path, scripted failures, and request counters.

Usage::

    with FakeKds() as kds:                       # or the `kds_server` fixture
        kds.serve("/vcek/v1/Milan/cert_chain", Reply(body=pem))
        kds.serve("/vcek/v1/Milan/crl", Reply(429, headers={"Retry-After": "1"}), Reply(body=der))
        AmdKds(kds.url).fetch(...)
        assert kds.count("/vcek/v1/Milan/crl") == 2

`serve(target, *replies)` scripts one target: replies are used in order and the last repeats. A target with a
query string ("/vcek/v1/Milan/<hwid>?blSPL=2&...") must match exactly; a bare path matches any query. Unknown
targets answer 404. `Reply(delay=s)` sleeps before answering (released on shutdown), `send_length=False` sends
the body without Content-Length (close-delimited). `add_amd_vectors` serves the real VCEKs and cert chains of the
shared vectors at URLs built here from MANIFEST facts, independently of the client code.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    send_length: bool = True


NOT_FOUND = Reply(404, b"Not Found")


class FakeKds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._counts: Counter[str] = Counter()
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-kds", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, target: str, *replies: Reply) -> None:
        if not replies:
            raise ValueError("at least one reply")
        with self._lock:
            self._scripts[target] = list(replies)

    def count(self, path: str) -> int:
        """Requests received for `path` (query string ignored)."""
        with self._lock:
            return self._counts[path]

    def start(self) -> FakeKds:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeKds:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _next_reply(self, target: str) -> Reply:
        path = urllib.parse.urlsplit(target).path
        with self._lock:
            self._counts[path] += 1
            self.requests.append(target)
            script = self._scripts.get(target) or self._scripts.get(path)
            if not script:
                return NOT_FOUND
            return script.pop(0) if len(script) > 1 else script[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reply = fake._next_reply(self.path)
                if reply.delay and fake._stop.wait(reply.delay):
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.send_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def add_amd_vectors(self, vectors_dir: Path, trust_anchors_dir: Path) -> dict[str, str]:
        """Serve each SNP VCEK vector at its KDS URL and every product's cert chains; returns {vector id: target}."""
        manifest = json.loads((vectors_dir / "MANIFEST.json").read_text())
        targets: dict[str, str] = {}
        for vector in manifest["vectors"]:
            folder = vectors_dir / vector["dir"]
            if vector["tee"] != "snp" or not (folder / "vcek.der").is_file() or "chip_id" not in vector["facts"]:
                continue
            product = vector["what"]["processor_family"]
            chip_id = bytes.fromhex(vector["facts"]["chip_id"])
            tcb = vector["facts"]["reported_tcb"]
            hwid = chip_id[:8] if product == "Turin" else chip_id
            query = "&".join(
                ([f"fmcSPL={tcb['fmc']}"] if product == "Turin" else [])
                + [
                    f"blSPL={tcb['bootloader']}",
                    f"teeSPL={tcb['tee']}",
                    f"snpSPL={tcb['snp']}",
                    f"ucodeSPL={tcb['microcode']}",
                ]
            )
            target = f"/vcek/v1/{product}/{hwid.hex()}?{query}"
            self.serve(
                target,
                Reply(body=(folder / "vcek.der").read_bytes(), headers={"Content-Type": "application/pkix-cert"}),
            )
            targets[vector["id"]] = target
        for chain in sorted((trust_anchors_dir / "amd").glob("cert_chain_*_*.pem")):
            _, _, product, signer = chain.stem.split("_")
            self.serve(
                f"/{signer}/v1/{product.capitalize()}/cert_chain",
                Reply(body=chain.read_bytes(), headers={"Content-Type": "application/x-pem-file"}),
            )
        return targets


def make_crl(
    next_update: dt.datetime | None, *, this_update: dt.datetime | None = None, number: int | None = None
) -> bytes:
    """A DER CRL signed by a throwaway RSA key (only parsing matters to the client), with the cRLNumber `number`
    when given. cryptography's builder cannot omit nextUpdate (optional in RFC 5280), so that case is built with
    asn1crypto and a zero signature."""
    this_update = this_update or (next_update or dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) - dt.timedelta(days=7)
    if next_update is None:
        algorithm = {"algorithm": "sha384_rsa"}
        tbs = asn1_crl.TbsCertList(
            {
                "version": "v2",
                "signature": algorithm,
                "issuer": asn1_x509.Name.build({"common_name": "throwaway ARK"}),
                "this_update": asn1_x509.Time({"utc_time": this_update}),
            }
        )
        return bytes(
            asn1_crl.CertificateList(
                {"tbs_cert_list": tbs, "signature_algorithm": algorithm, "signature": b"\x00" * 256}
            ).dump()
        )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway ARK")])
    builder = x509.CertificateRevocationListBuilder().issuer_name(name).last_update(this_update)
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    return builder.next_update(next_update).sign(key, hashes.SHA384()).public_bytes(Encoding.DER)


@pytest.fixture(name="kds_server")
def kds_server_fixture() -> Iterator[FakeKds]:
    """A started FakeKds (import `kds_server_fixture` or `kds_server` into a test module to use it)."""
    with FakeKds() as kds:
        yield kds


kds_server = kds_server_fixture
