"""gRPC server reflection under both of its names: grpc.reflection.v1.ServerReflection, the stable one that current
clients (grpcurl, Postman, grpc-js and grpc-go tooling) ask for first, and grpc.reflection.v1alpha.ServerReflection,
the one grpcio-reflection implements.

The two protocols are the same apart from the package name: v1 (grpc/reflection/v1/reflection.proto) is the
v1alpha file promoted, with the same messages, fields and numbers, so the bytes on the wire are identical. One
implementation (grpcio-reflection's servicer over the default descriptor pool) answers both method paths. When the
installed grpcio-reflection has no v1 module, the v1 file descriptor is made from the v1alpha one (package and type
names renamed, the options of the published v1 file) and added to the default pool, so that reflection describes
itself under both names too.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA_SERVICE: str = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"
_METHOD = "ServerReflectionInfo"


def _v1_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, made from grpcio-reflection's v1alpha file."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", f".{V1_PACKAGE}."
    proto.name, proto.package = V1_FILE, V1_PACKAGE
    for message in proto.message_type:  # the reflection messages have no nested types
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name.removeprefix(old)
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type.removeprefix(old)
            method.output_type = new + method.output_type.removeprefix(old)
    proto.options.Clear()  # v1alpha is deprecated; v1's options as published
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.java_multiple_files = True
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    return proto


def ensure_v1_descriptor() -> None:
    """Make grpc.reflection.v1 known to the default descriptor pool (once; a later grpcio-reflection's own v1
    module, when installed, is used instead)."""
    try:
        importlib.import_module("grpc_reflection.v1.reflection_pb2")
        return
    except ImportError:
        pass
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(V1_SERVICE)
    except KeyError:
        pool.AddSerializedFile(_v1_descriptor_proto().SerializeToString())


def add_reflection(server: Any, service_names: Sequence[str]) -> None:
    """Serve reflection v1 and v1alpha on `server` (anything with `add_generic_rpc_handlers`, as the generated
    `add_*_to_server` functions take) for `service_names` and both reflection services; grpc.aio only."""
    ensure_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer(  # type: ignore[attr-defined]
        (*service_names, V1_SERVICE, V1ALPHA_SERVICE)
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # what enable_server_reflection does
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,  # the same bytes as v1's
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, {_METHOD: v1}),))
