"""ClusterService: status, membership changes and leadership transfer."""

from __future__ import annotations

from typing import Any

from grpc import aio

from x0tta6bl4.consensus.core.membership import ConfChange, ConfChangeSingle, ConfChangeType
from x0tta6bl4.consensus.runtime import RaftRuntime
from x0tta6bl4.consensus.settings import check_zone
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc
from x0tta6bl4.platform.config import parse_peer_address
from x0tta6bl4.platform.errors import FailedPrecondition, InvalidArgument
from x0tta6bl4.platform.request_fields import positive

_ROLES = {
    "leader": cluster_pb2.Member.ROLE_LEADER,
    "follower": cluster_pb2.Member.ROLE_FOLLOWER,
    "learner": cluster_pb2.Member.ROLE_LEARNER,
    "candidate": cluster_pb2.Member.ROLE_CANDIDATE,
}
CHANGE_TIMEOUT_S = 10.0


class ClusterServicer(cluster_pb2_grpc.ClusterServiceServicer):
    def __init__(self, runtime: RaftRuntime) -> None:
        self._rt = runtime

    def _members(self) -> list[cluster_pb2.Member]:
        return [
            cluster_pb2.Member(
                id=m.node_id,
                address=m.address,
                zone=m.zone,
                role=_ROLES[m.role],
                match_index=m.match,
                lag=m.lag,
                active=m.active,
            )
            for m in self._rt.status().members
        ]

    def _require_leader(self, context: aio.ServicerContext[Any, Any]) -> None:
        if not self._rt.is_leader:
            context.set_trailing_metadata(self._rt.leader_metadata())
            raise self._rt.not_leader(self._rt.leader_id)

    @staticmethod
    def _member_id(value: int) -> int:
        return positive("id", value)

    async def Status(
        self, request: cluster_pb2.StatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> cluster_pb2.StatusResponse:
        s = self._rt.status()
        return cluster_pb2.StatusResponse(
            member_id=s.node_id,
            term=s.term,
            leader_id=s.leader_id,
            leader_address=s.leader_address,
            commit_index=s.commit,
            applied_index=s.applied,
            revision=s.revision,
            joint=s.joint,
            members=self._members(),
        )

    async def MemberAdd(
        self, request: cluster_pb2.MemberAddRequest, context: aio.ServicerContext[Any, Any]
    ) -> cluster_pb2.MemberAddResponse:
        node_id = self._member_id(request.id)
        # Each field parsed on its own (never joined into an "id=address@zone" string that a
        # comma or "=" in the address could extend).
        try:
            address = parse_peer_address(request.address)
        except ValueError as err:
            raise InvalidArgument("address", str(err)) from None
        try:
            zone = check_zone(request.zone, node_id)
        except ValueError as err:
            raise InvalidArgument("zone", str(err)) from None
        self._require_leader(context)
        if node_id in self._rt.node.membership.ids():
            raise FailedPrecondition(f"member {node_id} is already in the cluster")
        await self._rt.record_member(node_id, str(address), zone, CHANGE_TIMEOUT_S)
        change = ConfChange((ConfChangeSingle(ConfChangeType.ADD_LEARNER, node_id),))
        await self._rt.change_membership(change, CHANGE_TIMEOUT_S)
        return cluster_pb2.MemberAddResponse(members=self._members())

    async def MemberPromote(
        self, request: cluster_pb2.MemberPromoteRequest, context: aio.ServicerContext[Any, Any]
    ) -> cluster_pb2.MemberPromoteResponse:
        node_id = self._member_id(request.id)
        self._require_leader(context)
        membership = self._rt.node.membership
        if node_id not in membership.learners:
            raise FailedPrecondition(f"member {node_id} is not a learner")
        progress = self._rt.node.progress.get(node_id)
        last = self._rt.node.log.last_index()
        if progress is None or progress.match == 0:
            # Nothing acknowledged at all (an unreachable address, say): with a short log it
            # would pass the check below and become a voter that never votes.
            raise FailedPrecondition(
                f"learner {node_id} has not acknowledged any entry yet; promote it once it "
                "caught up"
            )
        if last - progress.match > max(100, self._rt.raft.catchup_entries):
            behind = last - progress.match
            raise FailedPrecondition(
                f"learner {node_id} is {behind} entries behind; promote it once it caught up"
            )
        change = ConfChange((ConfChangeSingle(ConfChangeType.ADD_VOTER, node_id),))
        await self._rt.change_membership(change, CHANGE_TIMEOUT_S)
        return cluster_pb2.MemberPromoteResponse(members=self._members())

    async def MemberRemove(
        self, request: cluster_pb2.MemberRemoveRequest, context: aio.ServicerContext[Any, Any]
    ) -> cluster_pb2.MemberRemoveResponse:
        node_id = self._member_id(request.id)
        self._require_leader(context)
        if node_id not in self._rt.node.membership.ids():
            raise FailedPrecondition(f"member {node_id} is not in the cluster")
        change = ConfChange((ConfChangeSingle(ConfChangeType.REMOVE_NODE, node_id),))
        await self._rt.change_membership(change, CHANGE_TIMEOUT_S)
        return cluster_pb2.MemberRemoveResponse(members=self._members())

    async def TransferLeader(
        self, request: cluster_pb2.TransferLeaderRequest, context: aio.ServicerContext[Any, Any]
    ) -> cluster_pb2.TransferLeaderResponse:
        node_id = self._member_id(request.id)
        self._require_leader(context)
        if not self._rt.node.membership.is_voter(node_id):
            raise InvalidArgument("id", f"member {node_id} is not a voter")
        timeout = 3 * 2 * self._rt.raft.election_ms / 1000
        leader = await self._rt.transfer_leadership(node_id, max(1.0, timeout))
        return cluster_pb2.TransferLeaderResponse(leader_id=leader)
