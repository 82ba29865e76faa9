"""Values that mean something to this suite, for fields a plain generator would only ever fill
with noise: sync causal contexts in the core's own encoding (so counters at and past 2^63-1
reach the code that reads them), member addresses in every shape the strict parser must
refuse, and replica ids.
"""

from __future__ import annotations

import random

from tests.fuzz.wire import varint

# The sync core's client-context encoding (x0tta6bl4.sync.core.codec):
#   context := version:u8 0x40 replicas cc;  replicas := n n*(len utf8)
#   cc := varint(n << 1 | has_cloud) n*(replica_index counter) [m m*(replica_index counter)]
CONTEXT_VERSION = 1
CONTEXT_TAG = 0x40
REPLICA_IDS = ("a", "b", "c", "r1", "r2", "r3", "fuzz-x")
COUNTERS = (
    0,
    1,
    2,
    3,
    1 << 31,
    (1 << 32) + 1,
    (1 << 63) - 2,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
)
ADDRESSES = (
    "[::1",
    " a b :1",
    "a=b:1",
    "1.2.3.4:5,6=x:7",
    "[::1]:0",
    "[::1]",
    "::1:7001",
    "[not-ipv6]:1",
    "127.0.0.1",
    "127.0.0.1:",
    ":7001",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1:-1",
    "127.0.0.1:99999999999999999999",
    "256.1.1.1:1",
    "1.2.3:4",
    "host_name:1",
    "-host:1",
    "a" * 64 + ":1",
    ("a." * 130) + "b:1",
    "h\u00f6st:1",
    "127.0.0.1:\u0661\u0662",
    "127.0.0.1:1\x00",
    "127.0.0.1\t:1",
    "",
)


def counter(rng: random.Random) -> int:
    return rng.choice(COUNTERS) if rng.random() < 0.8 else rng.randrange(1 << 64)


def sync_context(rng: random.Random) -> bytes:
    """An encoded causal context, mostly well-formed, with extreme counters."""
    replicas = rng.sample(REPLICA_IDS, rng.randint(0, 3))
    if rng.random() < 0.05:
        replicas.append(rng.choice(["", "\udcff", "x" * 600]))
    out = bytearray([CONTEXT_VERSION, CONTEXT_TAG])
    if rng.random() < 0.05:
        out[rng.randrange(2)] = rng.randrange(256)
    out += varint(len(replicas))
    for r in replicas:
        raw = r.encode("utf-8", "surrogatepass")
        out += varint(len(raw)) + raw
    n = min(len(replicas), rng.randint(0, 3)) if rng.random() < 0.95 else rng.randint(0, 5)
    cloud = [
        (rng.randrange(max(1, len(replicas) + 1)), counter(rng)) for _ in range(rng.randint(0, 3))
    ]
    has_cloud = bool(cloud) if rng.random() < 0.95 else rng.random() < 0.5
    out += varint((n << 1) | has_cloud)
    for i in range(n):
        out += varint(i if rng.random() < 0.9 else rng.randrange(8)) + varint(counter(rng))
    if has_cloud:
        out += varint(len(cloud))
        for index, c in cloud:
            out += varint(index) + varint(c)
    if rng.random() < 0.05:
        out += rng.randbytes(rng.randint(1, 4))
    return bytes(out)


def address(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(ADDRESSES)
    host = rng.choice(["127.0.0.1", "localhost", "[::1]", "10.0.0.1", "example.invalid"])
    return f"{host}:{rng.choice([1, 80, 7001, 65535, rng.randrange(1, 65536)])}"


def replica_id(rng: random.Random) -> str:
    return rng.choice([*REPLICA_IDS, "", "fuzz-" + "y" * rng.randint(0, 600)])
