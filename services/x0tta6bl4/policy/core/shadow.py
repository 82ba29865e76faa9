"""Shadow evaluation's arithmetic: which recorded decisions a candidate would flip (pure).

A :class:`RecordedDecision` is one decision as the decision log keeps it: the authz input the
sidecar evaluated, whether it allowed the call, when, and the effect. The validation pipeline
(policy/validation.py) evaluates the candidate's mesh decision on each comparable input with
the real OPA and hands the answers to :func:`compare`, which counts the flips each way and the
(caller, ``<grpc service>/<method>``) pairs they concern, most frequent first.

Not comparable, and so left out of the count (:func:`comparable`): decisions of a revoked
caller (a ban beats every rule, so no candidate changes them, and the validation layout holds
no revocations) and break-glass decisions (the log keeps the token masked, so it cannot be
presented again).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NOT_COMPARABLE_EFFECTS = frozenset({"REVOKED", "BREAK_GLASS"})
BREAK_GLASS_KEY = "x0-break-glass"


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    input: Mapping[str, Any]
    allowed: bool
    time: dt.datetime
    effect: str = ""

    @property
    def pair(self) -> tuple[str, str]:
        """(caller, ``<grpc service>/<method>``) of the call."""
        caller = self.input.get("caller")
        grpc_service = self.input.get("grpc_service")
        method = self.input.get("method")
        return (str(caller), f"{grpc_service}/{method}")


def comparable(decision: RecordedDecision) -> bool:
    """Whether re-evaluating the decision's input says anything about a candidate."""
    if decision.effect in NOT_COMPARABLE_EFFECTS:
        return False
    metadata = decision.input.get("metadata")
    return not (isinstance(metadata, Mapping) and BREAK_GLASS_KEY in metadata)


@dataclass(frozen=True, slots=True)
class FlippedPair:
    caller: str
    method: str  # "<grpc service>/<method>"
    count: int
    to_allow: bool  # True: recorded denied, the candidate allows; False: the reverse


@dataclass(frozen=True, slots=True)
class ShadowResult:
    compared: int = 0
    skipped: int = 0  # not comparable (see comparable())
    flips_to_deny: int = 0
    flips_to_allow: int = 0
    flipped_pairs: tuple[FlippedPair, ...] = field(default_factory=tuple)
    pairs_left_out: int = 0  # flipped pairs beyond the top N

    @property
    def flips(self) -> int:
        return self.flips_to_deny + self.flips_to_allow


def split(
    recorded: Iterable[RecordedDecision],
) -> tuple[list[RecordedDecision], int]:
    """The comparable decisions, in order, and how many were not."""
    kept: list[RecordedDecision] = []
    skipped = 0
    for decision in recorded:
        if comparable(decision):
            kept.append(decision)
        else:
            skipped += 1
    return kept, skipped


def compare(
    recorded: Sequence[RecordedDecision],
    candidate_allows: Sequence[bool],
    *,
    skipped: int = 0,
    top: int = 20,
) -> ShadowResult:
    """The flips between ``recorded`` and the candidate's answers for the same inputs; the
    ``top`` most frequent flipped pairs (ties by caller, then method)."""
    if len(recorded) != len(candidate_allows):
        raise ValueError(
            f"{len(recorded)} recorded decisions but {len(candidate_allows)} candidate answers"
        )
    if top < 0:
        raise ValueError(f"top must be >= 0, not {top}")
    pairs: Counter[tuple[str, str, bool]] = Counter()
    for decision, allows in zip(recorded, candidate_allows, strict=True):
        if decision.allowed != allows:
            caller, method = decision.pair
            pairs[(caller, method, allows)] += 1
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1], kv[0][2]))
    return ShadowResult(
        compared=len(recorded),
        skipped=skipped,
        flips_to_deny=sum(n for (_, _, to_allow), n in pairs.items() if not to_allow),
        flips_to_allow=sum(n for (_, _, to_allow), n in pairs.items() if to_allow),
        flipped_pairs=tuple(FlippedPair(c, m, n, a) for (c, m, a), n in ranked[:top]),
        pairs_left_out=max(0, len(ranked) - top),
    )


def describe(pair: FlippedPair) -> str:
    direction = "denied -> allowed" if pair.to_allow else "allowed -> denied"
    return f"{pair.caller} {pair.method}: {pair.count} {direction}"
