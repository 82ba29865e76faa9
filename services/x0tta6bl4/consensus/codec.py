"""Mapping between the Raft core's values and their wire/file forms.

- Raft messages <-> ``RaftMessage`` protobufs (the peer transport).
- :class:`ConfState` <-> the JSON ``meta`` blob of snapshot files.
- Write outcomes <-> bytes (``ForwardResponse.outcome``).
"""

from __future__ import annotations

import json

from x0tta6bl4.consensus.core.kv_codec import Reader, Writer
from x0tta6bl4.consensus.core.kv_results import Outcome, decode_outcome, encode_outcome
from x0tta6bl4.consensus.core.messages import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
)
from x0tta6bl4.consensus.v1 import raft_pb2

_PbMsg = raft_pb2.RaftMessage
_PbEntry = raft_pb2.LogEntry

_TYPE_TO_PB: dict[MessageType, _PbMsg.Type.ValueType] = {
    MessageType.APP: _PbMsg.TYPE_APP,
    MessageType.APP_RESP: _PbMsg.TYPE_APP_RESP,
    MessageType.VOTE: _PbMsg.TYPE_VOTE,
    MessageType.VOTE_RESP: _PbMsg.TYPE_VOTE_RESP,
    MessageType.PRE_VOTE: _PbMsg.TYPE_PRE_VOTE,
    MessageType.PRE_VOTE_RESP: _PbMsg.TYPE_PRE_VOTE_RESP,
    MessageType.HEARTBEAT: _PbMsg.TYPE_HEARTBEAT,
    MessageType.HEARTBEAT_RESP: _PbMsg.TYPE_HEARTBEAT_RESP,
    MessageType.SNAP: _PbMsg.TYPE_SNAP,
    MessageType.TIMEOUT_NOW: _PbMsg.TYPE_TIMEOUT_NOW,
    MessageType.READ_INDEX: _PbMsg.TYPE_READ_INDEX,
    MessageType.READ_INDEX_RESP: _PbMsg.TYPE_READ_INDEX_RESP,
}
_TYPE_FROM_PB = {v: k for k, v in _TYPE_TO_PB.items()}
_ENTRY_TO_PB = {
    EntryType.NORMAL: _PbEntry.TYPE_NORMAL,
    EntryType.CONF_CHANGE: _PbEntry.TYPE_CONF_CHANGE,
}
_ENTRY_FROM_PB = {v: k for k, v in _ENTRY_TO_PB.items()}


class WireError(ValueError):
    """A peer sent a message that cannot be decoded."""


def message_to_pb(m: Message) -> raft_pb2.RaftMessage:
    """The protobuf form of a Raft message (snapshot messages travel by InstallSnapshot)."""
    pb = _PbMsg(
        type=_TYPE_TO_PB[m.type],
        to=m.to,
        sender=m.frm,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        commit=m.commit,
        reject=m.reject,
        reject_hint=m.reject_hint,
        context=m.context,
    )
    if m.entries:
        pb.entries.extend(
            _PbEntry(term=e.term, index=e.index, type=_ENTRY_TO_PB[e.type], data=e.data)
            for e in m.entries
        )
    return pb


def message_from_pb(pb: raft_pb2.RaftMessage) -> Message:
    try:
        mtype = _TYPE_FROM_PB[pb.type]
        entries = tuple(
            Entry(term=e.term, index=e.index, data=e.data, type=_ENTRY_FROM_PB[e.type])
            for e in pb.entries
        )
    except KeyError as exc:
        raise WireError(f"unknown message or entry type {exc}") from None
    if mtype is MessageType.SNAP:
        raise WireError("snapshots travel by InstallSnapshot, not Send")
    return Message(
        type=mtype,
        to=pb.to,
        frm=pb.sender,
        term=pb.term,
        log_term=pb.log_term,
        index=pb.index,
        entries=entries,
        commit=pb.commit,
        reject=pb.reject,
        reject_hint=pb.reject_hint,
        context=pb.context,
    )


Members = dict[int, tuple[str, str]]
"""Addresses of members added at run time: id -> (host:port, zone)."""


def encode_snapshot_meta(cs: ConfState, members: Members) -> bytes:
    """The ``meta`` blob of a snapshot file: the membership and the run-time member addresses."""
    return json.dumps(
        {
            "voters": sorted(cs.voters),
            "voters_outgoing": sorted(cs.voters_outgoing),
            "learners": sorted(cs.learners),
            "learners_next": sorted(cs.learners_next),
            "members": {str(k): list(v) for k, v in sorted(members.items())},
        },
        sort_keys=True,
    ).encode()


def decode_snapshot_meta(data: bytes) -> tuple[ConfState, Members]:
    try:
        raw = json.loads(data)
        cs = ConfState(
            voters=frozenset(int(i) for i in raw["voters"]),
            voters_outgoing=frozenset(int(i) for i in raw["voters_outgoing"]),
            learners=frozenset(int(i) for i in raw["learners"]),
            learners_next=frozenset(int(i) for i in raw["learners_next"]),
        )
        members = {int(k): (str(v[0]), str(v[1])) for k, v in raw.get("members", {}).items()}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise WireError(f"malformed membership in snapshot metadata: {exc}") from None
    return cs, members


MEMBER_RECORD_MAGIC = b"\x00x0-member\x00"
"""Log entries starting with this are member address records, not state-machine commands."""


def encode_member_record(node_id: int, address: str, zone: str) -> bytes:
    return MEMBER_RECORD_MAGIC + json.dumps([node_id, address, zone]).encode()


def decode_member_record(data: bytes) -> tuple[int, str, str] | None:
    try:
        node_id, address, zone = json.loads(data[len(MEMBER_RECORD_MAGIC) :])
        return int(node_id), str(address), str(zone)
    except (ValueError, TypeError):
        return None


def encode_outcome_bytes(outcome: Outcome) -> bytes:
    w = Writer()
    encode_outcome(w, outcome)
    return w.getvalue()


def decode_outcome_bytes(data: bytes) -> Outcome:
    r = Reader(data)
    outcome = decode_outcome(r)
    r.expect_end()
    return outcome
