"""Settings of a sync replica, from ``X0_SYNC_*`` environment variables.

The platform's settings come from :func:`x0tta6bl4.platform.config.load_settings`; these are the
sync-only ones. Every value is validated at start-up and all problems are reported at once, each
naming its variable, as a :class:`~x0tta6bl4.platform.errors.ConfigError` (the process exits 2).

====================================  ======================================================
``X0_SYNC_REPLICA_ID``                this replica's id (``[A-Za-z0-9._-]{1,63}``; default the
                                      host name)
``X0_SYNC_PEERS``                     ``id=host:port,...`` of the other replicas (this one may be
                                      listed too; it is skipped). Default: none
``X0_SYNC_DATA_DIR``                  checkpoint and event log (default
                                      ``$X0_STATE_DIR/sync`` or ``./var/sync/<id>``)
``X0_SYNC_PUSH_INTERVAL_MS``          how often buffered deltas are pushed (default 100)
``X0_SYNC_ANTI_ENTROPY_INTERVAL_MS``  how often digests are exchanged and GC runs (default 1000)
``X0_SYNC_JOIN``                      ``true`` for a replica added later: it announces itself
                                      to its peers and bootstraps from a snapshot before writing
``X0_SYNC_ADVERTISE_ADDR``            host:port peers dial to reach this replica (default
                                      X0_GRPC_ADDR)
``X0_SYNC_CHECKPOINT_EVENTS``         write a checkpoint every N logged events (default 10000)
====================================  ======================================================
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from x0tta6bl4.platform.config import (
    EnvReader,
    HostPort,
    Settings,
    int_between,
    parse_bool,
    parse_peer_address,
)
from x0tta6bl4.platform.errors import ConfigError

_ID = re.compile(r"^[A-Za-z0-9._-]{1,63}\Z")


@dataclass(frozen=True, slots=True)
class SyncSettings:
    replica_id: str
    peers: dict[str, HostPort]
    data_dir: Path
    push_interval_ms: int = 100
    anti_entropy_interval_ms: int = 1000
    join: bool = False
    advertise_addr: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 0))
    checkpoint_events: int = 10_000


def _replica_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"must match {_ID.pattern}, got {value!r}")
    return value


def parse_peers(value: str) -> dict[str, HostPort]:
    """``b=127.0.0.1:7002,c=127.0.0.1:7003`` -> addresses by replica id."""
    peers: dict[str, HostPort] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        ident, sep, addr = item.partition("=")
        if not sep:
            raise ValueError(f"expected id=host:port items, got {item!r}")
        ident = _replica_id(ident.strip())
        if ident in peers:
            raise ValueError(f"replica {ident} appears twice")
        peers[ident] = parse_peer_address(addr.strip())
    return peers


def load_sync_settings(
    platform: Settings, environ: Mapping[str, str] | None = None
) -> SyncSettings:
    """Validated sync settings; raises ConfigError naming every bad variable."""
    env = os.environ if environ is None else environ
    reader = EnvReader(env)
    get, problems = reader.get, reader.problems

    default_id = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63] or "replica"
    replica_id = get("X0_SYNC_REPLICA_ID", _replica_id, default_id)
    no_peers: dict[str, HostPort] = {}
    peers = get("X0_SYNC_PEERS", parse_peers, no_peers)
    peers.pop(replica_id, None)
    push = get("X0_SYNC_PUSH_INTERVAL_MS", int_between(1, 600_000), 100)
    anti_entropy = get("X0_SYNC_ANTI_ENTROPY_INTERVAL_MS", int_between(10, 3_600_000), 1000)
    join = get("X0_SYNC_JOIN", parse_bool, False)
    advertise = get("X0_SYNC_ADVERTISE_ADDR", parse_peer_address, platform.grpc_addr)
    checkpoint_events = get("X0_SYNC_CHECKPOINT_EVENTS", int_between(1, 1 << 30), 10_000)
    if join and not peers:
        problems.append("X0_SYNC_JOIN: a joining replica needs X0_SYNC_PEERS to join through")

    data_dir = reader.directory(
        "X0_SYNC_DATA_DIR",
        Path(platform.state_dir) / "sync"
        if platform.state_dir
        else Path("var") / "sync" / replica_id,
    )
    if problems:
        raise ConfigError(problems)
    return SyncSettings(
        replica_id=replica_id,
        peers=peers,
        data_dir=data_dir.resolve(),
        push_interval_ms=push,
        anti_entropy_interval_ms=anti_entropy,
        join=join,
        advertise_addr=advertise,
        checkpoint_events=checkpoint_events,
    )
