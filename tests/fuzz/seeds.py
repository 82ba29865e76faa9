"""The known triggers of issue 10 and those the fuzz tier found (all fixed), kept in the corpus
so they stay fixed.

``python -m tests.fuzz.seeds`` writes them to ``tests/fuzz/corpus/``; a unit test checks the
committed files are exactly what this module builds.
"""

from __future__ import annotations

from pathlib import Path

from tests.fuzz import corpus, wire
from tests.fuzz.apis import Method, by_corpus_name
from tests.fuzz.safety import MEMBER_IDS
from x0tta6bl4.consensus.v1 import cluster_pb2, kv_pb2
from x0tta6bl4.sync.v1 import sync_pb2

INT64_MAX = (1 << 63) - 1
KV = "x0tta6bl4.consensus.v1.KVService"
CLUSTER = "x0tta6bl4.consensus.v1.ClusterService"
DIAGNOSTICS = "x0tta6bl4.platform.v1.DiagnosticsService"
SYNC = "x0tta6bl4.sync.v1.SyncService"
MEMBER_ADD_ADDRESSES = ("[::1", " a b :1", "a=b:1", "1.2.3.4:5,6=x:7")
PING_DELAYS = (
    (INT64_MAX, 0),
    (-INT64_MAX, 0),
    (0, -1),
    (0, 2_000_000_000),
    (1, -1),
    (-1, 1),
)


def _deep_operation(levels: int) -> bytes:
    """An UpdateRequest whose operation is ``levels`` nested OR-map updates."""
    op = wire.field_len(1, wire.field_varint(1, 1))  # Operation{increment{amount: 1}}
    for _ in range(levels):
        op = wire.field_len(9, wire.field_len(1, b"k") + wire.field_len(2, op))  # map_update
    return wire.field_len(1, b"fuzz/deep") + wire.field_len(3, op)


def _deep_type(levels: int) -> bytes:
    """An UpdateRequest whose type is ``levels`` nested OR-map types."""
    t = wire.field_varint(1, sync_pb2.CRDT_KIND_PN_COUNTER)
    for _ in range(levels):
        t = wire.field_varint(1, sync_pb2.CRDT_KIND_OR_MAP) + wire.field_len(2, t)
    return wire.field_len(1, b"fuzz/deep") + wire.field_len(2, t)


def triggers() -> list[tuple[str, bytes]]:
    """(Service.Method, request body) of every known trigger."""
    cases: list[tuple[str, bytes]] = [
        (
            f"{KV}.LeaseGrant",
            kv_pb2.LeaseGrantRequest(ttl_seconds=5, id=INT64_MAX).SerializeToString(),
        ),
        (f"{DIAGNOSTICS}.WhoAmI", b"\x01"),
        (f"{SYNC}.Get", bytes.fromhex("0a01ff")),
        (f"{SYNC}.Update", _deep_operation(120)),
        (f"{SYNC}.Update", _deep_type(120)),
        (f"{DIAGNOSTICS}.Ping", b"\x2b" * 120 + b"\x2c" * 120),  # 120 nested groups
        (f"{DIAGNOSTICS}.Ping", wire.nested(200, 2)),
        (
            f"{KV}.Watch",
            kv_pb2.WatchRequest(
                key=b"/fuzz/", prefix=True, start_revision=INT64_MAX
            ).SerializeToString(),
        ),
    ]
    # Found by the fuzz tier itself (tests/fuzz/test_found_defects.py says how they broke).
    cases += [("grpc.health.v1.Health.Watch", b""), ("grpc.health.v1.Health.List", b"")]
    for seconds, nanos in PING_DELAYS:
        cases.append((f"{DIAGNOSTICS}.Ping", wire.field_len(2, wire.duration(seconds, nanos))))
    for address in MEMBER_ADD_ADDRESSES:
        request = cluster_pb2.MemberAddRequest(id=MEMBER_IDS[0], address=address)
        cases.append((f"{CLUSTER}.MemberAdd", request.SerializeToString()))
    return cases


def seed_cases() -> list[tuple[Method, tuple[bytes, ...]]]:
    methods = by_corpus_name()
    return [(methods[name], (body,)) for name, body in triggers()]


def write(root: Path = corpus.CORPUS) -> list[Path]:
    return [corpus.save(root, method, messages) for method, messages in seed_cases()]


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
