"""Flow control: inflight window (count and bytes) and the probe/replicate/snapshot states."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.progress import Inflights, Progress, ProgressState


def test_inflights_bounded_by_count() -> None:
    w = Inflights(max_count=3)
    for i in (1, 2, 3):
        assert not w.full()
        w.add(i, 10)
    assert w.full()
    with pytest.raises(AssertionError):
        w.add(4, 10)
    w.free_le(2)
    assert len(w) == 1 and not w.full() and w.bytes == 10


def test_inflights_bounded_by_bytes() -> None:
    w = Inflights(max_count=100, max_bytes=250)
    w.add(1, 100)
    w.add(2, 100)
    assert not w.full()
    w.add(3, 100)  # the message that crosses the budget is still sent ...
    assert w.full()  # ... but nothing after it
    w.free_first_one()
    assert w.bytes == 200 and not w.full()


def test_inflights_indexes_must_increase() -> None:
    w = Inflights(4)
    w.add(5, 1)
    with pytest.raises(AssertionError):
        w.add(5, 1)


def new_progress(next_index: int = 11) -> Progress:
    return Progress(next_index, Inflights(2))


def test_probe_sends_one_message_then_pauses() -> None:
    pr = new_progress()
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(3, 30)
    assert pr.is_paused() and pr.next == 11  # probing does not advance next
    assert pr.maybe_update(12)
    assert not pr.is_paused() and pr.match == 12 and pr.next == 13


def test_replicate_pipelines_until_window_full() -> None:
    pr = new_progress()
    pr.match = 10
    pr.become_replicate()
    pr.sent_entries(2, 20)
    assert pr.next == 13 and not pr.is_paused()
    pr.sent_entries(1, 10)
    assert pr.next == 14 and pr.is_paused()  # window of 2 messages is full
    pr.maybe_update(12)
    pr.inflights.free_le(12)
    assert not pr.is_paused()


def test_rejection_in_probe_uses_hint_and_ignores_stale_rejections() -> None:
    pr = new_progress(next_index=11)
    pr.probe_sent = True
    assert not pr.maybe_decrease_to(rejected=7, match_hint=3)  # not about our probe at 10
    assert pr.maybe_decrease_to(rejected=10, match_hint=4)
    assert pr.next == 5 and not pr.probe_sent


def test_rejection_in_replicate_falls_back_to_match() -> None:
    pr = new_progress()
    pr.match = 8
    pr.become_replicate()
    pr.sent_entries(3, 30)
    assert not pr.maybe_decrease_to(rejected=8, match_hint=0)  # stale
    assert pr.maybe_decrease_to(rejected=10, match_hint=0)
    assert pr.next == 9


def test_snapshot_state_pauses_and_probe_resumes_after_it() -> None:
    pr = new_progress()
    pr.become_snapshot(50)
    assert pr.is_paused() and pr.pending_snapshot == 50
    pr.become_probe()
    assert pr.state is ProgressState.PROBE and pr.next == 51
