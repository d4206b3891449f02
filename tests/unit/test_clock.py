"""The engine's event-time clock over several inputs: minimum, idleness, quorum, floor, persistence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.engine import EventClock


def test_the_watermark_is_the_slowest_live_input_minus_the_lateness() -> None:
    c = EventClock(("a", "b"), lateness_ms=10)
    c.observe("a", 1000)
    assert c.watermark() is None  # b has not spoken: nothing is certain yet
    c.observe("b", 400)
    assert c.watermark() == 390
    assert c.watermark(idle=["b"]) == 990  # an idle input holds nothing back
    assert c.watermark(idle=["a", "b"]) == 990  # all idle: the furthest input counts
    assert c.newest() == 1000


def test_a_floor_moves_the_clock_but_never_back() -> None:
    c = EventClock(("a",), lateness_ms=0)
    assert c.raise_floor(50) and c.time() == 50
    c.observe("a", 40)
    assert c.time() == 50
    assert not c.raise_floor(45) and c.floor == 50
    c.observe("a", 70)
    assert c.time() == 70


def test_a_quorum_keeps_a_few_outliers_from_moving_the_clock() -> None:
    c = EventClock(("log",), lateness_ms=0, quorum=3)
    c.observe("log", 10**9)  # one event from a wrong clock
    c.observe("log", 10)
    assert c.time() is None  # fewer than three events so far
    c.observe("log", 20)
    assert c.time() == 10
    c.observe("log", 30)
    assert c.time() == 20  # the third-newest: the outlier alone cannot move it
    c.observe("log", 10**9 + 1)
    assert c.time() == 30


def test_state_round_trips() -> None:
    c = EventClock(("a", "b"), lateness_ms=5, quorum=2)
    for t in (3, 9, 4):
        c.observe("a", t)
    c.observe("b", 7)
    c.raise_floor(2)
    again = EventClock(("a", "b"), lateness_ms=5, quorum=2)
    again.load(c.state())
    assert again.state() == c.state() and again.time() == c.time() and again.newest() == c.newest()


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=60), st.integers(1, 8))
def test_the_frontier_is_the_quorum_th_newest_time(times: list[int], quorum: int) -> None:
    c = EventClock(("log",), lateness_ms=0, quorum=quorum)
    for t in times:
        c.observe("log", t)
    expected = sorted(times)[-quorum] if len(times) >= quorum else None
    assert c.frontier("log") == expected
