"""Round trips measured from heartbeats: matching, averaging, resets, and the timer check."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.link_rtt import ALPHA, MAX_UNANSWERED, LinkRtt, too_tight


def test_an_answer_without_a_heartbeat_is_no_sample() -> None:
    rtt = LinkRtt()
    assert rtt.answered(2, 1.0) is None
    assert rtt.get(2) is None


def test_answers_match_heartbeats_in_order_even_when_slower_than_the_interval() -> None:
    rtt = LinkRtt()
    for i in range(4):  # heartbeats every 50 ms on an 80 ms round trip
        rtt.sent(2, 10.0 + 0.05 * i)
    assert rtt.answered(2, 10.080) == pytest.approx(0.080)
    assert rtt.answered(2, 10.130) == pytest.approx(0.080)
    rtt.sent(3, 12.0)
    assert rtt.answered(3, 12.001) == pytest.approx(0.001)  # peers are separate


def test_samples_are_averaged() -> None:
    rtt = LinkRtt()
    rtt.sent(2, 0.0)
    rtt.answered(2, 0.080)
    rtt.sent(2, 1.0)
    assert rtt.answered(2, 1.020) == pytest.approx(0.080 + ALPHA * (0.020 - 0.080))


def test_resets_forget_unanswered_heartbeats_but_keep_the_average() -> None:
    rtt = LinkRtt()
    rtt.sent(2, 0.0)
    rtt.answered(2, 0.010)
    rtt.sent(2, 1.0)  # lost with the link
    rtt.reset(2)
    assert rtt.answered(2, 5.0) is None and rtt.get(2) == pytest.approx(0.010)
    for i in range(MAX_UNANSWERED + 1):  # never answered: matching starts afresh
        rtt.sent(3, float(i))
    assert rtt.answered(3, MAX_UNANSWERED + 0.5) == pytest.approx(0.5)
    rtt.sent(2, 6.0)
    rtt.reset()
    assert rtt.answered(2, 7.0) is None
    rtt.forget(2)
    assert rtt.get(2) is None


def test_an_election_timeout_under_ten_round_trips_is_too_tight() -> None:
    assert too_tight(0.080, 500)
    assert not too_tight(0.040, 500)
