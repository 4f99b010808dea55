"""NVIDIA GPU (Hopper, Blackwell) attestation reports: the SPDM 1.1 GET_MEASUREMENTS request and MEASUREMENTS
response (`spdm`, `opaque`), the device certificate chain's FWID (`fwid`), verification behind the TEE seam
(`verify`), the typed facts for the appraiser (`facts`) and the claims (`claims`)."""
