"""Verdicts and checks: valid exactly when nothing failed, soft-fails shown (pure)."""

from __future__ import annotations

import pytest

from x0tta6bl4.identity.validation.verdict import (
    Check,
    Verdict,
    failed,
    passed,
    skipped,
    soft_failed,
    unchecked,
)


def test_a_verdict_is_valid_exactly_when_no_check_failed() -> None:
    ok = Verdict.of("default", "spiffe://td/a", [passed("chain", "ok"), skipped("ocsp", "none")])
    assert ok.valid and not ok.failures and not ok.soft_failed
    bad = Verdict.of("default", "", [passed("parse", "ok"), failed("chain", "no")])
    assert not bad.valid and [c.name for c in bad.failures] == ["chain"]


def test_a_soft_fail_keeps_the_verdict_valid_and_says_so() -> None:
    verdict = Verdict.of("lenient", "spiffe://td/a", [soft_failed("ocsp", "responder down")])
    assert verdict.valid
    assert [c.name for c in verdict.soft_failed] == ["ocsp"]
    assert str(verdict).splitlines() == [
        "valid (soft-failed: ocsp) under policy 'lenient' for spiffe://td/a",
        "  ocsp: soft_fail: responder down",
    ]


def test_unchecked_is_a_fail_unless_the_policy_soft_fails() -> None:
    assert unchecked("crl", "down", soft_fail=False).result == "fail"
    assert unchecked("crl", "down", soft_fail=True).result == "soft_fail"


def test_inconsistent_or_empty_verdicts_and_checks_are_refused() -> None:
    with pytest.raises(ValueError, match="valid exactly when none of its checks failed"):
        Verdict(True, "default", "", (failed("chain", "no"),))
    with pytest.raises(ValueError, match="at least one check"):
        Verdict.of("default", "", [])
    with pytest.raises(ValueError, match="unknown result"):
        Check("chain", "maybe", "?")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name and a reason"):
        Check("chain", "pass", "")


def test_a_check_is_found_by_name() -> None:
    verdict = Verdict.of("default", "", [passed("parse", "ok"), failed("chain", "no")])
    assert verdict.check("chain").reason == "no"
    with pytest.raises(KeyError):
        verdict.check("ocsp")
    assert str(verdict).startswith("invalid under policy 'default' for (no SPIFFE ID)")
