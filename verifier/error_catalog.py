"""The catalog of stable error codes: every code a `VerifierError` is raised with in verifier/, its `ErrorKind`
and, for an evidence code, the AR4SI claim and value its finding carries (draft-ietf-rats-ar4si section 2.3).

The one place a code gets its kind and tier: the service reads the finding of evidence that failed parsing or
verification from here (`code_info`), never from the code's spelling. A code missing here is a failed
cryptographic check (instance-identity 99); tests/unit/test_error_catalog.py scans the source for every raised code
and fails on a missing or dead entry, or on a kind that is not the raising class's. Claims and values are plain
strings and ints (those of `verifier.appraisal.model.Claim` and its value constants) so that this module, like
`verifier.errors`, imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .errors import ErrorKind

# AR4SI claims and values (verifier.appraisal.model: Claim, CONTRAINDICATED, NOT_RECOGNIZED, CRYPTO_FAILED).
INSTANCE_IDENTITY: Final = "instance-identity"
HARDWARE: Final = "hardware"
CONTRAINDICATED: Final = 96  # recognized but contraindicated (revoked, an unsupported TCB)
NOT_RECOGNIZED: Final = 97  # not recognized although it should be (no pinned root)
CRYPTO_FAILED: Final = 99  # cryptographic validation of the evidence failed (also: malformed evidence)


@dataclass(frozen=True)
class CodeInfo:
    """What a stable code means to the service. `claim` and `value` are set exactly for EVIDENCE codes; `also`
    names the other kinds a code is raised with at some sites (an inconsistency kept as it is, not a new rule)."""

    kind: ErrorKind
    claim: str | None = None
    value: int | None = None
    also: tuple[ErrorKind, ...] = ()


_CRYPTO = CodeInfo(ErrorKind.EVIDENCE, INSTANCE_IDENTITY, CRYPTO_FAILED)
_NOT_RECOGNIZED = CodeInfo(ErrorKind.EVIDENCE, INSTANCE_IDENTITY, NOT_RECOGNIZED)
_REVOKED = CodeInfo(ErrorKind.EVIDENCE, INSTANCE_IDENTITY, CONTRAINDICATED)
_TCB = CodeInfo(ErrorKind.EVIDENCE, HARDWARE, CONTRAINDICATED)
_REQUEST = CodeInfo(ErrorKind.REQUEST)
_NOT_FOUND = CodeInfo(ErrorKind.NOT_FOUND)
_UNAVAILABLE = CodeInfo(ErrorKind.UNAVAILABLE)
_AUTH = CodeInfo(ErrorKind.AUTH)
_PERMISSION = CodeInfo(ErrorKind.PERMISSION)
_OVERLOADED = CodeInfo(ErrorKind.OVERLOADED)
_INTERNAL = CodeInfo(ErrorKind.INTERNAL)

# Codes "built dynamically" are passed through a constant, a variable or a helper's parameter rather than written
# at the raise (the test follows them; the comment says where they come from).
_CODES: dict[str, CodeInfo] = {
    # --- EVIDENCE: ParseError, EvidenceError (and the client's ResultError TOKEN_*, the audit NoteError NOTE_* /
    # CHECKPOINT_*, which never reach an appraisal: they keep the default tier) --------------------------------
    "CERT_EXPIRED": _CRYPTO,
    "CERT_MALFORMED": _CRYPTO,
    "CERT_NOT_YET_VALID": _CRYPTO,
    "CHAIN_CONSTRAINTS": _CRYPTO,
    "CHAIN_NAME_MISMATCH": _CRYPTO,
    "CHAIN_ROOT_UNTRUSTED": _NOT_RECOGNIZED,  # the chain ends at no pinned root: 97, not recognized
    "CHAIN_SIGNATURE_INVALID": _CRYPTO,
    "CHECKPOINT_MALFORMED": _CRYPTO,
    "CRL_EXPIRED": _CRYPTO,
    "CRL_ISSUER_MISMATCH": _CRYPTO,
    "CRL_MALFORMED": _CRYPTO,
    "CRL_NOT_YET_VALID": _CRYPTO,
    "CRL_SIGNATURE_INVALID": _CRYPTO,
    "GPU_CERT_CHAIN_LENGTH": _CRYPTO,  # NVIDIA GPU SPDM report and device chain (tee/gpu/)
    "GPU_CERT_CHAIN_MISSING": _CRYPTO,
    "GPU_CERT_REVOKED": _REVOKED,  # recognized, revoked: 96
    "GPU_FWID_EXTENSION_INVALID": _CRYPTO,
    "GPU_FWID_EXTENSION_MISSING": _CRYPTO,
    "GPU_FWID_MISMATCH": _CRYPTO,
    "GPU_KEY_TYPE": _CRYPTO,
    "GPU_MEASUREMENT_BLOCKS_NONE": _CRYPTO,
    "GPU_MEASUREMENT_INDEX_INVALID": _CRYPTO,
    "GPU_MEASUREMENT_RECORD_INVALID": _CRYPTO,
    "GPU_MEASUREMENT_SPEC_UNSUPPORTED": _CRYPTO,
    "GPU_OPAQUE_EMPTY": _CRYPTO,
    "GPU_OPAQUE_FIELD_INVALID": _CRYPTO,
    "GPU_OPAQUE_FIELD_MISSING": _CRYPTO,
    "GPU_OPAQUE_MALFORMED": _CRYPTO,
    "GPU_OPAQUE_TYPE_DUPLICATE": _CRYPTO,
    "GPU_OPAQUE_TYPE_UNKNOWN": _CRYPTO,
    "GPU_REPORT_TOO_LARGE": _CRYPTO,
    "GPU_REPORT_TRAILING_BYTES": _CRYPTO,
    "GPU_REPORT_TRUNCATED": _CRYPTO,
    "GPU_REQUEST_INVALID": _CRYPTO,
    "GPU_SIGNATURE_INVALID": _CRYPTO,
    "GPU_SPDM_CODE_INVALID": _CRYPTO,
    "GPU_SPDM_VERSION_UNSUPPORTED": _CRYPTO,
    "GPU_RIM_CHAIN_INVALID": _CRYPTO,  # NVIDIA RIM signing chain (tee/gpu/rim_verify.py)
    "GPU_RIM_MALFORMED": _CRYPTO,
    "GPU_RIM_SIGNATURE_INVALID": _CRYPTO,
    "GPU_RIM_TOO_LARGE": _CRYPTO,
    "NITRO_ALG_UNSUPPORTED": _CRYPTO,
    "NITRO_CABUNDLE_INVALID": _CRYPTO,
    "NITRO_CBOR_DUPLICATE_KEY": _CRYPTO,
    "NITRO_CBOR_INVALID": _CRYPTO,
    "NITRO_CBOR_KEY_TYPE": _CRYPTO,  # built dynamically: strict_cbor _Reader._fail(code)
    "NITRO_CBOR_NOT_PREFERRED": _CRYPTO,
    "NITRO_CBOR_TRUNCATED": _CRYPTO,
    "NITRO_CBOR_UNSUPPORTED": _CRYPTO,  # built dynamically: strict_cbor _Reader._fail(code)
    "NITRO_COSE_CRIT_MALFORMED": _CRYPTO,
    "NITRO_COSE_CRIT_UNSUPPORTED": _CRYPTO,
    "NITRO_COSE_MALFORMED": _CRYPTO,
    "NITRO_COSE_TAG": _CRYPTO,
    "NITRO_COSE_UNPROTECTED_NOT_EMPTY": _CRYPTO,
    "NITRO_DIGEST_UNSUPPORTED": _CRYPTO,
    "NITRO_EVIDENCE_TOO_LARGE": _CRYPTO,
    "NITRO_FIELD_MISSING": _CRYPTO,
    "NITRO_FIELD_TOO_LARGE": _CRYPTO,
    "NITRO_FIELD_TYPE": _CRYPTO,
    "NITRO_FIELD_UNKNOWN": _CRYPTO,
    "NITRO_KEY_TYPE": _CRYPTO,
    "NITRO_PAYLOAD_MALFORMED": _CRYPTO,
    "NITRO_PCR_INDEX": _CRYPTO,
    "NITRO_PCR_LENGTH": _CRYPTO,
    "NITRO_SIGNATURE_INVALID": _CRYPTO,
    "NITRO_SIGNATURE_LENGTH": _CRYPTO,
    "NITRO_TRAILING_BYTES": _CRYPTO,
    "NOTE_MALFORMED": _CRYPTO,
    "NOTE_SIGNATURE_INVALID": _CRYPTO,
    "NOTE_UNKNOWN_KEY": _CRYPTO,
    "SNP_CERT_DUPLICATE": _CRYPTO,
    "SNP_CERT_EXTENSION_INVALID": _CRYPTO,
    "SNP_CERT_REVOKED": _REVOKED,  # recognized, revoked: 96
    "SNP_CERT_TABLE_INVALID": _CRYPTO,
    "SNP_CERT_TABLE_TRUNCATED": _CRYPTO,
    "SNP_CERT_UNKNOWN": _CRYPTO,
    "SNP_CHIP_ID_MISMATCH": _CRYPTO,
    "SNP_INTERMEDIATE_MISSING": _CRYPTO,
    "SNP_KEY_TYPE": _CRYPTO,
    "SNP_PLATFORM_INFO_INVALID": _CRYPTO,
    "SNP_POLICY_INVALID": _CRYPTO,
    "SNP_PRODUCT_MISMATCH": _CRYPTO,
    "SNP_PRODUCT_UNKNOWN": _CRYPTO,
    "SNP_REPORT_LENGTH": _CRYPTO,  # built dynamically: abi.parse_report: a conditional code
    "SNP_REPORT_TRUNCATED": _CRYPTO,  # built dynamically: abi.parse_report: a conditional code
    "SNP_REPORT_VERSION_UNSUPPORTED": _CRYPTO,
    "SNP_RESERVED_NONZERO": _CRYPTO,
    "SNP_SIGNATURE_ALGO_UNSUPPORTED": _CRYPTO,
    "SNP_SIGNATURE_INVALID": _CRYPTO,
    "SNP_SIGNER_CERT_MISSING": _CRYPTO,
    "SNP_SIGNER_CHAIN_MISMATCH": _CRYPTO,
    "SNP_SIGNING_KEY_NONE": _CRYPTO,
    "SNP_SIGNING_KEY_UNKNOWN": _CRYPTO,
    "SNP_TCB_INVALID": _CRYPTO,
    "SNP_TCB_MISMATCH": _CRYPTO,
    "SNP_VMPL_INVALID": _CRYPTO,
    "TDX_ATTESTATION_KEY_INVALID": _CRYPTO,
    "TDX_ATT_KEY_TYPE_UNSUPPORTED": _CRYPTO,
    "TDX_BODY_SIZE": _CRYPTO,
    "TDX_BODY_TYPE_UNSUPPORTED": _CRYPTO,
    "TDX_CERT_DATA_TOO_LARGE": _CRYPTO,
    "TDX_CERT_DATA_UNSUPPORTED": _CRYPTO,
    "TDX_COLLATERAL_EXPIRED": _CRYPTO,
    "TDX_COLLATERAL_MALFORMED": _CRYPTO,  # built dynamically: tdx collateral_documents.MALFORMED / tcbinfo.CODE
    "TDX_COLLATERAL_SIGNATURE_INVALID": _CRYPTO,
    "TDX_COLLATERAL_SIGNER_INVALID": _CRYPTO,  # built dynamically: tdx collateral_checks.SIGNER_INVALID
    "TDX_COLLATERAL_SIGNER_REVOKED": _REVOKED,  # recognized, revoked: 96
    "TDX_COLLATERAL_UNSUPPORTED": _CRYPTO,
    "TDX_FMSPC_MISMATCH": _TCB,  # built dynamically: tdx tcb.evaluate: a loop over (name, mine, theirs, code)
    "TDX_LENGTH_MISMATCH": _CRYPTO,
    "TDX_MODULE_IDENTITY_MISMATCH": _CRYPTO,
    "TDX_MODULE_IDENTITY_NOT_FOUND": _TCB,  # no TDX module identity for the SEAM signer (hardware 96)
    "TDX_MODULE_TCB_LEVEL_NOT_FOUND": _CRYPTO,
    "TDX_PCEID_MISMATCH": _TCB,  # built dynamically: tdx tcb.evaluate: a loop over (name, mine, theirs, code)
    "TDX_PCK_CHAIN_INVALID": _CRYPTO,
    "TDX_PCK_CRL_CHAIN_INVALID": _CRYPTO,
    "TDX_PCK_EXTENSION_INVALID": _CRYPTO,  # built dynamically: tdx pck._CODE
    "TDX_PCK_KEY_TYPE": _CRYPTO,
    "TDX_PCK_REVOKED": _REVOKED,  # recognized, revoked: 96
    "TDX_QE_IDENTITY_MISMATCH": _TCB,  # the QE is not one Intel's identity lists (hardware 96)
    "TDX_QE_REPORT_DATA_MISMATCH": _CRYPTO,
    "TDX_QE_REPORT_INVALID": _CRYPTO,
    "TDX_QE_REPORT_SIGNATURE_INVALID": _CRYPTO,
    "TDX_QE_TCB_LEVEL_NOT_FOUND": _CRYPTO,
    "TDX_QUOTE_SIGNATURE_INVALID": _CRYPTO,
    "TDX_QUOTE_TOO_LARGE": _CRYPTO,
    "TDX_QUOTE_TRUNCATED": _CRYPTO,
    "TDX_QUOTE_VERSION_UNSUPPORTED": _CRYPTO,
    "TDX_TCB_LEVEL_NOT_FOUND": _TCB,  # a recognized platform whose TCB is contraindicated (hardware 96)
    "TDX_TCB_STATUS_INVALID": _CRYPTO,
    "TDX_TEE_TYPE": _CRYPTO,
    "TOKEN_ALG_UNSUPPORTED": _CRYPTO,
    "TOKEN_EXPIRED": _CRYPTO,
    "TOKEN_GPUS_INSUFFICIENT": _CRYPTO,  # fewer GPU components than the relying party requires (composite)
    "TOKEN_ISSUER_MISMATCH": _CRYPTO,
    "TOKEN_KEY_INVALID": _CRYPTO,
    "TOKEN_KID_UNKNOWN": _CRYPTO,
    "TOKEN_LABEL_MISSING": _CRYPTO,
    "TOKEN_MALFORMED": _CRYPTO,
    "TOKEN_NONCE_MISMATCH": _CRYPTO,
    "TOKEN_NONCE_MISSING": _CRYPTO,
    "TOKEN_NOT_YET_VALID": _CRYPTO,
    "TOKEN_POLICY_NOT_ALLOWED": _CRYPTO,
    "TOKEN_SIGNATURE_INVALID": _CRYPTO,
    "TOKEN_STATUS_INSUFFICIENT": _CRYPTO,
    "TOKEN_WORKLOAD_MISMATCH": _CRYPTO,
    "TOKEN_WORKLOAD_VERSION_TOO_OLD": _CRYPTO,
    # --- REQUEST: RequestError, ConfigError (start-up), AuditPruneError, NoteKeyError
    "ADDRESS_IN_USE": _REQUEST,
    "ADMIN_CERT_ROLE_UNKNOWN": _REQUEST,
    "ADMIN_CLIENT_CA_MISSING": _REQUEST,
    "ADMIN_LISTEN_REQUIRED": _REQUEST,
    "APPRAISAL_CLIENT_CA_MISSING": _REQUEST,
    "AUDIT_CHECKPOINT_CONFIG": _REQUEST,
    "AUDIT_KEY_INVALID": _REQUEST,
    "AUDIT_KEY_UNREADABLE": _REQUEST,
    "AUDIT_LIST_INVALID": _REQUEST,
    "AUDIT_PRUNE_CHAIN_BROKEN": _REQUEST,
    "AUDIT_PRUNE_CHECKPOINT_MISMATCH": _REQUEST,
    "AUDIT_PRUNE_NEEDS_CHECKPOINT": _REQUEST,
    "AUDIT_VERIFY_TOO_LARGE": _REQUEST,
    "BROKER_CONFIG_INVALID": _REQUEST,
    "BROKER_SECRET_MISSING": _REQUEST,
    "BROKER_SECRET_PERMISSIONS": _REQUEST,
    "CHALLENGES_DISABLED": _REQUEST,
    "CHALLENGE_NONCE_EXISTS": _REQUEST,
    "CHALLENGE_NONCE_LENGTH": _REQUEST,
    "CHALLENGE_TTL": _REQUEST,
    "CLIENT_CA_EMPTY": _REQUEST,
    "CLIENT_CA_INVALID": _REQUEST,
    "CLIENT_CA_UNREADABLE": _REQUEST,
    "COLLATERAL_DUPLICATE": _REQUEST,
    "COLLATERAL_NAME_INVALID": _REQUEST,
    # the request's collateral bytes; UNAVAILABLE too: a vendor response over its bound (collateral.http)
    "COLLATERAL_TOO_LARGE": CodeInfo(ErrorKind.REQUEST, also=(ErrorKind.UNAVAILABLE,)),
    "COLLATERAL_URL_INVALID": _REQUEST,
    "COMPOSITE_TEE_UNSUPPORTED": _REQUEST,  # GPU reports beside evidence that cannot bind them (verifier.composite)
    "DATABASE_URL_INVALID": _REQUEST,
    "EVENT_LOOP_UNAVAILABLE": _REQUEST,
    "EVIDENCE_EMPTY": _REQUEST,
    "EVIDENCE_KIND_UNKNOWN": _REQUEST,
    "EVIDENCE_KIND_UNSPECIFIED": _REQUEST,
    "EVIDENCE_KIND_UNSUPPORTED": _REQUEST,
    "EVIDENCE_TOO_LARGE": _REQUEST,
    "FIXED_CLOCK_NEEDS_DEV": _REQUEST,
    "GPU_COUNT_TOO_LARGE": _REQUEST,  # a composite request's GPU reports (verifier.requests)
    "GPU_EVIDENCE_EMPTY": _REQUEST,
    "GPU_EVIDENCE_TOO_LARGE": _REQUEST,
    "IMPACT_LIMIT_INVALID": _REQUEST,
    "JWKS_URL_INVALID": _REQUEST,
    "KEYRING_CORRUPT": _REQUEST,
    "KEYRING_EXISTS": _REQUEST,
    "KEYRING_FILE_INVALID": _REQUEST,
    "KEYRING_FILE_MISSING": _REQUEST,
    "KEYRING_KID_MISMATCH": _REQUEST,
    "KEYRING_MULTIPLE_ACTIVE": _REQUEST,
    "KEYRING_NO_ACTIVE": _REQUEST,
    "KEYRING_PERMISSIONS": _REQUEST,
    "KEYRING_PUBLISH_TOO_SHORT": _REQUEST,
    "KEYRING_UNREADABLE": _REQUEST,
    "KEYRING_UNWRITABLE": _REQUEST,
    "LANE_LIMITS_INVALID": _REQUEST,
    # a ConfigError for the HTTP port (transport.grpc.http), an UnavailableError for the gRPC one (server)
    "LISTEN_FAILED": CodeInfo(ErrorKind.REQUEST, also=(ErrorKind.UNAVAILABLE,)),
    "MANIFEST_CONFLICT": _REQUEST,
    "MANIFEST_EXISTS": _REQUEST,
    "MANIFEST_INVALID": _REQUEST,
    "MANIFEST_NAME_INVALID": _REQUEST,
    "MANIFEST_TOO_LARGE": _REQUEST,
    "MANIFEST_UNREADABLE": _REQUEST,
    "MANIFEST_UNWRITABLE": _REQUEST,
    "MANIFEST_VERSION_EXISTS": _REQUEST,
    "MANIFESTS_REQUIRED": _REQUEST,
    "MANIFESTS_TOO_MANY": _REQUEST,
    "MTLS_NEEDS_TLS": _REQUEST,
    "NONCE_SIZE": _REQUEST,
    "NOTE_KEY_INVALID": _REQUEST,
    "PLAINTEXT_ADMIN_NOT_LOOPBACK": _REQUEST,
    "PLAN_SHA256_INVALID": _REQUEST,
    "PLAN_SHA256_REQUIRED": _REQUEST,
    "PLAN_STALE": _REQUEST,  # the reviewed plan is no longer the plan (refs apply --plan-sha256, Apply RPC)
    "POLICY_FILE_INVALID": _REQUEST,
    "POLICY_INVALID": _REQUEST,
    "POLICY_LOOSENS_BUILT_IN": _REQUEST,
    "POLICY_NAME_INVALID": _REQUEST,
    "POLICY_UNKNOWN": _REQUEST,
    "PUBLIC_URL_INVALID": _REQUEST,
    "REAPPROVE_BEFORE_REVOCATION": _REQUEST,
    "REAPPROVE_LABEL_REQUIRED": _REQUEST,
    "REAPPROVE_REASON_REQUIRED": _REQUEST,
    "REAPPROVE_REASON_TOO_LONG": _REQUEST,
    "REFERENCE_EXPIRES_IN_PAST": _REQUEST,
    "REFERENCE_HISTORY_UNFILTERED": _REQUEST,
    "REFERENCE_ID_REQUIRED": _REQUEST,
    "REFERENCE_IMPORT_TOO_LARGE": _REQUEST,
    "REFERENCE_KIND_UNKNOWN": _REQUEST,
    "REFERENCE_LABEL_TOO_LONG": _REQUEST,
    "REFERENCE_STATE_UNKNOWN": _REQUEST,
    "REFERENCE_VALUE_INACTIVE": _REQUEST,
    "REFERENCE_VALUE_INVALID": _REQUEST,
    "REFERENCE_VALUE_LENGTH": _REQUEST,
    "REFERENCE_VALUE_NOT_HEX": _REQUEST,
    "REFERENCE_VALUE_NOT_REVOKED": _REQUEST,
    "REFERENCE_VALUE_REVOKED": _REQUEST,
    "REFERENCE_VERSION_INVALID": _REQUEST,
    "REFERENCE_WINDOW_EMPTY": _REQUEST,
    "RESPONSE_VIEW_UNKNOWN": _REQUEST,  # AppraiseRequest.view outside ResponseView
    "REVOKE_REASON_REQUIRED": _REQUEST,
    "REVOKE_REASON_TOO_LONG": _REQUEST,
    "RUNTIME_DATA_TOO_LARGE": _REQUEST,
    "RUNTIME_DIRECTORY_UNSAFE": _REQUEST,
    "SETTING_INVALID": _REQUEST,
    "SIGNING_KEY_CONFLICT": _REQUEST,
    "SIGNING_KEY_EXISTS": _REQUEST,
    "SIGNING_KEY_INVALID": _REQUEST,
    "SIGNING_KEY_MISSING": _REQUEST,
    "SIGNING_KEY_PERMISSIONS": _REQUEST,
    "SIGNING_KEY_UNREADABLE": _REQUEST,  # the key exists but this process (its uid) may not read it
    "SIGNING_KEY_UNWRITABLE": _REQUEST,  # `keys generate` cannot create the file or its parent directories
    "SNP_MEASURE_INPUT": _REQUEST,
    "SNP_OVMF_NO_KERNEL_HASHES": _REQUEST,
    "SNP_OVMF_UNSUPPORTED": _REQUEST,
    "TIMESTAMP_INVALID": _REQUEST,
    "TLS_FILES_INVALID": _REQUEST,  # the HTTP side server's TLS context: a certificate or key that does not load
    "TLS_FILES_UNREADABLE": _REQUEST,
    "TLS_INCOMPLETE": _REQUEST,
    "TOKEN_NAME_INVALID": _REQUEST,
    "TOKEN_NAME_REQUIRED": _REQUEST,
    "TOKEN_NAME_TOO_LONG": _REQUEST,
    "TOKEN_REVOKED": _REQUEST,
    "TOKEN_ROLE_UNKNOWN": _REQUEST,
    "TRUST_ANCHOR_DIRECTORY": _REQUEST,
    "TRUST_ANCHOR_INVALID": _REQUEST,
    "WORKLOAD_EXISTS": _REQUEST,
    "WORKLOAD_NAME_INVALID": _REQUEST,
    "WORKLOAD_NOT_IN_REVIEW": _REQUEST,
    "WORKLOAD_POLICY_CONFLICT": _REQUEST,
    "WORKLOAD_POLICY_INVALID": _REQUEST,
    "WORKLOAD_REVOKED": _REQUEST,
    "WORKLOAD_TEE_MISMATCH": _REQUEST,
    "WORKLOAD_TEE_UNKNOWN": _REQUEST,
    "WORKLOAD_VERSION_EMPTY": _REQUEST,
    "WORKLOAD_VERSION_EXISTS": _REQUEST,
    "WORKLOAD_VERSION_REQUIRED": _REQUEST,
    "WORKLOAD_VERSION_REVOKED": _REQUEST,
    "WORKLOAD_VERSION_TOO_LARGE": _REQUEST,
    "WORKERS_NEED_POSTGRESQL": _REQUEST,
    # --- NOT_FOUND: NotFoundError
    "REFERENCE_VALUE_NOT_FOUND": _NOT_FOUND,
    "TOKEN_NOT_FOUND": _NOT_FOUND,
    "WORKLOAD_NOT_FOUND": _NOT_FOUND,
    "WORKLOAD_VERSION_NOT_FOUND": _NOT_FOUND,
    # --- UNAVAILABLE: UnavailableError, CollateralUnavailableError
    "COLLATERAL_BUSY": _UNAVAILABLE,
    "COLLATERAL_FETCH_FAILED": _UNAVAILABLE,
    "COLLATERAL_KEY_INVALID": _UNAVAILABLE,
    "COLLATERAL_MALFORMED": _UNAVAILABLE,
    "COLLATERAL_MISSING": _UNAVAILABLE,
    "COLLATERAL_NOT_DOWNLOADABLE": _UNAVAILABLE,
    "COLLATERAL_NOT_FOUND": _UNAVAILABLE,
    "COLLATERAL_OFFLINE": _UNAVAILABLE,
    "COLLATERAL_RATE_LIMITED": _UNAVAILABLE,
    "COLLATERAL_REJECTED": _UNAVAILABLE,
    "COLLATERAL_ROLLBACK": _UNAVAILABLE,
    "COLLATERAL_TIMEOUT": _UNAVAILABLE,
    "COLLATERAL_VCEK_MISSING": _UNAVAILABLE,
    "COLLATERAL_VENDOR_UNAVAILABLE": _UNAVAILABLE,  # built dynamically: collateral.breaker.UNAVAILABLE_CODE (open)
    "DATABASE_BUSY": _UNAVAILABLE,
    "GPU_COLLATERAL_UNAVAILABLE": _UNAVAILABLE,  # a composite's GPU collateral (verifier.composite)
    "REFERENCE_SET_CHANGING": _UNAVAILABLE,
    "DATABASE_FULL": _UNAVAILABLE,  # built dynamically: storage.db_faults.classify
    "DATABASE_NOT_MIGRATED": _UNAVAILABLE,  # built dynamically: storage.db_faults (migrate.check, classify)
    "DATABASE_READ_ONLY": _UNAVAILABLE,  # built dynamically: storage.db_faults.classify
    "DATABASE_UNAVAILABLE": _UNAVAILABLE,  # built dynamically: storage.db_faults.classify
    # INTERNAL too: the client's ClientError of status UNKNOWN when GetSigningKeys returns no JSON object
    "JWKS_INVALID": CodeInfo(ErrorKind.UNAVAILABLE, also=(ErrorKind.INTERNAL,)),
    "JWKS_UNAVAILABLE": _UNAVAILABLE,
    "SIGNING_KEY_EXPIRED": _UNAVAILABLE,
    # --- AUTH: AuthError
    "ADMIN_AUTH_REQUIRED": _AUTH,
    "ADMIN_CERT_INVALID": _AUTH,
    "ADMIN_NEEDS_TLS": _AUTH,
    "ADMIN_TOKEN_INVALID": _AUTH,
    "APPRAISAL_CERT_INVALID": _AUTH,
    "APPRAISAL_CERT_REQUIRED": _AUTH,
    # --- PERMISSION: AccessDeniedError
    "ADMIN_ROLE_INSUFFICIENT": _PERMISSION,
    "POLICY_NOT_ALLOWED": _PERMISSION,
    # --- OVERLOADED: OverloadedError
    "REQUEST_BYTES_IN_FLIGHT": _OVERLOADED,
    "SERVER_BUSY": _OVERLOADED,
    # --- INTERNAL: VerifierError itself
    "EAR_CLAIMS_NOT_JSON": _INTERNAL,
}

CATALOG: Final[Mapping[str, CodeInfo]] = MappingProxyType(_CODES)


def code_info(code: str) -> CodeInfo | None:
    """The catalog entry of `code`, None for a code this project does not raise. Never raises."""
    return CATALOG.get(code)
