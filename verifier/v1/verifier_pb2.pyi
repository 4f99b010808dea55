import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvidenceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVIDENCE_KIND_UNSPECIFIED: _ClassVar[EvidenceKind]
    EVIDENCE_KIND_NITRO: _ClassVar[EvidenceKind]
    EVIDENCE_KIND_SEV_SNP: _ClassVar[EvidenceKind]
    EVIDENCE_KIND_TDX: _ClassVar[EvidenceKind]
    EVIDENCE_KIND_NVIDIA_GPU: _ClassVar[EvidenceKind]

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    STATUS_AFFIRMING: _ClassVar[Status]
    STATUS_WARNING: _ClassVar[Status]
    STATUS_CONTRAINDICATED: _ClassVar[Status]
    STATUS_NONE: _ClassVar[Status]

class ResponseView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_VIEW_UNSPECIFIED: _ClassVar[ResponseView]
    RESPONSE_VIEW_FULL: _ClassVar[ResponseView]
    RESPONSE_VIEW_TOKEN: _ClassVar[ResponseView]
EVIDENCE_KIND_UNSPECIFIED: EvidenceKind
EVIDENCE_KIND_NITRO: EvidenceKind
EVIDENCE_KIND_SEV_SNP: EvidenceKind
EVIDENCE_KIND_TDX: EvidenceKind
EVIDENCE_KIND_NVIDIA_GPU: EvidenceKind
STATUS_UNSPECIFIED: Status
STATUS_AFFIRMING: Status
STATUS_WARNING: Status
STATUS_CONTRAINDICATED: Status
STATUS_NONE: Status
RESPONSE_VIEW_UNSPECIFIED: ResponseView
RESPONSE_VIEW_FULL: ResponseView
RESPONSE_VIEW_TOKEN: ResponseView

class CreateChallengeRequest(_message.Message):
    __slots__ = ("nonce_size",)
    NONCE_SIZE_FIELD_NUMBER: _ClassVar[int]
    nonce_size: int
    def __init__(self, nonce_size: _Optional[int] = ...) -> None: ...

