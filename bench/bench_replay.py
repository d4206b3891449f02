"""Replay-buffer benchmark (no Kafka: the table the sink thread feeds).

Prints: microseconds per batch of 256 drawn from 1,000,000 experiences (uniform, uniform final-only,
prioritized), corrections applied per second (decoded rewards, and Avro bytes decoded then applied as the
sink does), and memory per experience. Targets (issue #4): ≤ 40 µs per uniform batch, 100,000 corrections/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np

from pipeline.events.avro import AvroCodec, reward_from_record, reward_to_record
from pipeline.events.types import AttributedReward, RewardKind, Touchpoint
from pipeline.replay.experiences import ExperienceTable, Priorities

T0 = 1_767_225_600_000
CHANNELS = ("search", "display", "social", "email", "video")


def fill(table: ExperienceTable, n: int, state_dim: int) -> None:
    rng = np.random.default_rng(0)
    states = rng.random((n, state_dim)).round(3).tolist()
    for i in range(n):
        table.add_touchpoint(Touchpoint(f"t{i}", f"ep{i // 50}", f"u{i // 5}", "camp", CHANNELS[i % 5], T0 + i * 1000,
                                        float(i % 2), state=states[i], action=[float(i % 5)]))


def corrections(n: int, experiences: int) -> list[AttributedReward]:
    rng = np.random.default_rng(1)
    tids = rng.integers(0, experiences, n)
    return [AttributedReward(RewardKind.CORRECTION if i % 3 else RewardKind.ATTRIBUTION, f"t{t}", "ep", "u", "camp",
                             "search", i // experiences + 1, int(i % 997), "USD", 0.0, T0, conversion_id=f"c{t % 7}",
                             model="linear", currency="USD", local_amount_minor=int(i % 997),
                             conversion_value_minor=10_000, conversion_time_ms=T0 + 86_400_000, position=0,
                             journey_length=3, event="purchase")
            for i, t in enumerate(tids.tolist())]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def time_draws(fn: object, repeats: int) -> float:
    assert callable(fn)
    for _ in range(200):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiences", type=int, default=1_000_000)
    parser.add_argument("--state-dim", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--corrections", type=int, default=300_000)
    args = parser.parse_args()
    n = args.experiences

    gc.collect()
    rss_before = rss_bytes()
    table = ExperienceTable(n, Priorities())
    t = time.perf_counter()
    fill(table, n, args.state_dim)
    fill_s = time.perf_counter() - t
    gc.collect()
    current = rss_bytes() - rss_before
    for i in range(0, n, 2):  # half the buffer final
        table.apply_reward(AttributedReward(RewardKind.FINAL, f"t{i}", "ep", "u", "camp", "search", 0, 0, "USD", 0.0,
                                            T0))
    rng = np.random.default_rng(2)
    b = args.batch
    uniform = time_draws(lambda: table.take(table.draw_uniform(rng, b, False)), 2000)
    with_ids = time_draws(lambda: table.take(table.draw_uniform(rng, b, False), with_ids=True), 2000)
    finals = time_draws(lambda: table.take(table.draw_uniform(rng, b, True)), 2000)
    prio = time_draws(lambda: table.take(table.draw_prioritized(rng, b)[0]), 500)

    rewards = corrections(args.corrections, n)
    t = time.perf_counter()
    for r in rewards:
        table.apply_reward(r)
    apply_rate = len(rewards) / (time.perf_counter() - t)
    t = time.perf_counter()
    table.draw_prioritized(rng, b)  # the first draw after the corrections refreshes their priorities
    refresh_ms = (time.perf_counter() - t) * 1e3

    codec = AvroCodec("attributed_reward")
    payloads = [codec.encode(reward_to_record(r._replace(revision=r.revision + 100))) for r in rewards[:100_000]]
    t = time.perf_counter()
    for p in payloads:
        table.apply_reward(reward_from_record(codec.decode(p)))
    decode_rate = len(payloads) / (time.perf_counter() - t)

    print(f"replay buffer: {n:,} experiences, state dim {args.state_dim}, batch {b}")
    print(f"  fill                                  {n / fill_s:>12,.0f} touchpoints/s")
    print(f"  memory (RSS growth, incl. states)     {current / n:>12,.0f} B per experience")
    print(f"  uniform sample                        {uniform:>12.1f} µs/batch   (target ≤ 40)")
    print(f"  uniform sample with string ids        {with_ids:>12.1f} µs/batch")
    print(f"  uniform sample, final only            {finals:>12.1f} µs/batch")
    print(f"  prioritized sample                    {prio:>12.1f} µs/batch")
    print(f"  apply corrections (decoded)           {apply_rate:>12,.0f} /s         (target 100,000)")
    print(f"  priority refresh after them           {refresh_ms:>12.1f} ms")
    print(f"  decode Avro + apply (as the sink)     {decode_rate:>12,.0f} /s")


if __name__ == "__main__":
    main()
