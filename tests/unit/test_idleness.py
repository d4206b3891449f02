"""When an input partition counts as idle: caught up by the broker's fresh word, silent for the timeout, and
silent while the broker answered (an outage is not silence)."""

from __future__ import annotations

from pipeline.shell.idleness import Idleness

TP = ("touchpoints", 0)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def tracker(clock: Clock) -> Idleness:
    idle = Idleness(idle_timeout_s=30, max_event_delay_ms=300_000, freshness_s=5, monotonic=clock,
                    wall_ms=lambda: 10**12)
    idle.broker_says({TP: 0}, {TP: 0})  # the broker answers from the start
    return idle


def answer_every_second(idle: Idleness, clock: Clock, seconds: int, end: int = 10) -> None:
    for _ in range(seconds):
        clock.t += 1
        idle.broker_says({TP: end}, {TP: end})


def test_idle_once_caught_up_and_silent_for_the_timeout() -> None:
    clock = Clock()
    idle = tracker(clock)
    idle.arrived(TP, 9)
    answer_every_second(idle, clock, 29)
    assert not idle.idle(TP)
    answer_every_second(idle, clock, 1)
    assert idle.idle(TP)
    idle.arrived(TP, 10)
    assert not idle.idle(TP)


def test_records_still_on_the_broker_keep_an_input_live() -> None:
    clock = Clock()
    idle = tracker(clock)
    idle.arrived(TP, 5)
    answer_every_second(idle, clock, 60, end=10)  # offsets 6..9 are there, not read yet
    assert not idle.idle(TP)


def test_no_fresh_word_from_the_broker_keeps_an_input_live() -> None:
    clock = Clock()
    idle = tracker(clock)
    idle.arrived(TP, 9)
    answer_every_second(idle, clock, 40)
    assert idle.idle(TP)
    clock.t += 6  # the broker stopped answering
    assert not idle.idle(TP)


def test_silence_during_an_outage_does_not_count() -> None:
    """Producers are cut off by the same outage: when the broker is back, their records are still on the way,
    so the input must stay live for the whole timeout again (the broker restart probe lost rewards so)."""
    clock = Clock()
    idle = tracker(clock)
    idle.arrived(TP, 9)
    answer_every_second(idle, clock, 10)
    clock.t += 28  # the broker is down; nothing arrives, nothing answers
    answer_every_second(idle, clock, 1)  # back, and the input is caught up with what reached it
    assert not idle.idle(TP)
    answer_every_second(idle, clock, 29)  # 29 s of answers since it came back
    assert not idle.idle(TP)
    answer_every_second(idle, clock, 1)
    assert idle.idle(TP)


CV = ("conversions", 0)


def answer_both(idle: Idleness, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        clock.t += 1
        idle.broker_says({TP: 100, CV: 100}, {TP: 100, CV: 100})


def test_an_input_back_from_idle_makes_the_partitions_other_inputs_wait_a_timeout_again() -> None:
    clock = Clock()
    idle = tracker(clock)
    idle.arrived(TP, 99)
    idle.arrived(CV, 99)
    answer_both(idle, clock, 31)
    assert idle.idle(TP) and idle.idle(CV)  # a pause: both caught up and silent
    idle.arrived(TP, 100)  # touchpoints resume; the conversions' records may be just behind
    assert not idle.idle(CV)
    answer_both(idle, clock, 29)
    assert not idle.idle(CV)
    answer_both(idle, clock, 1)
    assert idle.idle(CV)  # nothing came for a whole timeout: idle again


def test_a_steady_input_beside_a_quiet_one_leaves_the_quiet_one_idle() -> None:
    clock = Clock()
    idle = tracker(clock)
    idle.arrived(CV, 99)
    for offset in range(31):  # a touchpoint every second, never idle
        idle.arrived(TP, offset)
        answer_both(idle, clock, 1)
    assert idle.idle(CV) and not idle.idle(TP)
    idle.arrived(TP, 31)
    assert idle.idle(CV)
