"""Intel PCS-shaped collateral for the fake Intel PKI (mixed into tests.fakes.intel_pki.FakeIntelPki).

- `sign_json(member, obj, signer_key=None)`: a file exactly as Intel PCS serves it,
  b'{"<member>":' + compact JSON of obj + b',"signature":"<hex r||s>"}'; the signature (ECDSA P-256 / SHA-256 by
  the TCB signing key unless `signer_key`, raw r||s hex) covers exactly the bytes of the member value.
- `tcb_info(tee_tcb_svn=..., status="UpToDate", **overrides)`: TDX TCB info v3 (id "TDX", version 3) whose first
  level matches the fake platform (PCK CPUSVN components, PCESVN, TEE_TCB_SVN) with `status`, then an
  "OutOfDate" level one step lower; module identity TDX_<TEE_TCB_SVN[1]:02x>. Overrides replace top-level keys.
- `qe_identity(isvsvn=4, status="UpToDate", **overrides)`: TD_QE identity v2 matching the fake QE report.
- `collateral_files(**overrides)`: the files of ../shared/vectors/tdx/* (tcb_info.json, qe_identity.json,
  tcb_info_issuer_chain.pem, qe_identity_issuer_chain.pem, pck_crl.der, pck_crl_issuer_chain.pem,
  root_ca_crl.der); an override is either a file name with replacement bytes (`**{"pck_crl.der": ...}`) or
  `tcb_info=` / `qe_identity=` with a dict to sign in place of the default.
- `collateral_signed_by(key, chain, **overrides)`: the same files with TCB info and QE identity signed by `key` and
  both issuer chains replaced by `chain` (certificates, leaf first): collateral forged by a key that is not the TCB
  Signing key (a PCK leaf, a PCK CA...).
- `source(files=None, label="cache")`: a `CollateralSource` (`FakeIntelSource`) serving those files (default
  `collateral_files()`) for this platform's FMSPC and PCK CA in the envelope `IntelPcs.fetch` produces; items
  whose file is absent are COLLATERAL_NOT_FOUND. `label` is the CollateralItem.source ("cache" for a cache hit,
  "pcs" for a vendor fetch).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.pcs_items import (
    envelope,
    next_update,
    pck_crl_key,
    qe_identity_key,
    root_ca_crl_key,
    tcb_info_key,
)

DAY = datetime.timedelta(days=1)
ZERO_MRSIGNER = "00" * 48


def _time(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _svns(values: Any) -> list[dict[str, int]]:
    return [{"svn": int(v)} for v in values]


class FakeIntelSource:
    """An in-memory Intel PCS / collateral cache: `fetch` answers the items it was given (see the module
    docstring) and records the cache ids asked for in `fetches`."""

    def __init__(self, files: dict[str, bytes], *, fmspc: bytes, ca: str, label: str = "cache") -> None:
        self.label = label
        self.fetches: list[str] = []
        self.items: dict[str, bytes] = {}
        for key, doc, chain in (
            (tcb_info_key(fmspc), "tcb_info.json", "tcb_info_issuer_chain.pem"),
            (qe_identity_key(), "qe_identity.json", "qe_identity_issuer_chain.pem"),
            (pck_crl_key(ca), "pck_crl.der", "pck_crl_issuer_chain.pem"),
            (root_ca_crl_key(), "root_ca_crl.der", ""),
        ):
            if doc in files:
                self.items[key.cache_id()] = envelope(key.kind, files[doc], files.get(chain, b"").decode())

    def fetch(self, key: CollateralKey, *, at: datetime.datetime) -> CollateralItem:
        self.fetches.append(key.cache_id())
        data = self.items.get(key.cache_id())
        if data is None:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", f"{key.cache_id()} is not served")
        return CollateralItem(
            key=key, data=data, fetched_at=at, next_update=next_update(key.kind, data), source=self.label
        )


class IntelCollateral:
    now: datetime.datetime
    fmspc: bytes
    ca_name: str
    pce_id: bytes
    pcesvn: int
    tcb_components: tuple[int, ...]
    tcb_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    pck_ca: x509.Certificate
    tcb_signing: x509.Certificate

    def pck_crl(self, revoked: Any = ()) -> bytes:
        raise NotImplementedError

    def root_ca_crl(self, revoked: Any = ()) -> bytes:
        raise NotImplementedError

    def source(self, files: dict[str, bytes] | None = None, *, label: str = "cache") -> FakeIntelSource:
        ca = "processor" if "Processor" in self.ca_name else "platform"
        return FakeIntelSource(
            self.collateral_files() if files is None else files, fmspc=self.fmspc, ca=ca, label=label
        )

    def collateral_signed_by(self, key: ec.EllipticCurvePrivateKey, chain: Any, **overrides: Any) -> dict[str, bytes]:
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
        tcb_info = overrides.pop("tcb_info", None) or self.tcb_info()
        qe_identity = overrides.pop("qe_identity", None) or self.qe_identity()
        return self.collateral_files(
            **{
                "tcb_info.json": self.sign_json("tcbInfo", tcb_info, key),
                "tcb_info_issuer_chain.pem": pem,
                "qe_identity.json": self.sign_json("enclaveIdentity", qe_identity, key),
                "qe_identity_issuer_chain.pem": pem,
            },
            **overrides,
        )

    def sign_json(
        self, member_name: str, obj: dict[str, Any], signer_key: ec.EllipticCurvePrivateKey | None = None
    ) -> bytes:
        body = json.dumps(obj, separators=(",", ":")).encode()
        r, s = decode_dss_signature((signer_key or self.tcb_key).sign(body, ec.ECDSA(hashes.SHA256())))
        signature = (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()
        return b'{"' + member_name.encode() + b'":' + body + b',"signature":"' + signature.encode() + b'"}'

    def _dates(self) -> dict[str, str]:
        return {"issueDate": _time(self.now - DAY), "nextUpdate": _time(self.now + 29 * DAY)}

    def tcb_info(
        self, tee_tcb_svn: bytes = bytes([3, 1, 2]) + bytes(13), status: str = "UpToDate", **overrides: Any
    ) -> dict[str, Any]:
        tdx = [tee_tcb_svn[0], 0, *tee_tcb_svn[2:]]  # [1] is the module major version, matched by identity
        lower = {
            "tcb": {"sgxtcbcomponents": _svns(max(c - 1, 0) for c in self.tcb_components),
                    "pcesvn": max(self.pcesvn - 1, 0), "tdxtcbcomponents": _svns(max(c - 1, 0) for c in tdx)},
            "tcbDate": _time(self.now - 400 * DAY), "tcbStatus": "OutOfDate", "advisoryIDs": ["INTEL-SA-00837"],
        }  # fmt: skip
        module = {"mrsigner": ZERO_MRSIGNER, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"}
        info: dict[str, Any] = {
            "id": "TDX", "version": 3, **self._dates(), "fmspc": self.fmspc.hex().upper(),
            "pceId": self.pce_id.hex().upper(), "tcbType": 0, "tcbEvaluationDataNumber": 17, "tdxModule": module,
            "tdxModuleIdentities": [{
                "id": f"TDX_{tee_tcb_svn[1]:02X}", **module,
                "tcbLevels": [{"tcb": {"isvsvn": tee_tcb_svn[0]}, "tcbDate": _time(self.now - 100 * DAY),
                               "tcbStatus": "UpToDate"}],
            }],
            "tcbLevels": [
                {"tcb": {"sgxtcbcomponents": _svns(self.tcb_components), "pcesvn": self.pcesvn,
                         "tdxtcbcomponents": _svns(tdx)},
                 "tcbDate": _time(self.now - 100 * DAY), "tcbStatus": status,
                 **({} if status == "UpToDate" else {"advisoryIDs": ["INTEL-SA-01036"]})},
                lower,
            ],
        }  # fmt: skip
        return info | overrides

    def qe_identity(self, isvsvn: int = 4, status: str = "UpToDate", **overrides: Any) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "id": "TD_QE", "version": 2, **self._dates(), "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": "DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5", "isvprodid": 2,
            "tcbLevels": [
                {"tcb": {"isvsvn": isvsvn}, "tcbDate": _time(self.now - 100 * DAY), "tcbStatus": status},
                {"tcb": {"isvsvn": max(isvsvn - 2, 0)}, "tcbDate": _time(self.now - 400 * DAY),
                 "tcbStatus": "OutOfDate", "advisoryIDs": ["INTEL-SA-00837"]},
            ],
        }  # fmt: skip
        return identity | overrides

    def collateral_files(self, **overrides: Any) -> dict[str, bytes]:
        def pem(*certs: x509.Certificate) -> bytes:
            return b"".join(c.public_bytes(Encoding.PEM) for c in certs)

        tcb_info = overrides.pop("tcb_info", None) or self.tcb_info()
        qe_identity = overrides.pop("qe_identity", None) or self.qe_identity()
        files = {
            "tcb_info.json": self.sign_json("tcbInfo", tcb_info),
            "tcb_info_issuer_chain.pem": pem(self.tcb_signing, self.root),
            "qe_identity.json": self.sign_json("enclaveIdentity", qe_identity),
            "qe_identity_issuer_chain.pem": pem(self.tcb_signing, self.root),
            "pck_crl.der": self.pck_crl(),
            "pck_crl_issuer_chain.pem": pem(self.pck_ca, self.root),
            "root_ca_crl.der": self.root_ca_crl(),
        }
        unknown = set(overrides) - set(files)
        if unknown:
            raise TypeError(f"unknown collateral files: {sorted(unknown)}")
        return files | overrides
