"""Values exchanged by the Raft core: log entries, messages, hard/soft state, snapshots.

Everything here is an immutable value (frozen dataclass with slots). The core never
serialises messages itself; the transport adapter maps them to protobuf.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NONE = 0
"""Node id meaning "nobody" (no leader, no vote). Real node ids are positive."""


class EntryType(enum.Enum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    data: bytes = b""
    type: EntryType = EntryType.NORMAL

    def size(self) -> int:
        """Approximate encoded size used for message and in-flight byte budgets."""
        return len(self.data) + 16


class MessageType(enum.Enum):
    APP = "app"
    APP_RESP = "app_resp"
    VOTE = "vote"
    VOTE_RESP = "vote_resp"
    PRE_VOTE = "pre_vote"
    PRE_VOTE_RESP = "pre_vote_resp"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat_resp"
    SNAP = "snap"
    TIMEOUT_NOW = "timeout_now"
    READ_INDEX = "read_index"
    READ_INDEX_RESP = "read_index_resp"


@dataclass(frozen=True, slots=True)
class ConfState:
    """A membership configuration as persisted in snapshots.

    ``voters_outgoing`` is non-empty only while in a joint configuration C_old,new;
    ``learners_next`` are outgoing voters that become learners when the joint state is left.
    """

    voters: frozenset[int] = frozenset()
    voters_outgoing: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()
    learners_next: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Metadata plus the opaque state-machine image (chunking/compression live in the adapter)."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term


@dataclass(frozen=True, slots=True)
class Message:
    """A Raft RPC. Field use per type follows etcd's raftpb.Message.

    - APP: ``index``/``log_term`` identify the entry preceding ``entries``; ``commit`` is the
      leader's commit index.
    - APP_RESP: ``index`` is the follower's last matching index on success; on rejection,
      ``index`` echoes the rejected APP's ``index`` and (``reject_hint``, ``log_term``) is the
      follower's hint: the largest index <= hint whose term is <= the leader's ``log_term``.
    - VOTE/PRE_VOTE: ``index``/``log_term`` describe the candidate's last entry;
      ``context == CAMPAIGN_TRANSFER`` marks an election forced by leadership transfer.
    - HEARTBEAT/HEARTBEAT_RESP, READ_INDEX/READ_INDEX_RESP: ``context`` carries the read
      request context; READ_INDEX_RESP's ``index`` is the read index.
    """

    type: MessageType
    to: int
    frm: int
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


CAMPAIGN_TRANSFER = b"\x00campaign-transfer"


@dataclass(frozen=True, slots=True)
class HardState:
    """State that must be on stable storage before any message depending on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state, reported for observability and request routing; never persisted."""

    leader: int
    role: Role


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex result: the read identified by ``context`` may be served once the local
    applied index is >= ``index``."""

    index: int
    context: bytes
