"""Server reflection v1 and v1alpha through a real server (issue 14 item 5).

grpc.reflection.v1.ServerReflection is what current clients ask for first; grpcio-reflection implements v1alpha.
Both answer: v1 with its own message types (grpc.reflection.v1.*, from the descriptor the server adds), v1alpha
through grpcio-reflection's own client (ProtoReflectionDescriptorDatabase), and the two give byte-identical answers
to the same request bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.dbfixtures import sqlite_url
from verifier.bootstrap import Components, build
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.reflection import V1_SERVICE, V1ALPHA_SERVICE
from verifier.transport.grpc.server import SERVICE_NAMES, VerifierServer

V1_METHOD = f"/{V1_SERVICE}/ServerReflectionInfo"
V1ALPHA_METHOD = f"/{V1ALPHA_SERVICE}/ServerReflectionInfo"


@pytest.fixture
def components(sqlite_db: Database, tmp_path: Path) -> Iterator[Components]:
    settings = Settings(
        database_url=sqlite_url(tmp_path), development=True, listen="127.0.0.1:0", http_listen="off", grace_seconds=0
    )
    built = build(settings)
    yield built
    built.close()


def v1_class(name: str) -> Any:
    """A grpc.reflection.v1 message class, from the default pool (where the server put the v1 file)."""
    return message_factory.GetMessageClass(
        descriptor_pool.Default().FindMessageTypeByName(f"grpc.reflection.v1.{name}")
    )


def ask(channel: grpc.Channel, method: str, requests: list[bytes]) -> list[bytes]:
    """Raw request bytes in, raw response bytes out (no message types involved)."""
    call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)
    return list(call(iter(requests), timeout=10))


def test_reflection_v1_and_v1alpha(components: Components) -> None:
    async def scenario() -> None:
        server = VerifierServer(components)
        port, _ = await server.start()
        try:
            await asyncio.to_thread(check, port)  # a blocking client while the server's loop serves
        finally:
            await server.stop(0)

    asyncio.run(scenario())


def check(port: int) -> None:
    request, response = v1_class("ServerReflectionRequest"), v1_class("ServerReflectionResponse")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        # v1 with v1's own types.
        listing, verifier_file, itself = (
            response.FromString(raw)
            for raw in ask(
                channel,
                V1_METHOD,
                [
                    request(list_services="").SerializeToString(),
                    request(file_containing_symbol="verifier.v1.Verifier").SerializeToString(),
                    request(file_containing_symbol=V1_SERVICE).SerializeToString(),
                ],
            )
        )
        names = {s.name for s in listing.list_services_response.service}
        assert {*SERVICE_NAMES, V1_SERVICE, V1ALPHA_SERVICE, "grpc.health.v1.Health"} <= names
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in verifier_file.file_descriptor_response.file_descriptor_proto
        ]
        verifier = next(f for f in files if f.name == "verifier/v1/verifier.proto")
        assert [s.name for s in verifier.service] == ["Verifier"]
        assert verifier.options.java_package == "dev.teeverifier.verifier.v1" and verifier.options.go_package
        (reflection_file,) = (
            descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in itself.file_descriptor_response.file_descriptor_proto
        )
        assert (reflection_file.package, reflection_file.name) == (
            "grpc.reflection.v1",
            "grpc/reflection/v1/reflection.proto",
        )
        assert reflection_file.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"
        # The same request bytes get the same answer bytes from v1alpha.
        same = [
            reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString(),
            reflection_pb2.ServerReflectionRequest(file_by_filename="verifier/v1/workloads.proto").SerializeToString(),
        ]
        assert ask(channel, V1_METHOD, same) == ask(channel, V1ALPHA_METHOD, same)
        # v1alpha through grpcio-reflection's own client: every method resolvable.
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {*SERVICE_NAMES, V1_SERVICE, V1ALPHA_SERVICE} <= set(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        verifier_service = pool.FindFileContainingSymbol("verifier.v1.Verifier").services_by_name["Verifier"]
        assert "claims_json" in verifier_service.methods_by_name["Appraise"].output_type.fields_by_name
        v1 = pool.FindFileContainingSymbol(V1_SERVICE).services_by_name["ServerReflection"]
        assert v1.methods_by_name["ServerReflectionInfo"].client_streaming
