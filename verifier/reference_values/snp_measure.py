"""The expected SEV-SNP launch measurement (ATTESTATION_REPORT.MEASUREMENT) of a guest, computed with the
`sev-snp-measure` package's Python API (virtee/sev-snp-measure): OVMF pages, the SEV metadata sections (zero,
secrets, CPUID and, for a measured direct boot, the kernel/initrd/cmdline hashes page) and one VMSA per vCPU.

The OVMF must carry the SEV metadata (the `ASEV` table in its footer). A measured direct boot (`--kernel`) also
needs the SNP_KERNEL_HASHES section, which only edk2's AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc) has: Debian's
`ovmf` package (OVMF_CODE_4M.fd, OVMF_CODE.fd, /usr/share/ovmf/OVMF.fd) measures fine without a kernel but is
refused with a kernel (SNP_OVMF_NO_KERNEL_HASHES), by us and by the package's own CLI alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sevsnpmeasure import guest, sev_mode, vmm_types  # type: ignore[import-untyped]
from sevsnpmeasure import vcpu_types as cpu_types

from ..errors import RequestError

VMM_TYPES = ("QEMU", "ec2")


@dataclass(frozen=True)
class SnpLaunch:
    ovmf: Path
    vcpus: int
    vcpu_type: str
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    vmm_type: str = "QEMU"
    guest_features: int = 0x1


def known_vcpu_types() -> list[str]:
    return list(cpu_types.CPU_SIGS)


def compute_snp_measurement(launch: SnpLaunch) -> bytes:
    """The 48-byte launch digest. RequestError for unusable inputs (never a traceback)."""
    if launch.vcpus < 1:
        raise RequestError("SNP_MEASURE_INPUT", "--vcpus must be at least 1")
    if launch.vcpu_type not in cpu_types.CPU_SIGS:
        raise RequestError(
            "SNP_MEASURE_INPUT", f"unknown vCPU type {launch.vcpu_type!r}; one of " + ", ".join(cpu_types.CPU_SIGS)
        )
    if launch.vmm_type not in VMM_TYPES:
        raise RequestError("SNP_MEASURE_INPUT", f"unknown VMM type {launch.vmm_type!r}; one of {', '.join(VMM_TYPES)}")
    if (launch.initrd is not None or launch.append is not None) and launch.kernel is None:
        raise RequestError("SNP_MEASURE_INPUT", "--initrd and --append need --kernel")
    if not 0 <= launch.guest_features < 2**64:
        raise RequestError("SNP_MEASURE_INPUT", "--guest-features must fit in 64 bits")
    for path in (launch.ovmf, launch.kernel, launch.initrd):
        if path is not None and not path.is_file():
            raise RequestError("SNP_MEASURE_INPUT", f"{path} is not a readable file")
    size = launch.ovmf.stat().st_size
    if size == 0 or size % 4096 or size > 64 * 1024 * 1024:
        raise RequestError(
            "SNP_OVMF_UNSUPPORTED",
            f"{launch.ovmf} is not an OVMF image (size {size} is not a non-zero multiple of 4096 up to 64 MiB)",
        )
    try:
        digest = guest.calc_launch_digest(
            sev_mode.SevMode.SEV_SNP,
            launch.vcpus,
            cpu_types.CPU_SIGS[launch.vcpu_type],
            str(launch.ovmf),
            str(launch.kernel) if launch.kernel is not None else None,
            str(launch.initrd) if launch.initrd is not None else None,
            launch.append,
            launch.guest_features,
            "",
            vmm_types.VMMType[launch.vmm_type],
        )
    except RuntimeError as exc:
        message = str(exc)
        if "SNP_KERNEL_HASHES" in message:
            raise RequestError(
                "SNP_OVMF_NO_KERNEL_HASHES",
                f"{launch.ovmf} has no SNP_KERNEL_HASHES section: a measured direct boot (--kernel) needs an "
                "AmdSev OVMF build (OvmfPkg/AmdSev/AmdSevX64.dsc)",
            ) from None
        raise RequestError("SNP_OVMF_UNSUPPORTED", f"{launch.ovmf}: {message}") from None
    except (ValueError, OSError, AssertionError) as exc:
        raise RequestError("SNP_OVMF_UNSUPPORTED", f"{launch.ovmf}: {exc}") from None
    result = bytes(digest)
    if len(result) != 48:
        raise RequestError("SNP_OVMF_UNSUPPORTED", f"unexpected launch digest length {len(result)}")
    return result
