"""A small linearizability checker for key/value register histories (Wing-Gong with Lowe's
memoisation, the algorithm behind Knossos/Porcupine).

A history is a list of :class:`Op`: ``call`` and ``ret`` are positions in one global event
order (``ret is None`` for an operation whose outcome is unknown: a write that may or may not
have taken effect at any point after its call). Keys are independent registers, so the
history is checked one key at a time (P-compositionality). Writes are assumed to write
distinct values, which the simulator guarantees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Op:
    client: int
    kind: str  # "put" | "get"
    key: str
    value: str | None  # value written, or value read (None = key absent)
    call: int
    ret: int | None  # None: never acknowledged (indeterminate write)

    def __post_init__(self) -> None:
        if self.kind not in ("put", "get"):
            raise ValueError(f"unknown op kind {self.kind!r}")
        if self.ret is not None and self.ret <= self.call:
            raise ValueError(f"op returns ({self.ret}) before it is called ({self.call})")
        if self.kind == "get" and self.ret is None:
            raise ValueError("an unacknowledged read tells nothing; leave it out")


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    key: str | None = None
    detail: str = ""


def check_register(ops: list[Op], initial: str | None = None, budget: int = 2_000_000) -> bool:
    """Is this single-register history linearizable? (depth-first search with memoisation)"""
    n = len(ops)
    if n == 0:
        return True
    rets = [INF if op.ret is None else float(op.ret) for op in ops]
    required = 0
    for i, op in enumerate(ops):
        if op.ret is not None:
            required |= 1 << i
    seen: set[tuple[int, str | None]] = set()
    stack: list[tuple[int, str | None]] = [(0, initial)]
    steps = 0
    while stack:
        done, state = stack.pop()
        if done & required == required:
            return True
        if (done, state) in seen:
            continue
        seen.add((done, state))
        steps += 1
        if steps > budget:
            raise RuntimeError("linearizability search budget exhausted")
        # An op may be linearized next iff it was called before every remaining op returned.
        min_ret = min(rets[i] for i in range(n) if not done >> i & 1)
        for i in range(n):
            if done >> i & 1:
                continue
            op = ops[i]
            if op.call > min_ret:
                continue
            if op.kind == "put":
                stack.append((done | 1 << i, op.value))
            elif op.value == state:
                stack.append((done | 1 << i, state))
    return False


def check_kv(history: Iterable[Op]) -> CheckResult:
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    for key in sorted(by_key):
        ops = sorted(by_key[key], key=lambda o: o.call)
        if not check_register(ops):
            lines = "\n".join(
                f"  client {o.client} {o.kind}({o.value!r}) [{o.call}, {o.ret}]" for o in ops
            )
            return CheckResult(False, key, f"history of key {key!r} is not linearizable:\n{lines}")
    return CheckResult(True)
