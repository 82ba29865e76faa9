"""Shadow evaluation's arithmetic: flips counted each way, pairs ranked by count, decisions
that cannot be re-evaluated (revoked, break-glass) left out and counted."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from x0tta6bl4.policy.core.shadow import FlippedPair, RecordedDecision, compare, describe, split

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
KV = "x0tta6bl4.consensus.v1.KVService"


def rec(
    caller: str,
    method: str,
    allowed: bool,
    effect: str = "",
    metadata: dict[str, str] | None = None,
) -> RecordedDecision:
    doc = {"caller": caller, "grpc_service": KV, "method": method, "metadata": metadata or {}}
    return RecordedDecision(doc, allowed, NOW, effect)


def test_flips_are_counted_each_way_and_ranked() -> None:
    recorded = [rec("a", "Put", True)] * 3 + [rec("b", "Get", False)] * 2 + [rec("c", "Get", True)]
    result = compare(recorded, [False] * 3 + [True] * 2 + [True])
    assert (result.compared, result.flips_to_deny, result.flips_to_allow) == (6, 3, 2)
    assert result.flips == 5
    assert result.flipped_pairs == (
        FlippedPair("a", f"{KV}/Put", 3, False),
        FlippedPair("b", f"{KV}/Get", 2, True),
    )
    assert describe(result.flipped_pairs[0]) == f"a {KV}/Put: 3 allowed -> denied"


def test_only_the_top_pairs_are_named_and_the_rest_counted() -> None:
    recorded = [rec(f"c{i}", "Put", True) for i in range(5)]
    result = compare(recorded, [False] * 5, top=2)
    assert [p.caller for p in result.flipped_pairs] == ["c0", "c1"]  # ties: by caller
    assert (result.pairs_left_out, result.flips_to_deny) == (3, 5)


def test_revoked_and_break_glass_decisions_are_not_comparable() -> None:
    kept, skipped = split([
        rec("a", "Put", False, effect="REVOKED"),
        rec("b", "Put", True, effect="BREAK_GLASS"),
        rec("c", "Put", True, metadata={"x0-break-glass": "**masked**"}),
        rec("d", "Put", True, effect="ALLOW"),
    ])  # fmt: skip
    assert [d.input["caller"] for d in kept] == ["d"]
    assert skipped == 3


def test_answers_must_match_the_decisions() -> None:
    with pytest.raises(ValueError, match="2 recorded decisions but 1 candidate answers"):
        compare([rec("a", "Put", True)] * 2, [True])
    with pytest.raises(ValueError, match="top must be >= 0"):
        compare([], [], top=-1)


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"), st.sampled_from(["Get", "Put"]), st.booleans(), st.booleans()
        )
    )
)
def test_pair_counts_add_up_to_the_flips(rows: list[tuple[str, str, bool, bool]]) -> None:
    recorded = [rec(c, m, was) for c, m, was, _ in rows]
    result = compare(recorded, [now for *_, now in rows], top=100)
    assert result.flips == sum(was != now for *_, was, now in rows)
    assert sum(p.count for p in result.flipped_pairs) == result.flips
    assert result.flips_to_allow == sum(p.count for p in result.flipped_pairs if p.to_allow)
    counts = [p.count for p in result.flipped_pairs]
    assert counts == sorted(counts, reverse=True)
