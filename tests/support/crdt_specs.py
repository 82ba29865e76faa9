"""Short names for the CRDT type specs the sync tests use."""

from __future__ import annotations

from x0tta6bl4.sync.core import TypeSpec, TypeTag

AW = TypeSpec(TypeTag.AW_SET)
RW = TypeSpec(TypeTag.RW_SET)
DW = TypeSpec(TypeTag.DW_FLAG)
LWW = TypeSpec(TypeTag.LWW_REGISTER)
MV = TypeSpec(TypeTag.MV_REGISTER)
PN = TypeSpec(TypeTag.PNCOUNTER)
MAP = TypeSpec(TypeTag.OR_MAP, LWW)
MAP_AW = TypeSpec(TypeTag.OR_MAP, AW)
