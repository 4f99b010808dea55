"""The QE's SGX REPORT body (384 bytes; Intel SGX SDM vol. 3D "REPORT", the `EnclaveReport` of the DCAP quote
format). All integers little-endian.

Reserved ranges are recorded, not rejected: go-tdx-guest abi/abi.go `enclaveReportToProto` copies Reserved1..4
without checking them, and the QE report is authenticated by the PCK signature and compared with the QE identity,
so an unknown non-zero reserved byte is a fact for appraisal rather than a parse failure (`reserved_nonzero`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from verifier.errors import ParseError

ENCLAVE_REPORT_SIZE = 384
RESERVED_RANGES = ((20, 48), (96, 128), (160, 256), (260, 320))
ATTRIBUTES_DEBUG = 1 << 1  # SECS.ATTRIBUTES.DEBUG (SDM "ATTRIBUTES": bit 0 INIT, bit 1 DEBUG, bit 2 MODE64BIT)


@dataclass(frozen=True)
class EnclaveReport:
    cpusvn: bytes  # 0..15
    miscselect: int  # u32 at 16
    attributes: bytes  # 48..63: flags u64 then XFRM u64
    mrenclave: bytes  # 64..95
    mrsigner: bytes  # 128..159
    isvprodid: int  # u16 at 256
    isvsvn: int  # u16 at 258
    report_data: bytes  # 320..383
    raw: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG: a debug enclave (a production QE never has it)."""
        return bool(int.from_bytes(self.attributes[:8], "little") & ATTRIBUTES_DEBUG)

    @property
    def reserved_nonzero(self) -> tuple[int, ...]:
        """Offsets of the non-zero bytes in the reserved ranges (empty for every Intel QE seen so far)."""
        return tuple(i for start, end in RESERVED_RANGES for i in range(start, end) if self.raw[i])


def parse_enclave_report(raw: bytes) -> EnclaveReport:
    """Parse a 384-byte REPORT body. Raises ParseError TDX_QE_REPORT_INVALID for any other length."""
    if len(raw) != ENCLAVE_REPORT_SIZE:
        raise ParseError(
            "TDX_QE_REPORT_INVALID",
            "an SGX REPORT body is 384 bytes",
            expected=str(ENCLAVE_REPORT_SIZE),
            actual=str(len(raw)),
        )
    raw = bytes(raw)
    (miscselect,) = struct.unpack_from("<I", raw, 16)
    isvprodid, isvsvn = struct.unpack_from("<HH", raw, 256)
    return EnclaveReport(
        cpusvn=raw[0:16],
        miscselect=int(miscselect),
        attributes=raw[48:64],
        mrenclave=raw[64:96],
        mrsigner=raw[128:160],
        isvprodid=int(isvprodid),
        isvsvn=int(isvsvn),
        report_data=raw[320:384],
        raw=raw,
    )
