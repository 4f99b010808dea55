"""How evidence binds to a challenge nonce and to the workload's runtime data (its public key).

Nitro (aws-nitro-enclaves-nsm-api attestation_process.md 2.2.2): the document's `nonce` equals the nonce and its
`public_key` equals the runtime data. SEV-SNP and TDX carry 64 bytes of REPORT_DATA: by default
REPORT_DATA = SHA-512(nonce || runtime_data); a policy may choose "raw": the nonce itself, zero-padded.

Composite evidence (one SEV-SNP or TDX report with the reports of the N GPUs its CVM drives, verifier.composite):
every GPU report's SPDM request nonce (bytes 4..35, signed by the GPU) must equal the request's challenge nonce (32
bytes; freshness: a GPU report of another session carries another nonce: GPU_NONCE_MISMATCH naming the GPU), and the
CPU report's REPORT_DATA must equal `composite_report_data`: SHA-512("tee-verifier/composite/v1" || nonce || N (one
byte) || SHA-384(gpu_report_0) || ... || SHA-384(gpu_report_{N-1}) || runtime_data), the GPU reports in request
order (binding to this TEE: only code inside the CVM sets REPORT_DATA, so a GPU report from another machine, even
one made for the same nonce, cannot be spliced in: COMPOSITE_BINDING_MISMATCH). The encoding is unambiguous: the
nonce is the verifier's, N sits at a fixed offset, the digests have a fixed length and the variable runtime data
comes last, so no split of the same bytes into other runtime data and fewer GPUs hashes alike (with runtime data
before the digests, a leading GPU's digest could be moved into the runtime data and that GPU dropped from the
request); the tag separates it from the one-report rule. With N = 0 it is the SHA-512 rule above; "raw" binding
cannot commit GPU reports."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol

from .model import CONTRAINDICATED, Claim, Finding

REPORT_DATA_BYTES = 64


def expected_report_data(nonce: bytes, runtime_data: bytes | None, mode: str) -> bytes:
    """The 64 bytes REPORT_DATA must hold: SHA-512(nonce || runtime_data) for mode "sha512" (the default), else the
    nonce zero-padded ("raw"). Raises ValueError (no error code: a caller bug) for a raw nonce over 64 bytes."""
    if mode == "raw":
        if len(nonce) > REPORT_DATA_BYTES:
            raise ValueError("a raw nonce must fit in REPORT_DATA (64 bytes)")
        return nonce.ljust(REPORT_DATA_BYTES, b"\0")
    return hashlib.sha512(nonce + (runtime_data or b"")).digest()


COMPOSITE_TAG = b"tee-verifier/composite/v1"
MAX_COMPOSITE_GPUS = 255  # N is one byte (verifier.requests bounds a request far lower)


def composite_report_data(nonce: bytes | None, runtime_data: bytes | None, gpu_reports: Sequence[bytes]) -> bytes:
    """The 64 bytes REPORT_DATA of a composite request must hold (module docstring): with N = len(gpu_reports) > 0,
    SHA-512(COMPOSITE_TAG || nonce || N || SHA-384(gpu_report_0) || ... || SHA-384(gpu_report_{N-1}) ||
    runtime_data), absent values empty; with N = 0 the one-report rule SHA-512(nonce || runtime_data). Raises
    ValueError (a caller bug, no code) for more than MAX_COMPOSITE_GPUS reports."""
    if not gpu_reports:
        return hashlib.sha512((nonce or b"") + (runtime_data or b"")).digest()
    if len(gpu_reports) > MAX_COMPOSITE_GPUS:
        raise ValueError("at most 255 GPU reports fit the composite binding")
    digests = b"".join(hashlib.sha384(report).digest() for report in gpu_reports)
    body = COMPOSITE_TAG + (nonce or b"") + bytes([len(gpu_reports)]) + digests + (runtime_data or b"")
    return hashlib.sha512(body).digest()


class BindingRule(Protocol):
    """How one scheme's evidence binds a nonce and the workload's runtime data (`verifier.appraisal.scheme`)."""

    def check(
        self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes | None, mode: str
    ) -> list[Finding]:
        """Findings for a binding that does not hold (empty when it holds or nothing is asked)."""
        ...

    def covers_key(self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes, mode: str) -> bool:
        """Whether the signed evidence itself covers `runtime_data` (the workload key), so a `cnf` may name it.
        Asked positively (a proof of coverage), never inferred from the absence of a mismatch finding."""
        ...

    def evidence_key(self, claims: Mapping[str, object]) -> bytes | None:
        """The key the signed evidence itself carries for the workload, if any (the `cnf` without runtime data)."""
        ...


class DocumentBinding:
    """Nitro: the NSM-signed document's `nonce` equals the nonce and its `public_key` the runtime data (the
    policy's REPORT_DATA mode does not apply)."""

    def check(
        self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes | None, mode: str
    ) -> list[Finding]:
        """Findings NONCE_MISMATCH / RUNTIME_DATA_MISMATCH when the document's `nonce` / `public_key` differ from the
        request's (attestation_process.md 2.2.2); `mode` is ignored. Never raises: a mismatch is a finding."""
        findings: list[Finding] = []
        carried = claims.get("nonce")
        if nonce is not None and carried != nonce.hex():
            findings.append(
                identity_finding(
                    "NONCE_MISMATCH",
                    "the evidence does not carry the request's nonce",
                    nonce.hex(),
                    str(carried or "absent"),
                )
            )
        if runtime_data is not None and claims.get("public_key") != runtime_data.hex():
            findings.append(
                identity_finding(
                    "RUNTIME_DATA_MISMATCH",
                    "the evidence does not carry the request's runtime data",
                    runtime_data.hex(),
                    str(claims.get("public_key") or "absent"),
                )
            )
        return findings

    def covers_key(self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes, mode: str) -> bool:
        """True when `runtime_data` is non-empty and equals the NSM-signed document's `public_key`. Never raises."""
        return bool(runtime_data) and claims.get("public_key") == runtime_data.hex()

    def evidence_key(self, claims: Mapping[str, object]) -> bytes | None:
        """The document's `public_key` as bytes, or None when the document carries none. Raises ValueError only for a
        `public_key` claim that is not hex (the Nitro claims always are)."""
        key = claims.get("public_key")
        return bytes.fromhex(key) if isinstance(key, str) and key else None


