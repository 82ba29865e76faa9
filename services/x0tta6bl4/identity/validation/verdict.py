"""The outcome of validating a certificate chain: every check, its result and why (pure).

A :class:`Verdict` lists each :class:`Check` that ran, in the order it ran. A verdict is valid
exactly when no check has the result ``"fail"``: ``"pass"`` and ``"skip"`` (not applicable,
e.g. the chain publishes no OCSP responder, or no pins are configured) never invalidate it, and
neither does ``"soft_fail"``, which means "could not be checked, and the policy allows that" —
:attr:`Verdict.soft_failed` lists those, so a caller can see that the answer is weaker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

CheckResult = Literal["pass", "fail", "skip", "soft_fail"]
_RESULTS: frozenset[str] = frozenset(get_args(CheckResult))


@dataclass(frozen=True, slots=True)
class Check:
    """One named rule applied to the chain, e.g. ``parse``, ``chain``, ``profile.uri_san``,
    ``ocsp``, ``crl``, ``pin.spki``; ``reason`` says in words what was found."""

    name: str
    result: CheckResult
    reason: str

    def __post_init__(self) -> None:
        if self.result not in _RESULTS:
            raise ValueError(f"check {self.name!r}: unknown result {self.result!r}")
        if not self.name or not self.reason:
            raise ValueError("a check needs a name and a reason")

    def __str__(self) -> str:
        return f"{self.name}: {self.result}: {self.reason}"


def passed(name: str, reason: str) -> Check:
    return Check(name, "pass", reason)


def failed(name: str, reason: str) -> Check:
    return Check(name, "fail", reason)


def skipped(name: str, reason: str) -> Check:
    return Check(name, "skip", reason)


def soft_failed(name: str, reason: str) -> Check:
    return Check(name, "soft_fail", reason)


def unchecked(name: str, reason: str, *, soft_fail: bool) -> Check:
    """A check that could not be made: ``soft_fail`` if the policy allows that, else ``fail``."""
    return soft_failed(name, reason) if soft_fail else failed(name, reason)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one chain under one policy.

    ``valid`` is True only if no check failed (construct with :meth:`of` to have it computed;
    a hand-made inconsistent verdict is refused). ``spiffe_id`` is the leaf's SPIFFE ID, or
    ``""`` if it carries no valid one.
    """

    valid: bool
    policy: str
    spiffe_id: str
    checks: tuple[Check, ...]

    def __post_init__(self) -> None:
        if self.valid != all(c.result != "fail" for c in self.checks):
            raise ValueError("a verdict is valid exactly when none of its checks failed")
        if not self.checks:
            raise ValueError("a verdict needs at least one check")

    @classmethod
    def of(cls, policy: str, spiffe_id: str, checks: Iterable[Check]) -> Verdict:
        checks = tuple(checks)
        return cls(all(c.result != "fail" for c in checks), policy, spiffe_id, checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.result == "fail")

    @property
    def soft_failed(self) -> tuple[Check, ...]:
        """Checks that could not be made but that the policy let pass (soft-fail)."""
        return tuple(c for c in self.checks if c.result == "soft_fail")

    def check(self, name: str) -> Check:
        """The check called ``name``; ``KeyError`` if no such check ran."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        head = "valid" if self.valid else "invalid"
        if self.valid and self.soft_failed:
            head += " (soft-failed: " + ", ".join(c.name for c in self.soft_failed) + ")"
        lines = [f"{head} under policy {self.policy!r} for {self.spiffe_id or '(no SPIFFE ID)'}"]
        lines.extend(f"  {c}" for c in self.checks)
        return "\n".join(lines)
