"""Raft settings of a consensus member, from ``X0_RAFT_*`` environment variables.

The platform's settings (addresses, SPIFFE socket, OPA, ...) come from
:func:`x0tta6bl4.platform.config.load_settings`; these are the consensus-only ones. Every value
is validated at start-up and all problems are reported at once, each naming its variable, as a
:class:`~x0tta6bl4.platform.errors.ConfigError` (the process exits 2).

==============================  ==========================================================
``X0_RAFT_NODE_ID``             this member's id (positive integer; default 1)
``X0_RAFT_PEERS``               ``id=host:port[@zone],...`` of the initial members, this one
                                included (default: a single-member cluster at X0_GRPC_ADDR)
``X0_RAFT_DATA_DIR``            WAL and snapshots (default ``$X0_STATE_DIR/raft`` or
                                ``./var/consensus/node-<id>``)
``X0_RAFT_TICK_MS``             length of one Raft tick (default 10)
``X0_RAFT_HEARTBEAT_TICKS``     heartbeat interval in ticks (default 10 = 100 ms)
``X0_RAFT_ELECTION_TICKS``      base election timeout in ticks; the effective timeout is
                                drawn from [e, 2e) (default 50 = 0.5-1 s)
``X0_RAFT_SNAPSHOT_ENTRIES``    take a snapshot every N applied entries (default 10000)
``X0_RAFT_CATCHUP_ENTRIES``     entries kept in memory before a snapshot for slow followers
                                (default 1000)
``X0_RAFT_HISTORY_REVISIONS``   MVCC revisions kept for reads at old revisions and watches;
                                the leader compacts older history (default 10000)
``X0_RAFT_PREFERRED_LEADER``    id of the member that should lead when healthy (default 0)
``X0_RAFT_PREFERRED_ZONE``      zone the leader should be in: after a failover the leader
                                hands leadership back to a caught-up voter of that zone
                                (default: none; X0_RAFT_PREFERRED_LEADER takes precedence)
``X0_RAFT_LINK_RTT_MS``         ``id=ms,...`` round-trip times to the other members; the
                                heartbeat and election timers are raised to suit the slowest
                                link (topology.timers_for_rtt; never lowered). The
                                measured round trips are in x0tta6bl4_raft_peer_rtt_seconds
                                (leader), which logs raft.link_rtt_high when one is too slow
                                for the configured timers
``X0_RAFT_JOIN``                ``true`` for a member added later with MemberAdd: it starts
                                empty and waits for the leader's snapshot (default false)
``X0_RAFT_MAX_INFLIGHT``        pipelined append messages per follower (default 256)
``X0_RAFT_SNAPSHOT_CHUNK_BYTES``  InstallSnapshot chunk size (default 262144)
``X0_RAFT_READ_BATCH_MS``       least time between two ReadIndex rounds: linearizable reads
                                that arrive meanwhile share the next round (default 2; 0 =
                                a new round as soon as the last one is answered)
==============================  ==========================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from x0tta6bl4.consensus.core.topology import Member, check_placement, timers_for_rtt
from x0tta6bl4.platform.config import (
    EnvReader,
    HostPort,
    Settings,
    int_between,
    parse_bool,
    parse_peer_address,
)
from x0tta6bl4.platform.errors import ConfigError

_ZONE = re.compile(r"^[A-Za-z0-9._-]{1,63}\Z")


@dataclass(frozen=True, slots=True)
class Peer:
    """A member of the initial configuration."""

    node_id: int
    address: HostPort
    zone: str = ""


@dataclass(frozen=True, slots=True)
class RaftSettings:
    node_id: int
    peers: dict[int, Peer]
    data_dir: Path
    tick_ms: int = 10
    heartbeat_ticks: int = 10
    election_ticks: int = 50
    snapshot_entries: int = 10_000
    catchup_entries: int = 1_000
    history_revisions: int = 10_000
    preferred_leader: int = 0
    preferred_zone: str = ""
    link_rtt_ms: dict[int, float] = field(default_factory=dict)
    join: bool = False
    max_inflight: int = 256
    snapshot_chunk_bytes: int = 256 * 1024
    read_batch_ms: int = 2
    notes: list[str] = field(default_factory=list)

    @property
    def heartbeat_ms(self) -> int:
        return self.heartbeat_ticks * self.tick_ms

    @property
    def election_ms(self) -> int:
        """The base election timeout (each election draws from [t, 2t))."""
        return self.election_ticks * self.tick_ms


def check_zone(zone: str, node_id: int) -> str:
    """``zone`` if it is a valid zone name (empty = no zone)."""
    if zone and not _ZONE.match(zone):
        raise ValueError(f"zone of member {node_id} must match {_ZONE.pattern}, got {zone!r}")
    return zone


def parse_peers(value: str) -> dict[int, Peer]:
    """``1=127.0.0.1:7001@zone-a,2=127.0.0.1:7002@zone-b`` -> peers by id."""
    peers: dict[int, Peer] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        ident, sep, rest = item.partition("=")
        if not sep:
            raise ValueError(f"expected id=host:port[@zone] items, got {item!r}")
        try:
            node_id = int(ident)
        except ValueError:
            raise ValueError(f"member id must be a positive integer, got {ident!r}") from None
        if node_id <= 0:
            raise ValueError(f"member id must be a positive integer, got {ident!r}")
        if node_id in peers:
            raise ValueError(f"member id {node_id} appears twice")
        addr, _, zone = rest.partition("@")
        peers[node_id] = Peer(node_id, parse_peer_address(addr), check_zone(zone, node_id))
    if not peers:
        raise ValueError("no members given")
    return peers


def parse_link_rtts(value: str) -> dict[int, float]:
    """``2=80,3=80`` -> round-trip time (ms) by member id."""
    rtts: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        ident, sep, ms = item.partition("=")
        if not sep or not ident.strip().isdigit() or int(ident) <= 0:
            raise ValueError(f"expected id=milliseconds items, got {item!r}")
        try:
            rtt = float(ms)
        except ValueError:
            raise ValueError(f"round-trip time of member {ident} must be a number") from None
        if not 0 <= rtt <= 60_000:
            raise ValueError(f"round-trip time of member {ident} must be 0-60000 ms, got {ms}")
        rtts[int(ident)] = rtt
    return rtts


def _zone(value: str) -> str:
    if not _ZONE.match(value):
        raise ValueError(f"must match {_ZONE.pattern}, got {value!r}")
    return value


def load_raft_settings(
    platform: Settings, environ: Mapping[str, str] | None = None
) -> RaftSettings:
    """Validated Raft settings; raises ConfigError naming every bad variable."""
    env = os.environ if environ is None else environ
    reader = EnvReader(env)
    get, problems = reader.get, reader.problems

    node_id = get("X0_RAFT_NODE_ID", int_between(1), 1)
    tick_ms = get("X0_RAFT_TICK_MS", int_between(1, 10_000), 10)
    heartbeat = get("X0_RAFT_HEARTBEAT_TICKS", int_between(1, 100_000), 10)
    election = get("X0_RAFT_ELECTION_TICKS", int_between(2, 1_000_000), 50)
    snapshot_entries = get("X0_RAFT_SNAPSHOT_ENTRIES", int_between(10), 10_000)
    catchup = get("X0_RAFT_CATCHUP_ENTRIES", int_between(0), 1_000)
    history = get("X0_RAFT_HISTORY_REVISIONS", int_between(1), 10_000)
    preferred = get("X0_RAFT_PREFERRED_LEADER", int_between(0), 0)
    preferred_zone = get("X0_RAFT_PREFERRED_ZONE", _zone, "")
    link_rtt: dict[int, float] = get("X0_RAFT_LINK_RTT_MS", parse_link_rtts, {})
    join = get("X0_RAFT_JOIN", parse_bool, False)
    max_inflight = get("X0_RAFT_MAX_INFLIGHT", int_between(1, 1_000_000), 256)
    chunk = get("X0_RAFT_SNAPSHOT_CHUNK_BYTES", int_between(1024, 64 << 20), 256 * 1024)
    read_batch = get("X0_RAFT_READ_BATCH_MS", int_between(0, 1000), 2)
    if election <= heartbeat and not problems:
        problems.append(
            f"X0_RAFT_ELECTION_TICKS: must exceed X0_RAFT_HEARTBEAT_TICKS ({heartbeat}), "
            f"got {election}"
        )

    default_addr = platform.grpc_addr
    peers: dict[int, Peer] = {}
    if env.get("X0_RAFT_PEERS", "").strip():
        try:
            peers = parse_peers(env["X0_RAFT_PEERS"])
        except ValueError as err:
            problems.append(f"X0_RAFT_PEERS: {err}")
        else:
            if node_id not in peers and not join:
                problems.append(
                    f"X0_RAFT_PEERS: does not list this member (X0_RAFT_NODE_ID={node_id})"
                )
    else:
        if default_addr.port == 0:
            problems.append(
                "X0_RAFT_PEERS: not set, and X0_GRPC_ADDR has no fixed port to run a "
                "single-member cluster on"
            )
        peers = {node_id: Peer(node_id, default_addr, "")}
    if join and node_id not in peers:
        peers = {**peers, node_id: Peer(node_id, default_addr, "")}
    if preferred and peers and preferred not in peers:
        problems.append(f"X0_RAFT_PREFERRED_LEADER: {preferred} is not in X0_RAFT_PEERS")

    data_dir = reader.directory(
        "X0_RAFT_DATA_DIR",
        Path(platform.state_dir) / "raft"
        if platform.state_dir
        else Path("var") / "consensus" / f"node-{node_id}",
    )

    if preferred_zone and peers and all(p.zone != preferred_zone for p in peers.values()):
        problems.append(
            f"X0_RAFT_PREFERRED_ZONE: no member of X0_RAFT_PEERS is in {preferred_zone}"
        )
    unknown = sorted(set(link_rtt) - set(peers)) if peers else []
    if unknown:
        problems.append(f"X0_RAFT_LINK_RTT_MS: members {unknown} are not in X0_RAFT_PEERS")

    notes: list[str] = []
    zones = [p.zone for p in peers.values() if p.zone]
    if zones and len(zones) == len(peers) and not join:
        notes.extend(check_placement([Member(p.node_id, p.zone) for p in peers.values()]))
    if link_rtt and not problems:
        # Raise (never lower) the configured timers to suit the slowest link.
        timers = timers_for_rtt(
            {i: ms for i, ms in link_rtt.items() if i != node_id},
            tick_ms=tick_ms,
            min_heartbeat_ms=heartbeat * tick_ms,
            election_factor=max(3, -(-election // heartbeat)),
        )
        if timers.heartbeat_ticks > heartbeat or timers.election_ticks > election:
            notes.append(
                f"timers raised for link RTTs {link_rtt} ms: heartbeat "
                f"{heartbeat * tick_ms}->{timers.heartbeat_ms} ms, election "
                f"{election * tick_ms}->{max(election, timers.election_ticks) * tick_ms} ms"
            )
        heartbeat = max(heartbeat, timers.heartbeat_ticks)
        election = max(election, timers.election_ticks)
    if problems:
        raise ConfigError(problems)
    return RaftSettings(
        node_id=node_id,
        peers=peers,
        data_dir=data_dir.resolve(),
        tick_ms=tick_ms,
        heartbeat_ticks=heartbeat,
        election_ticks=election,
        snapshot_entries=snapshot_entries,
        catchup_entries=catchup,
        history_revisions=history,
        preferred_leader=preferred,
        preferred_zone=preferred_zone,
        link_rtt_ms=link_rtt,
        join=join,
        max_inflight=max_inflight,
        snapshot_chunk_bytes=chunk,
        read_batch_ms=read_batch,
        notes=notes,
    )