class ReportDataBinding:
    """SEV-SNP / TDX: 64 bytes of REPORT_DATA, SHA-512(nonce || runtime_data) or ("raw") the zero-padded nonce.
    Only the "sha512" mode covers a key: "raw" carries the nonce alone, so anyone holding the workload's evidence
    for a live challenge could pair it with a key of their own."""

    def check(
        self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes | None, mode: str
    ) -> list[Finding]:
        """Findings REPORT_DATA_MISMATCH (REPORT_DATA is not `expected_report_data`) and, in "raw" mode,
        RUNTIME_DATA_NOT_BOUND (runtime data given) or NONCE_MISMATCH (a nonce over 64 bytes). Never raises."""
        findings: list[Finding] = []
        if mode == "raw":
            if runtime_data is not None:
                findings.append(
                    identity_finding(
                        "RUNTIME_DATA_NOT_BOUND",
                        "raw REPORT_DATA binding carries only the nonce; the runtime data cannot be bound",
                        "no runtime data",
                        runtime_data.hex(),
                    )
                )
            if nonce is None:
                return findings
            if len(nonce) > REPORT_DATA_BYTES:
                return [
                    *findings,
                    identity_finding(
                        "NONCE_MISMATCH",
                        "a raw nonce longer than REPORT_DATA cannot be bound",
                        f"<= {REPORT_DATA_BYTES} bytes",
                        f"{len(nonce)} bytes",
                    ),
                ]
        want = expected_report_data(nonce or b"", runtime_data, mode).hex()
        actual = str(claims.get("report_data") or "")
        if actual != want:
            how = "SHA-512(nonce || runtime_data)" if mode == "sha512" else "the zero-padded nonce"
            findings.append(
                identity_finding("REPORT_DATA_MISMATCH", f"REPORT_DATA is not {how}", want, actual or "absent")
            )
        return findings

    def covers_key(self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes, mode: str) -> bool:
        """True only in "sha512" mode with non-empty `runtime_data` and REPORT_DATA = SHA-512(nonce || runtime_data);
        "raw" never covers a key. Never raises."""
        if not runtime_data or mode != "sha512":
            return False
        return claims.get("report_data") == expected_report_data(nonce or b"", runtime_data, mode).hex()

    def evidence_key(self, claims: Mapping[str, object]) -> bytes | None:
        """Always None: SNP and TDX REPORT_DATA is a digest, it carries no key of its own."""
        return None


def check_binding(
    rule: BindingRule, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes | None, mode: str
) -> list[Finding]:
    """Findings for a nonce / runtime-data binding that does not hold (empty when it holds or nothing is asked).
    `rule`: the scheme's rule (`Scheme.binding`; the caller looks the scheme up, this module knows no registry). The
    built-in rules never raise: a binding that does not hold is a finding."""
    if nonce is None and runtime_data is None:
        return []
    return rule.check(claims, nonce, runtime_data, mode)


def key_is_bound(
    rule: BindingRule, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes, mode: str
) -> bool:
    """Whether the signed evidence itself covers `runtime_data` under `rule` (`BindingRule.covers_key`); False for
    empty runtime data. `rule` as for `check_binding` (the built-in rules never raise)."""
    if not runtime_data:
        return False
    return rule.covers_key(claims, nonce, runtime_data, mode)


def identity_finding(code: str, message: str, expected: str, actual: str) -> Finding:
    """A freshness or binding finding: instance identity, contraindicated (the one builder for the service's and
    the binding rules' findings of this kind). Never raises."""
    return Finding(
        code=code,
        claim=Claim.INSTANCE_IDENTITY,
        value=CONTRAINDICATED,
        message=message,
        expected=expected,
        actual=actual,
    )
