"""The gRPC methods the fuzz tier sends to: found from the protobuf descriptors, not listed.

Every ``x0tta6bl4.<svc>.v1.*_pb2`` module in the package is imported (a walk of the
``x0tta6bl4`` package), and every method of every ``ServiceDescriptor`` in it becomes a
:class:`Method`; so an API added to identity, policy, healer or ops is fuzzed as soon as its
generated code is committed. The gRPC health service, which every process also serves, is
added from ``grpc_health``. Services of other servers whose protos we carry for our
clients (the SPIRE Server API subset under ``x0tta6bl4.identity.spire``) are not ours to fuzz.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Iterable
from functools import cache
from types import ModuleType

from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

import x0tta6bl4

_API_MODULE = re.compile(r"^x0tta6bl4\.(?:[a-z_]+\.)+v1\.[a-z_0-9]+_pb2$")
EXTRA_MODULES = ("grpc_health.v1.health_pb2",)
# Who serves a package's services: "x0tta6bl4.<svc>.v1" is served by <svc>; these by everyone.
SERVED_BY_EVERY_PROCESS = frozenset({"x0tta6bl4.platform.v1", "grpc.health.v1"})
_OURS = ("x0tta6bl4.", "grpc.health.")


@dataclasses.dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its full path (``/pkg.Service/Method``), request type and streaming kind."""

    path: str
    package: str
    service: str  # full name, e.g. x0tta6bl4.consensus.v1.KVService
    name: str
    input: Descriptor
    client_streaming: bool
    server_streaming: bool

    @property
    def input_class(self) -> type[Message]:
        return GetMessageClass(self.input)

    @property
    def served_by(self) -> str | None:
        """The service (process kind) that serves it, or None when every process does."""
        if self.package in SERVED_BY_EVERY_PROCESS:
            return None
        match = re.fullmatch(r"x0tta6bl4\.([a-z_]+)\.v1", self.package)
        if match is None:
            raise ValueError(f"{self.path}: no rule says which process serves {self.package}")
        return match.group(1)

    @property
    def corpus_name(self) -> str:
        """The method's path as one directory name: x0tta6bl4.consensus.v1.KVService.Put."""
        return f"{self.service}.{self.name}"


def api_modules() -> list[ModuleType]:
    """Every generated ``*_pb2`` module of the suite's v1 APIs, plus :data:`EXTRA_MODULES`."""
    names = [
        info.name
        for info in pkgutil.walk_packages(x0tta6bl4.__path__, "x0tta6bl4.")
        if _API_MODULE.match(info.name)
    ]
    return [importlib.import_module(n) for n in sorted(names) + list(EXTRA_MODULES)]


def _methods_of(module: ModuleType) -> Iterable[Method]:
    file = module.DESCRIPTOR
    for service in file.services_by_name.values():
        if not service.file.package.startswith(_OURS):
            continue
        for m in service.methods:
            yield _method(m)


def _method(m: MethodDescriptor) -> Method:
    service = m.containing_service
    return Method(
        path=f"/{service.full_name}/{m.name}",
        package=service.file.package,
        service=service.full_name,
        name=m.name,
        input=m.input_type,
        client_streaming=m.client_streaming,
        server_streaming=m.server_streaming,
    )


@cache
def discover() -> tuple[Method, ...]:
    """Every method of every service found, sorted by path."""
    found = {m.path: m for mod in api_modules() for m in _methods_of(mod)}
    return tuple(found[p] for p in sorted(found))


def by_corpus_name() -> dict[str, Method]:
    return {m.corpus_name: m for m in discover()}
