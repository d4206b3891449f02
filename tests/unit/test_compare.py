"""``pipeline.compare.facts``: repeats of a fact are dropped; one reward id with two different facts is an error
that names what differs."""

from __future__ import annotations

import pytest

from pipeline.compare import facts


def _unattributed(reason: str) -> dict[str, object]:
    return {"reward_id": "unattributed:u1:c1::0", "kind": "unattributed", "user_id": "u1", "conversion_id": "c1",
            "touchpoint_id": "", "revision": 0, "amount_minor": 0, "reason": reason}


def test_a_repeated_fact_counts_once() -> None:
    got = facts([_unattributed("unknown_user"), _unattributed("unknown_user")])
    assert got.unattributed == {("u1", "c1"): "unknown_user"}


def test_one_id_with_two_different_facts_names_the_difference() -> None:
    with pytest.raises(ValueError, match=r"unattributed:u1:c1::0: \{'reason': \('unknown_user', "
                                         r"'no_touchpoint_in_window'\)\}"):
        facts([_unattributed("unknown_user"), _unattributed("no_touchpoint_in_window")])
