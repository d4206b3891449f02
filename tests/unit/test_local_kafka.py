"""The local broker's pure parts (its start and stop are tested against the real broker in integration)."""

from __future__ import annotations

import base64

from pipeline.local_kafka.broker import new_cluster_id


def test_cluster_ids_are_kafka_uuids_that_never_start_with_a_dash() -> None:
    # one random id in 64 starts with "-", which kafka-storage's command line takes for an option
    ids = [new_cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
