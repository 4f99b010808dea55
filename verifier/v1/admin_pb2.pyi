import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PolicySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_SOURCE_UNSPECIFIED: _ClassVar[PolicySource]
    POLICY_SOURCE_BUILT_IN: _ClassVar[PolicySource]
    POLICY_SOURCE_FILE: _ClassVar[PolicySource]
    POLICY_SOURCE_DATABASE: _ClassVar[PolicySource]

class AdminRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADMIN_ROLE_UNSPECIFIED: _ClassVar[AdminRole]
    ADMIN_ROLE_ADMIN: _ClassVar[AdminRole]
    ADMIN_ROLE_AUDITOR: _ClassVar[AdminRole]

class AdminTokenState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADMIN_TOKEN_STATE_UNSPECIFIED: _ClassVar[AdminTokenState]
    ADMIN_TOKEN_STATE_ACTIVE: _ClassVar[AdminTokenState]
    ADMIN_TOKEN_STATE_REVOKED: _ClassVar[AdminTokenState]
POLICY_SOURCE_UNSPECIFIED: PolicySource
POLICY_SOURCE_BUILT_IN: PolicySource
POLICY_SOURCE_FILE: PolicySource
POLICY_SOURCE_DATABASE: PolicySource
ADMIN_ROLE_UNSPECIFIED: AdminRole
ADMIN_ROLE_ADMIN: AdminRole
ADMIN_ROLE_AUDITOR: AdminRole
ADMIN_TOKEN_STATE_UNSPECIFIED: AdminTokenState
ADMIN_TOKEN_STATE_ACTIVE: AdminTokenState
ADMIN_TOKEN_STATE_REVOKED: AdminTokenState

class Policy(_message.Message):
    __slots__ = ("name", "source", "sha256", "policy_json", "updated_at", "updated_by")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: PolicySource
    sha256: str
    policy_json: str
    updated_at: _timestamp_pb2.Timestamp
    updated_by: str
    def __init__(self, name: _Optional[str] = ..., source: _Optional[_Union[PolicySource, str]] = ..., sha256: _Optional[str] = ..., policy_json: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("name", "policy_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy_json: str
    def __init__(self, name: _Optional[str] = ..., policy_json: _Optional[str] = ...) -> None: ...

class SetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class AdminToken(_message.Message):
    __slots__ = ("id", "name", "role", "state", "created_at", "created_by", "revoked_at", "revoked_by", "last_used_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    role: AdminRole
    state: AdminTokenState
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    last_used_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[_Union[AdminRole, str]] = ..., state: _Optional[_Union[AdminTokenState, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAdminTokenRequest(_message.Message):
    __slots__ = ("name", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: AdminRole
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[AdminRole, str]] = ...) -> None: ...

class CreateAdminTokenResponse(_message.Message):
    __slots__ = ("admin_token", "token")
    ADMIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    admin_token: AdminToken
    token: str
    def __init__(self, admin_token: _Optional[_Union[AdminToken, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class ListAdminTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAdminTokensResponse(_message.Message):
    __slots__ = ("admin_tokens",)
    ADMIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    admin_tokens: _containers.RepeatedCompositeFieldContainer[AdminToken]
    def __init__(self, admin_tokens: _Optional[_Iterable[_Union[AdminToken, _Mapping]]] = ...) -> None: ...

class RevokeAdminTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeAdminTokenResponse(_message.Message):
    __slots__ = ("admin_token",)
    ADMIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    admin_token: AdminToken
    def __init__(self, admin_token: _Optional[_Union[AdminToken, _Mapping]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("seq", "at", "actor", "action", "subject", "details_json", "prev_hash", "hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: _timestamp_pb2.Timestamp
    actor: str
    action: str
    subject: str
    details_json: str
    prev_hash: str
    hash: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., subject: _Optional[str] = ..., details_json: _Optional[str] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ListAuditEntriesRequest(_message.Message):
    __slots__ = ("after_seq", "limit", "action")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    limit: int
    action: str
    def __init__(self, after_seq: _Optional[int] = ..., limit: _Optional[int] = ..., action: _Optional[str] = ...) -> None: ...

class ListAuditEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_after_seq")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_after_seq: int
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_after_seq: _Optional[int] = ...) -> None: ...

class AuditPrune(_message.Message):
    __slots__ = ("through_seq", "head", "checkpoint_size", "checkpoint_head", "checkpoint", "pruned_at", "pruned_by")
    THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_HEAD_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PRUNED_AT_FIELD_NUMBER: _ClassVar[int]
    PRUNED_BY_FIELD_NUMBER: _ClassVar[int]
    through_seq: int
    head: str
    checkpoint_size: int
    checkpoint_head: str
    checkpoint: str
    pruned_at: _timestamp_pb2.Timestamp
    pruned_by: str
    def __init__(self, through_seq: _Optional[int] = ..., head: _Optional[str] = ..., checkpoint_size: _Optional[int] = ..., checkpoint_head: _Optional[str] = ..., checkpoint: _Optional[str] = ..., pruned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pruned_by: _Optional[str] = ...) -> None: ...

class VerifyAuditChainRequest(_message.Message):
    __slots__ = ("sizes", "verifier_keys")
    SIZES_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_KEYS_FIELD_NUMBER: _ClassVar[int]
    sizes: _containers.RepeatedScalarFieldContainer[int]
    verifier_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sizes: _Optional[_Iterable[int]] = ..., verifier_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class VerifyAuditChainResponse(_message.Message):
    __slots__ = ("ok", "rows", "bad_seq", "reason", "head", "good", "hashes", "pruned", "prunes", "prune_verified")
    class HashesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    OK_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    GOOD_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    PRUNES_FIELD_NUMBER: _ClassVar[int]
    PRUNE_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    rows: int
    bad_seq: int
    reason: str
    head: str
    good: int
    hashes: _containers.ScalarMap[int, str]
    pruned: int
    prunes: _containers.RepeatedCompositeFieldContainer[AuditPrune]
    prune_verified: bool
    def __init__(self, ok: _Optional[bool] = ..., rows: _Optional[int] = ..., bad_seq: _Optional[int] = ..., reason: _Optional[str] = ..., head: _Optional[str] = ..., good: _Optional[int] = ..., hashes: _Optional[_Mapping[int, str]] = ..., pruned: _Optional[int] = ..., prunes: _Optional[_Iterable[_Union[AuditPrune, _Mapping]]] = ..., prune_verified: _Optional[bool] = ...) -> None: ...
