"""Claims extracted from a verified Nitro attestation document (values as hex text, for findings and EAR)."""

from __future__ import annotations

import datetime

from verifier.tee.nitro.document import AttestationDocument

DEBUG_PCRS = (0, 1, 2)  # a debug-mode enclave reports PCR0, PCR1 and PCR2 as all zero bytes


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def timestamp_utc(timestamp_ms: int) -> str:
    """RFC 3339 with milliseconds and a Z suffix, e.g. 2024-09-07T14:37:39.545Z."""
    seconds, millis = divmod(timestamp_ms, 1000)
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    # isoformat (in C) always writes a four-digit year, so its first 19 characters are YYYY-MM-DDTHH:MM:SS; faster
    # than strftime, which this function called on every Nitro appraisal.
    return f"{when.isoformat(timespec='seconds')[:19]}.{millis:03d}Z"


def is_debug_mode(doc: AttestationDocument) -> bool:
    """True when PCR0, PCR1 and PCR2 are present and all zero bytes, as a debug-mode enclave reports them (AWS Nitro
    Enclaves user guide, "Where to get an enclave's measurements"). Never raises."""
    values = [doc.pcr(i) for i in DEBUG_PCRS]
    return all(v is not None and not any(v) for v in values)


def claims(doc: AttestationDocument) -> dict[str, object]:
    """The claims of a document (attestation_process.md section 3.1): bytes as lowercase hex (None when absent),
    PCRs by index, the timestamp also as RFC 3339 UTC, and `debug_mode`. Never raises for a parsed document."""
    return {
        "module_id": doc.module_id,
        "digest": doc.digest,
        "timestamp": doc.timestamp_ms,
        "timestamp_utc": timestamp_utc(doc.timestamp_ms),
        "pcrs": dict(doc.pcr_hex),
        "nonce": _hex(doc.nonce),
        "user_data": _hex(doc.user_data),
        "public_key": _hex(doc.public_key),
        "debug_mode": is_debug_mode(doc),
    }