class CreateChallengeResponse(_message.Message):
    __slots__ = ("nonce", "expires_at")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, nonce: _Optional[bytes] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CollateralFile(_message.Message):
    __slots__ = ("name", "content")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    content: bytes
    def __init__(self, name: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class GpuEvidence(_message.Message):
    __slots__ = ("evidence", "collateral")
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    COLLATERAL_FIELD_NUMBER: _ClassVar[int]
    evidence: bytes
    collateral: _containers.RepeatedCompositeFieldContainer[CollateralFile]
    def __init__(self, evidence: _Optional[bytes] = ..., collateral: _Optional[_Iterable[_Union[CollateralFile, _Mapping]]] = ...) -> None: ...

class AppraiseRequest(_message.Message):
    __slots__ = ("kind", "evidence", "collateral", "nonce", "runtime_data", "policy", "gpus", "view")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    COLLATERAL_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_DATA_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    kind: EvidenceKind
    evidence: bytes
    collateral: _containers.RepeatedCompositeFieldContainer[CollateralFile]
    nonce: bytes
    runtime_data: bytes
    policy: str
    gpus: _containers.RepeatedCompositeFieldContainer[GpuEvidence]
    view: ResponseView
    def __init__(self, kind: _Optional[_Union[EvidenceKind, str]] = ..., evidence: _Optional[bytes] = ..., collateral: _Optional[_Iterable[_Union[CollateralFile, _Mapping]]] = ..., nonce: _Optional[bytes] = ..., runtime_data: _Optional[bytes] = ..., policy: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[GpuEvidence, _Mapping]]] = ..., view: _Optional[_Union[ResponseView, str]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("code", "tier", "claim", "value", "expected", "actual", "message", "component")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    code: str
    tier: Status
    claim: str
    value: int
    expected: str
    actual: str
    message: str
    component: str
    def __init__(self, code: _Optional[str] = ..., tier: _Optional[_Union[Status, str]] = ..., claim: _Optional[str] = ..., value: _Optional[int] = ..., expected: _Optional[str] = ..., actual: _Optional[str] = ..., message: _Optional[str] = ..., component: _Optional[str] = ...) -> None: ...

class ComponentAppraisal(_message.Message):
    __slots__ = ("name", "tee", "status", "trust_vector", "claims_json", "evidence_sha384")
    class TrustVectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRUST_VECTOR_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_JSON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_SHA384_FIELD_NUMBER: _ClassVar[int]
    name: str
    tee: str
    status: Status
    trust_vector: _containers.ScalarMap[str, int]
    claims_json: str
    evidence_sha384: str
    def __init__(self, name: _Optional[str] = ..., tee: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., trust_vector: _Optional[_Mapping[str, int]] = ..., claims_json: _Optional[str] = ..., evidence_sha384: _Optional[str] = ...) -> None: ...

class AppraiseResponse(_message.Message):
    __slots__ = ("status", "trust_vector", "claims", "findings", "token", "appraisal_id", "tee", "policy_id", "appraised_at", "claims_json", "components")
    class TrustVectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRUST_VECTOR_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    APPRAISAL_ID_FIELD_NUMBER: _ClassVar[int]
    TEE_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    APPRAISED_AT_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_JSON_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    status: Status
    trust_vector: _containers.ScalarMap[str, int]
    claims: _struct_pb2.Struct
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    token: str
    appraisal_id: str
    tee: str
    policy_id: str
    appraised_at: _timestamp_pb2.Timestamp
    claims_json: str
    components: _containers.RepeatedCompositeFieldContainer[ComponentAppraisal]
    def __init__(self, status: _Optional[_Union[Status, str]] = ..., trust_vector: _Optional[_Mapping[str, int]] = ..., claims: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., token: _Optional[str] = ..., appraisal_id: _Optional[str] = ..., tee: _Optional[str] = ..., policy_id: _Optional[str] = ..., appraised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claims_json: _Optional[str] = ..., components: _Optional[_Iterable[_Union[ComponentAppraisal, _Mapping]]] = ...) -> None: ...

class GetSigningKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSigningKeysResponse(_message.Message):
    __slots__ = ("jwks_json",)
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    def __init__(self, jwks_json: _Optional[str] = ...) -> None: ...

class ReferenceValue(_message.Message):
    __slots__ = ("id", "kind", "value", "label", "created_at", "expires_at", "revoked_at", "revoke_reason", "state", "version", "valid_from", "created_by", "revoked_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    value: str
    label: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    revoke_reason: str
    state: str
    version: str
    valid_from: _timestamp_pb2.Timestamp
    created_by: str
    revoked_by: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., value: _Optional[str] = ..., label: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_reason: _Optional[str] = ..., state: _Optional[str] = ..., version: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., revoked_by: _Optional[str] = ...) -> None: ...

class AddReferenceValueRequest(_message.Message):
    __slots__ = ("kind", "value", "label", "expires_at", "version", "valid_from")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    label: str
    expires_at: _timestamp_pb2.Timestamp
    version: str
    valid_from: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ..., label: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListReferenceValuesRequest(_message.Message):
    __slots__ = ("kind", "include_inactive", "label", "state")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    include_inactive: bool
    label: str
    state: str
    def __init__(self, kind: _Optional[str] = ..., include_inactive: _Optional[bool] = ..., label: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ListReferenceValuesResponse(_message.Message):
    __slots__ = ("reference_values",)
    REFERENCE_VALUES_FIELD_NUMBER: _ClassVar[int]
    reference_values: _containers.RepeatedCompositeFieldContainer[ReferenceValue]
    def __init__(self, reference_values: _Optional[_Iterable[_Union[ReferenceValue, _Mapping]]] = ...) -> None: ...

class RevokeReferenceValueRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("id", "name", "tee", "policy", "state", "created_at", "created_by", "revoked_at", "revoked_by", "revoke_reason", "review", "review_reason", "revoked_versions", "versions", "version_policies")
    class VersionPoliciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_POLICIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    tee: str
    policy: str
    state: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    revoke_reason: str
    review: bool
    review_reason: str
    revoked_versions: _containers.RepeatedScalarFieldContainer[str]
    versions: _containers.RepeatedCompositeFieldContainer[WorkloadVersion]
    version_policies: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., tee: _Optional[str] = ..., policy: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., revoke_reason: _Optional[str] = ..., review: _Optional[bool] = ..., review_reason: _Optional[str] = ..., revoked_versions: _Optional[_Iterable[str]] = ..., versions: _Optional[_Iterable[_Union[WorkloadVersion, _Mapping]]] = ..., version_policies: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WorkloadVersion(_message.Message):
    __slots__ = ("version", "state", "revoked_at", "revoked_by", "revoke_reason", "reference_values")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VALUES_FIELD_NUMBER: _ClassVar[int]
    version: str
    state: str
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    revoke_reason: str
    reference_values: _containers.RepeatedCompositeFieldContainer[ReferenceValue]
    def __init__(self, version: _Optional[str] = ..., state: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., revoke_reason: _Optional[str] = ..., reference_values: _Optional[_Iterable[_Union[ReferenceValue, _Mapping]]] = ...) -> None: ...

class CreateWorkloadRequest(_message.Message):
    __slots__ = ("name", "tee", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    tee: str
    policy: str
    def __init__(self, name: _Optional[str] = ..., tee: _Optional[str] = ..., policy: _Optional[str] = ...) -> None: ...

class WorkloadValue(_message.Message):
    __slots__ = ("kind", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class AddWorkloadVersionRequest(_message.Message):
    __slots__ = ("name", "tee", "version", "values", "valid_from", "expires_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    tee: str
    version: str
    values: _containers.RepeatedCompositeFieldContainer[WorkloadValue]
    valid_from: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., tee: _Optional[str] = ..., version: _Optional[str] = ..., values: _Optional[_Iterable[_Union[WorkloadValue, _Mapping]]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListWorkloadsRequest(_message.Message):
    __slots__ = ("review_only",)
    REVIEW_ONLY_FIELD_NUMBER: _ClassVar[int]
    review_only: bool
    def __init__(self, review_only: _Optional[bool] = ...) -> None: ...

class ListWorkloadsResponse(_message.Message):
    __slots__ = ("workloads",)
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    workloads: _containers.RepeatedCompositeFieldContainer[Workload]
    def __init__(self, workloads: _Optional[_Iterable[_Union[Workload, _Mapping]]] = ...) -> None: ...

class GetWorkloadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeWorkloadVersionRequest(_message.Message):
    __slots__ = ("name", "version", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeWorkloadRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
