"""`compute_snp_measurement` (sev-snp-measure's Python API) equals the package's own `sev-snp-measure --mode snp`
CLI, on the real OVMF of Debian's `ovmf` package and on a small OVMF-shaped image with the SNP_KERNEL_HASHES
section (Debian's builds lack it: measured direct boot needs edk2's AmdSev build).

Without an OVMF file the real-firmware tests skip, unless VERIFIER_REQUIRE_OVMF=1 (then they fail).
VERIFIER_OVMF may name the file."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from verifier.errors import RequestError
from verifier.reference_values.snp_measure import SnpLaunch, compute_snp_measurement

CANDIDATES = ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF_CODE.fd")
CLI = Path(sys.executable).with_name("sev-snp-measure")
CMDLINE = "console=ttyS0 root=/dev/vda1 ro"


def real_ovmf() -> Path:
    chosen = os.environ.get("VERIFIER_OVMF")
    found = [Path(p) for p in ([chosen] if chosen else CANDIDATES) if Path(p).is_file()]
    if found:
        return found[0]
    message = (
        f"no OVMF firmware at {chosen or ', '.join(CANDIDATES)}: install Debian's `ovmf` package "
        "(apt-get install -y ovmf) to run the SEV-SNP measurement tests"
    )
    if os.environ.get("VERIFIER_REQUIRE_OVMF") == "1":
        pytest.fail(f"VERIFIER_REQUIRE_OVMF=1 but {message}", pytrace=False)
    pytest.skip(message)


def package_cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert CLI.is_file(), f"{CLI} missing: pip install sev-snp-measure"
    return subprocess.run([str(CLI), "--mode", "snp", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def boot_files(tmp_path: Path) -> tuple[Path, Path]:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"MZ" + bytes(range(256)) * 400)
    initrd.write_bytes(b"070701" + b"\x5a" * 50_000)
    return kernel, initrd


def fake_amdsev_ovmf(path: Path) -> Path:
    """A 256 KiB image with the OVMF footer table laid out as edk2's ResetVector writes it: the SEV-ES reset block,
    the SEV hash table location and the `ASEV` metadata (SEC_MEM, SECRETS, CPUID, SNP_KERNEL_HASHES)."""
    size = 256 * 1024
    image = bytearray(b"\xcc" * size)
    meta_offset = 0x1000  # from the end
    sections = [(0x800000, 0x9000, 1), (0x809000, 0x1000, 2), (0x80A000, 0x1000, 3), (0x80B000, 0x1000, 0x10)]
    header = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections))
    meta = header + b"".join(struct.pack("<III", *s) for s in sections)
    image[size - meta_offset : size - meta_offset + len(meta)] = meta

    def entry(data: bytes, guid: str) -> bytes:
        return data + struct.pack("<H", len(data) + 18) + uuid.UUID(guid).bytes_le

    table = (
        entry(struct.pack("<I", 0xFFFFF000), "00f771de-1a7e-4fcb-890e-68c77e2fb44e")  # SEV-ES reset block
        + entry(struct.pack("<II", 0x80B000, 0x1000), "7255371f-3a3b-4b04-927b-1da6efa8d454")  # hash table
        + entry(struct.pack("<I", meta_offset), "dc886566-984a-4798-a75e-5585a7bf67cc")  # SEV metadata
    )
    footer = struct.pack("<H", len(table) + 18) + uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
    end = size - 32
    image[end - len(footer) - len(table) : end] = table + footer
    path.write_bytes(bytes(image))
    return path


@pytest.mark.parametrize(
    ("vcpus", "vcpu_type", "vmm"), [(1, "EPYC-v4", "QEMU"), (4, "EPYC-Milan", "QEMU"), (2, "EPYC-v4", "ec2")]
)
def test_real_ovmf_firmware_only_matches_the_package_cli(vcpus: int, vcpu_type: str, vmm: str) -> None:
    ovmf = real_ovmf()
    ours = compute_snp_measurement(SnpLaunch(ovmf, vcpus, vcpu_type, vmm_type=vmm))
    theirs = package_cli("--ovmf", str(ovmf), "--vcpus", str(vcpus), "--vcpu-type", vcpu_type, "--vmm-type", vmm)
    assert theirs.returncode == 0, theirs.stderr
    assert len(ours) == 48 and ours.hex() == theirs.stdout.strip()


def test_real_ovmf_with_kernel_is_refused_like_the_package_cli(boot_files: tuple[Path, Path]) -> None:
    ovmf = real_ovmf()
    kernel, initrd = boot_files
    launch = SnpLaunch(ovmf, 2, "EPYC-v4", kernel=kernel, initrd=initrd, append=CMDLINE)
    theirs = package_cli(
        "--ovmf",
        str(ovmf),
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
        "--kernel",
        str(kernel),
        "--initrd",
        str(initrd),
        "--append",
        CMDLINE,
    )
    if theirs.returncode == 0:  # an AmdSev build (VERIFIER_OVMF): then both must compute the same value
        assert compute_snp_measurement(launch).hex() == theirs.stdout.strip()
        return
    assert "SNP_KERNEL_HASHES" in theirs.stderr
    with pytest.raises(RequestError) as caught:
        compute_snp_measurement(launch)
    assert caught.value.code == "SNP_OVMF_NO_KERNEL_HASHES"


@pytest.mark.parametrize("guest_features", [0x1, 0x21])
def test_kernel_initrd_cmdline_match_the_package_cli(
    tmp_path: Path, boot_files: tuple[Path, Path], guest_features: int
) -> None:
    ovmf = fake_amdsev_ovmf(tmp_path / "AMDSEV.fd")
    kernel, initrd = boot_files
    ours = compute_snp_measurement(
        SnpLaunch(ovmf, 4, "EPYC-v4", kernel=kernel, initrd=initrd, append=CMDLINE, guest_features=guest_features)
    )
    theirs = package_cli(
        "--ovmf",
        str(ovmf),
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-v4",
        "--kernel",
        str(kernel),
        "--initrd",
        str(initrd),
        "--append",
        CMDLINE,
        "--guest-features",
        hex(guest_features),
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.hex() == theirs.stdout.strip()
    other = compute_snp_measurement(
        SnpLaunch(
            ovmf, 4, "EPYC-v4", kernel=kernel, initrd=initrd, append=CMDLINE + " debug", guest_features=guest_features
        )
    )
    assert other != ours  # the command line is measured


@pytest.mark.parametrize(
    ("launch", "code"),
    [
        (SnpLaunch(Path("/nonexistent/OVMF.fd"), 1, "EPYC-v4"), "SNP_MEASURE_INPUT"),
        (SnpLaunch(Path(__file__), 0, "EPYC-v4"), "SNP_MEASURE_INPUT"),
        (SnpLaunch(Path(__file__), 1, "Pentium"), "SNP_MEASURE_INPUT"),
        (SnpLaunch(Path(__file__), 1, "EPYC-v4", vmm_type="xen"), "SNP_MEASURE_INPUT"),
        (SnpLaunch(Path(__file__), 1, "EPYC-v4", append="x"), "SNP_MEASURE_INPUT"),
        (SnpLaunch(Path(__file__), 1, "EPYC-v4"), "SNP_OVMF_UNSUPPORTED"),  # no SEV footer table
    ],
)
def test_bad_inputs_are_request_errors(launch: SnpLaunch, code: str) -> None:
    with pytest.raises(RequestError) as caught:
        compute_snp_measurement(launch)
    assert caught.value.code == code
