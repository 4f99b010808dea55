import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from verifier.v1 import verifier_pb2 as _verifier_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkloadsSetPolicyRequest(_message.Message):
    __slots__ = ("name", "policy", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy: str
    version: str
    def __init__(self, name: _Optional[str] = ..., policy: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class WorkloadsSetPolicyResponse(_message.Message):
    __slots__ = ("workload",)
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    workload: _verifier_pb2.Workload
    def __init__(self, workload: _Optional[_Union[_verifier_pb2.Workload, _Mapping]] = ...) -> None: ...

class WorkloadsConfirmRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WorkloadsConfirmResponse(_message.Message):
    __slots__ = ("workload", "review_reason")
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASON_FIELD_NUMBER: _ClassVar[int]
    workload: _verifier_pb2.Workload
    review_reason: str
    def __init__(self, workload: _Optional[_Union[_verifier_pb2.Workload, _Mapping]] = ..., review_reason: _Optional[str] = ...) -> None: ...

class WorkloadsImportVersionRequest(_message.Message):
    __slots__ = ("name", "tee", "version", "values", "valid_from", "expires_at", "alternative")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    tee: str
    version: str
    values: _containers.RepeatedCompositeFieldContainer[_verifier_pb2.WorkloadValue]
    valid_from: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    alternative: bool
    def __init__(self, name: _Optional[str] = ..., tee: _Optional[str] = ..., version: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_verifier_pb2.WorkloadValue, _Mapping]]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alternative: _Optional[bool] = ...) -> None: ...

class WorkloadsImportVersionResponse(_message.Message):
    __slots__ = ("added", "already_present")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[_verifier_pb2.ReferenceValue]
    already_present: int
    def __init__(self, added: _Optional[_Iterable[_Union[_verifier_pb2.ReferenceValue, _Mapping]]] = ..., already_present: _Optional[int] = ...) -> None: ...
