"""The pure core of the sync service: delta-state CRDTs, causality, replication, GC.

Nothing here performs I/O or reads a clock; time enters as ``now_ms``/``physical_ms`` arguments.
Every mutator returns ``(new_state, delta)`` with ``new_state == old.merge(delta)``; deltas are
values of the same type and encode with :func:`encode`.
"""

from .causal import CausalContext, Dot, DottedVersionVector, VersionVector
from .codec import FORMAT_VERSION, decode, decode_context, encode, encode_context
from .counters import GCounter, PNCounter
from .errors import DecodeError, InvalidOperation, SyncError
from .flags import DWFlag, EWFlag
from .gc import StabilityCut, stable_vector
from .hlc import HLC
from .maps import ORMap
from .ops import (
    Add,
    Assign,
    Clear,
    Decrement,
    Disable,
    Enable,
    Increment,
    MapRemove,
    MapUpdate,
    Op,
    Remove,
    apply_op,
)
from .registers import LWWRegister, MVRegister
from .replica import (
    Ack,
    Checkpoint,
    DeltaBatch,
    Digest,
    Event,
    GCReport,
    Message,
    Read,
    Replica,
    ReplicaConfig,
    Snapshot,
    plain_value,
    value_of,
)
from .sets import AWSet, RWSet
from .spec import STRATEGIES, Shape, Strategy, TypeSpec, TypeTag, spec_for, spec_of
from .values import Limits, Scalar

__all__ = [
    "FORMAT_VERSION",
    "HLC",
    "STRATEGIES",
    "AWSet",
    "Ack",
    "Add",
    "Assign",
    "CausalContext",
    "Checkpoint",
    "Clear",
    "DWFlag",
    "DecodeError",
    "Decrement",
    "DeltaBatch",
    "Digest",
    "Disable",
    "Dot",
    "DottedVersionVector",
    "EWFlag",
    "Enable",
    "Event",
    "GCReport",
    "GCounter",
    "Increment",
    "InvalidOperation",
    "LWWRegister",
    "Limits",
    "MVRegister",
    "MapRemove",
    "MapUpdate",
    "Message",
    "ORMap",
    "Op",
    "PNCounter",
    "RWSet",
    "Read",
    "Remove",
    "Replica",
    "ReplicaConfig",
    "Scalar",
    "Shape",
    "Snapshot",
    "StabilityCut",
    "Strategy",
    "SyncError",
    "TypeSpec",
    "TypeTag",
    "VersionVector",
    "apply_op",
    "decode",
    "decode_context",
    "encode",
    "encode_context",
    "plain_value",
    "spec_for",
    "spec_of",
    "stable_vector",
    "value_of",
]
