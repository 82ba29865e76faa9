"""The fuzz tier's own parts, without a running suite: discovery, the generator, the safety
rules, wire encoding and the corpus (fast)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from google.protobuf.message import Message

from tests.fuzz import corpus, domain, seeds, wire
from tests.fuzz.apis import Method, api_modules, discover
from tests.fuzz.generate import MAX_BODY, MAX_ITEMS, STRATEGIES, Generator
from tests.fuzz.safety import (
    KV_PREFIX,
    MEMBER_IDS,
    PARSE_ERRORS,
    SPIFFE_PREFIX,
    SYNC_PREFIX,
    Safety,
    confined,
)
from x0tta6bl4.consensus.v1 import cluster_pb2, kv_pb2
from x0tta6bl4.platform.v1 import diagnostics_pb2
from x0tta6bl4.sync.core import decode_context
from x0tta6bl4.sync.core.errors import DecodeError as SyncDecodeError
from x0tta6bl4.sync.v1 import sync_pb2

SAFETY = Safety((40001, 40002))
SERVICES = Path(__file__).resolve().parents[2] / "services"
METHODS = {m.path: m for m in discover()}


def _method(path: str) -> Method:
    return METHODS[path]


def _parse(method: Method, body: bytes) -> Message | None:
    try:
        return method.input_class.FromString(body)
    except PARSE_ERRORS:
        return None


def _bodies(method: Method, n: int, seed: int = 7, strategy: str | None = None) -> list[bytes]:
    g = Generator(seed)
    return [b for _ in range(n) for b in g.request(method, strategy).messages]


def test_every_generated_api_module_and_every_method_in_it_is_found() -> None:
    on_disk = {
        ".".join(p.relative_to(SERVICES).with_suffix("").parts)
        for p in SERVICES.glob("x0tta6bl4/**/v1/*_pb2.py")
    }
    assert on_disk <= {m.__name__ for m in api_modules()}
    for module in api_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            ours = not service.full_name.startswith("spire.")  # SPIRE's API: our client's
            for m in service.methods:
                assert (f"/{service.full_name}/{m.name}" in METHODS) == ours
    services = {m.service.rsplit(".", 1)[1] for m in discover()}
    six = {"Diagnostics", "KV", "Cluster", "Raft", "Sync", "Replication"}
    assert {f"{name}Service" for name in six} <= services


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_method_gets_requests_within_the_bounds(strategy: str) -> None:
    g = Generator(3)
    for method in discover():
        for _ in range(3):
            request = g.request(method, strategy)
            assert 1 <= len(request.messages) <= (4 if method.client_streaming else 1)
            assert all(len(b) <= MAX_BODY for b in request.messages), method.path


def test_the_same_seed_gives_the_same_bytes() -> None:
    def run(seed: int) -> list[bytes]:
        g = Generator(seed)
        return [b for m in discover() for _ in range(5) for b in g.request(m).messages]

    assert run(11) == run(11)
    assert run(11) != run(12)


def _parsed(path: str, n: int, strategy: str) -> list[Message]:
    method = _method(path)
    return [m for b in _bodies(method, n, strategy=strategy) if (m := _parse(method, b))]


def test_extremes_reach_the_edges_of_int64_durations_and_utf8() -> None:
    leases = _parsed("/x0tta6bl4.consensus.v1.KVService/LeaseGrant", 400, "extremes")
    ids = {m.id for m in leases if isinstance(m, kv_pb2.LeaseGrantRequest)}
    assert {(1 << 63) - 1, -(1 << 63), -1, 0} <= ids
    pings = _parsed("/x0tta6bl4.platform.v1.DiagnosticsService/Ping", 600, "extremes")
    delays = [m.delay for m in pings if isinstance(m, diagnostics_pb2.PingRequest)]
    assert {(1 << 63) - 1, -((1 << 63) - 1)} <= {d.seconds for d in delays}
    assert {-1, 2_000_000_000} <= {d.nanos for d in delays}
    get = _method("/x0tta6bl4.sync.v1.SyncService/Get")
    refused = [b for b in _bodies(get, 300, strategy="extremes") if _parse(get, b) is None]
    assert refused, "no invalid UTF-8 key in 300 sync Gets"


def test_deep_requests_pass_the_recursion_limit_and_huge_ones_the_item_bound() -> None:
    update = _method("/x0tta6bl4.sync.v1.SyncService/Update")
    with pytest.raises(PARSE_ERRORS):
        update.input_class.FromString(_bodies(update, 1, strategy="deep")[0])
    txn = _method("/x0tta6bl4.consensus.v1.KVService/Txn")
    sizes = []
    for body in _bodies(txn, 40, strategy="huge"):
        parsed = _parse(txn, body)
        if isinstance(parsed, kv_pb2.TxnRequest):
            sizes.append(max(len(parsed.compare), len(parsed.success), len(parsed.failure)))
    assert max(sizes) > 128 and max(sizes) <= MAX_ITEMS


def test_every_key_a_consensus_or_sync_request_names_is_under_the_fuzz_prefix() -> None:
    def kv_keys(m: Message) -> list[bytes]:
        if isinstance(m, kv_pb2.TxnRequest):
            ops = [op for op in [*m.success, *m.failure] if op.WhichOneof("op")]
            return [c.key for c in m.compare] + [
                getattr(op, str(op.WhichOneof("op"))).key for op in ops
            ]
        return [v for f in ("key", "prefix") if isinstance(v := getattr(m, f, None), bytes)]

    checked = 0
    for method in discover():
        if method.service not in (
            "x0tta6bl4.consensus.v1.KVService",
            "x0tta6bl4.sync.v1.SyncService",
        ):
            continue
        for body in _bodies(method, 300):
            parsed = _parse(method, SAFETY.message(method, body))
            if parsed is None:
                continue
            checked += 1
            if method.package == "x0tta6bl4.sync.v1":
                for f in ("key", "prefix"):
                    if f in parsed.DESCRIPTOR.fields_by_name:
                        assert getattr(parsed, f).startswith(SYNC_PREFIX), (method.path, parsed)
            else:
                assert all(k.startswith(KV_PREFIX) for k in kv_keys(parsed)), (method.path, parsed)
    assert checked > 1000


def test_an_empty_delete_is_confined_to_the_fuzz_prefix() -> None:
    delete = _method("/x0tta6bl4.consensus.v1.KVService/Delete")
    safe = SAFETY.message(delete, kv_pb2.DeleteRequest(prefix=True).SerializeToString())
    assert kv_pb2.DeleteRequest.FromString(safe).key == KV_PREFIX
    assert SAFETY.message(delete, b"\x01") == b"\x01"  # does not parse: sent as it is


def test_member_ids_and_addresses_never_name_a_member_or_a_listener() -> None:
    add = _method("/x0tta6bl4.consensus.v1.ClusterService/MemberAdd")
    for member_id in (1, 2, 3, 999):
        body = cluster_pb2.MemberAddRequest(id=member_id, address="10.0.0.1:7001")
        safe = cluster_pb2.MemberAddRequest.FromString(
            SAFETY.message(add, body.SerializeToString())
        )
        assert safe.id in MEMBER_IDS
        assert safe.address in ("127.0.0.1:40001", "127.0.0.1:40002")
    refused = cluster_pb2.MemberAddRequest(id=0, address="1.2.3.4:5,6=x:7").SerializeToString()
    assert SAFETY.message(add, refused) == refused  # the service's parser refuses it
    for body in _bodies(add, 300):
        parsed = _parse(add, SAFETY.message(add, body))
        if isinstance(parsed, cluster_pb2.MemberAddRequest) and parsed.id not in (0,):
            assert parsed.id in MEMBER_IDS or parsed.id > (1 << 63) - 1


def test_a_method_the_rules_do_not_cover_only_gets_bodies_that_do_not_parse() -> None:
    ping = _method("/x0tta6bl4.platform.v1.DiagnosticsService/Ping")
    new_api = dataclasses.replace(ping, package="x0tta6bl4.ops.v1", path="/x0tta6bl4.ops.v1.X/Y")
    assert confined(ping) and not confined(new_api)
    for body in _bodies(ping, 100):
        assert _parse(new_api, SAFETY.message(new_api, body)) is None
    reconcile = METHODS.get("/x0tta6bl4.identity.v1.IdentityService/Reconcile")
    if reconcile is not None:
        assert _parse(reconcile, SAFETY.message(reconcile, b"")) is None


def test_identity_requests_name_only_spiffe_ids_in_the_fuzz_namespace() -> None:
    for method in discover():
        if method.package != "x0tta6bl4.identity.v1" or not confined(method):
            continue
        for body in _bodies(method, 100):
            parsed = _parse(method, SAFETY.message(method, body))
            if parsed is None:
                continue
            has_workload = "workload" in parsed.DESCRIPTOR.fields_by_name and parsed.HasField(
                "workload"
            )
            for sub in (parsed, getattr(parsed, "workload", None) if has_workload else None):
                for name in ("spiffe_id", "parent_id", "expected_spiffe_id", "spiffe_id_prefix"):
                    if sub is not None and name in sub.DESCRIPTOR.fields_by_name:
                        assert getattr(sub, name).startswith(SPIFFE_PREFIX), (method.path, sub)


def test_generated_sync_contexts_are_read_or_refused_by_the_core_decoder() -> None:
    import random

    rng = random.Random(5)
    read = 0
    for _ in range(2000):
        try:
            decode_context(domain.sync_context(rng))
            read += 1
        except SyncDecodeError:
            pass
    assert 0 < read < 2000


def test_wire_encoding() -> None:
    assert wire.varint(-1) == b"\xff" * 9 + b"\x01"
    assert wire.zigzag(-1) == 1 and wire.zigzag(1) == 2
    assert wire.unframe(wire.frames([b"a", b"", b"bc"])) == [b"a", b"", b"bc"]
    ping = diagnostics_pb2.PingRequest.FromString(wire.field_len(2, wire.duration(-1, 1)))
    assert (ping.delay.seconds, ping.delay.nanos) == (-1, 1)
    assert len(wire.nested(200)) > 200
    assert sync_pb2.GetRequest.FromString(wire.field_len(1, b"k")).key == "k"


def test_the_committed_seed_corpus_is_what_seeds_builds(tmp_path: Path) -> None:
    for method, messages in seeds.seed_cases():
        assert corpus.case_path(corpus.CORPUS, method, messages).exists(), method.path
    loaded = corpus.load()
    assert len(loaded) >= len(seeds.seed_cases())
    (tmp_path / "x0tta6bl4.gone.v1.Service.Method").mkdir()
    with pytest.raises(ValueError, match="no method"):
        corpus.load(tmp_path)
