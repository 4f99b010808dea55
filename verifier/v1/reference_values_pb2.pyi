import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from verifier.v1 import verifier_pb2 as _verifier_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReferenceValuesReapproveRequest(_message.Message):
    __slots__ = ("kind", "value", "reason", "label", "version", "valid_from", "expires_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    reason: str
    label: str
    version: str
    valid_from: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ..., reason: _Optional[str] = ..., label: _Optional[str] = ..., version: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReferenceValueRevocation(_message.Message):
    __slots__ = ("id", "reference_value_id", "revoked_at", "revoked_by", "reason", "reapproved_at", "reapproved_by", "reapprove_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VALUE_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REAPPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    REAPPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    REAPPROVE_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reference_value_id: str
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    reason: str
    reapproved_at: _timestamp_pb2.Timestamp
    reapproved_by: str
    reapprove_reason: str
    def __init__(self, id: _Optional[str] = ..., reference_value_id: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., reason: _Optional[str] = ..., reapproved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reapproved_by: _Optional[str] = ..., reapprove_reason: _Optional[str] = ...) -> None: ...

class ReferenceValuesReapproveResponse(_message.Message):
    __slots__ = ("kind", "value", "revocations", "added")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    revocations: _containers.RepeatedCompositeFieldContainer[ReferenceValueRevocation]
    added: _verifier_pb2.ReferenceValue
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ..., revocations: _Optional[_Iterable[_Union[ReferenceValueRevocation, _Mapping]]] = ..., added: _Optional[_Union[_verifier_pb2.ReferenceValue, _Mapping]] = ...) -> None: ...

class ReferenceValuesHistoryRequest(_message.Message):
    __slots__ = ("id", "kind", "label")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    label: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class ReferenceValueHistoryEntry(_message.Message):
    __slots__ = ("seq", "at", "actor", "action", "subject", "details_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: _timestamp_pb2.Timestamp
    actor: str
    action: str
    subject: str
    details_json: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., subject: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class ReferenceValuesHistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ReferenceValueHistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ReferenceValueHistoryEntry, _Mapping]]] = ...) -> None: ...

class ReferenceValueEntry(_message.Message):
    __slots__ = ("kind", "value", "label", "version", "valid_from", "expires_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    label: str
    version: str
    valid_from: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ..., label: _Optional[str] = ..., version: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReferenceValuesImportRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ReferenceValueEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ReferenceValueEntry, _Mapping]]] = ...) -> None: ...

class ReferenceValuesImportResponse(_message.Message):
    __slots__ = ("added", "skipped")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[_verifier_pb2.ReferenceValue]
    skipped: int
    def __init__(self, added: _Optional[_Iterable[_Union[_verifier_pb2.ReferenceValue, _Mapping]]] = ..., skipped: _Optional[int] = ...) -> None: ...

class ManifestFile(_message.Message):
    __slots__ = ("name", "content")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    content: bytes
    def __init__(self, name: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class ReferenceValuesPlanRequest(_message.Message):
    __slots__ = ("manifests", "default_label", "values", "impact", "impact_limit")
    MANIFESTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    IMPACT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    manifests: _containers.RepeatedCompositeFieldContainer[ManifestFile]
    default_label: str
    values: bool
    impact: bool
    impact_limit: int
    def __init__(self, manifests: _Optional[_Iterable[_Union[ManifestFile, _Mapping]]] = ..., default_label: _Optional[str] = ..., values: _Optional[bool] = ..., impact: _Optional[bool] = ..., impact_limit: _Optional[int] = ...) -> None: ...

class PlanImpact(_message.Message):
    __slots__ = ("impact_json", "report", "reappraised", "changed")
    IMPACT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    REAPPRAISED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    impact_json: str
    report: str
    reappraised: int
    changed: int
    def __init__(self, impact_json: _Optional[str] = ..., report: _Optional[str] = ..., reappraised: _Optional[int] = ..., changed: _Optional[int] = ...) -> None: ...

class ReferenceValuesPlanResponse(_message.Message):
    __slots__ = ("plan_json", "lines", "plan_sha256", "changes", "impact")
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PLAN_SHA256_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    plan_json: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    plan_sha256: str
    changes: bool
    impact: PlanImpact
    def __init__(self, plan_json: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ..., plan_sha256: _Optional[str] = ..., changes: _Optional[bool] = ..., impact: _Optional[_Union[PlanImpact, _Mapping]] = ...) -> None: ...

class ReferenceValuesApplyRequest(_message.Message):
    __slots__ = ("manifests", "default_label", "values", "plan_sha256")
    MANIFESTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PLAN_SHA256_FIELD_NUMBER: _ClassVar[int]
    manifests: _containers.RepeatedCompositeFieldContainer[ManifestFile]
    default_label: str
    values: bool
    plan_sha256: str
    def __init__(self, manifests: _Optional[_Iterable[_Union[ManifestFile, _Mapping]]] = ..., default_label: _Optional[str] = ..., values: _Optional[bool] = ..., plan_sha256: _Optional[str] = ...) -> None: ...

class ReferenceValuesApplyResponse(_message.Message):
    __slots__ = ("plan_json", "lines", "plan_sha256", "changes")
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PLAN_SHA256_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    plan_json: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    plan_sha256: str
    changes: bool
    def __init__(self, plan_json: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ..., plan_sha256: _Optional[str] = ..., changes: _Optional[bool] = ...) -> None: ...
