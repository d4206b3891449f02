"""Replay-buffer benchmark (no Kafka: the table the sink thread feeds).

Prints, for 1,000,000 experiences with 16 float32 state values: bytes per experience (RSS growth, and
without the state and action values), microseconds per batch of 256 (uniform, with string ids, final only,
prioritized) beside the ceiling of a bare numpy gather of the same rows, an eager priority update of 256
(set, then the next draw, minus a draw), the first prioritized draw after filling, the worst draw after a block
of corrections, corrections applied per second (decoded, and Avro bytes decoded as the sink does).
Targets (issue #15): ≤ 150 B per row plus the state bytes; priority update of 256 ≤ 100 µs; no draw pays
more than 5 ms for earlier corrections; sampling no slower than before. Where torchrl is installed, TorchRL's
buffers on the same shape of data are measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable

import numpy as np

from pipeline.events.avro import AvroCodec, reward_from_record, reward_to_record
from pipeline.events.types import AttributedReward, RewardKind, Touchpoint
from pipeline.replay.experiences import ExperienceTable, Priorities

T0 = 1_767_225_600_000
CHANNELS = ("search", "display", "social", "email", "video")


def user_of(i: int) -> str:
    return f"u{i // 5}"


def fill(table: ExperienceTable, states: np.ndarray) -> None:
    for i in range(len(states)):
        table.add_touchpoint(Touchpoint(f"t{i}", f"ep{i // 50}", user_of(i), "camp", CHANNELS[i % 5], T0 + i * 1000,
                                        float(i % 2), state=states[i].tolist(), action=[float(i % 5)]))
        if i % 5000 == 4999:
            table.discard_changes()  # what the sink does after each poll's write


def corrections(n: int, experiences: int, seed: int = 1) -> list[AttributedReward]:
    rng = np.random.default_rng(seed)
    tids = rng.integers(0, experiences, n)
    return [AttributedReward(RewardKind.CORRECTION if i % 3 else RewardKind.ATTRIBUTION, f"t{t}", "ep", user_of(t),
                             "camp", "search", i // experiences + 1, int(i % 997), "USD", 0.0, T0,
                             conversion_id=f"c{t % 7}", model="linear", currency="USD",
                             local_amount_minor=int(i % 997), conversion_value_minor=10_000,
                             conversion_time_ms=T0 + 86_400_000, position=0, journey_length=3, event="purchase")
            for i, t in enumerate(tids.tolist())]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def time_calls(fn: Callable[[], object], repeats: int) -> float:
    """Best of five rounds, µs per call."""
    for _ in range(min(repeats, 200)):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e6


def torchrl_baseline(n: int, state_dim: int, b: int) -> dict[str, float] | None:
    """TorchRL's own buffers on the same shape of data (1 M rows of a 16-float state, an action and two
    rewards), in the same run: the peer the issue compared with. None where torchrl is not installed."""
    try:
        import torch
        from tensordict import TensorDict
        from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer, TensorDictReplayBuffer
    except ImportError:
        return None
    torch.manual_seed(0)

    def rows(start: int, count: int) -> TensorDict:
        return TensorDict({"observation": torch.rand(count, state_dim), "action": torch.arange(count) % 5,
                           "reward": torch.rand(count), "original_reward": torch.rand(count)}, batch_size=[count])

    out: dict[str, float] = {}

    def measure_uniform() -> None:
        gc.collect()
        before = rss_bytes()
        uniform = TensorDictReplayBuffer(storage=LazyTensorStorage(n), batch_size=b)
        for start in range(0, n, 100_000):
            uniform.extend(rows(start, min(100_000, n - start)))
        gc.collect()
        out["bytes"] = (rss_bytes() - before) / n
        out["uniform"] = time_calls(lambda: uniform.sample(), 500)

    measure_uniform()
    gc.collect()
    prio = TensorDictPrioritizedReplayBuffer(alpha=0.6, beta=0.4, storage=LazyTensorStorage(n), batch_size=b)
    for start in range(0, n, 100_000):
        prio.extend(rows(start, min(100_000, n - start)))
    out["prioritized"] = time_calls(lambda: prio.sample(), 200)
    index = prio.sample()["index"]
    out["update"] = time_calls(lambda: prio.update_priority(index, torch.rand(b)), 500)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiences", type=int, default=1_000_000)
    parser.add_argument("--state-dim", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--corrections", type=int, default=300_000)
    args = parser.parse_args()
    ours(args)
    gc.collect()
    n, b = args.experiences, args.batch
    peer = torchrl_baseline(n, args.state_dim, b)
    if peer is None:
        print("  TorchRL baseline: torchrl not installed (pip install torch torchrl to measure it)")
        return
    print(f"TorchRL in the same run (LazyTensorStorage, {n:,} rows: {args.state_dim} float32 state, action, "
          "two rewards)")
    print(f"  memory (RSS growth, incl. states)     {peer['bytes']:>12,.0f} B per row")
    print(f"  uniform sample                        {peer['uniform']:>12.1f} µs/batch")
    print(f"  prioritized sample                    {peer['prioritized']:>12.1f} µs/batch")
    print(f"  priority update of {b}                {peer['update']:>12.1f} µs")


def ours(args: argparse.Namespace) -> None:
    n, b = args.experiences, args.batch

    values = np.random.default_rng(0).random((n, args.state_dim)).round(3)  # made before the measured region
    gc.collect()
    rss_before = rss_bytes()
    table = ExperienceTable(n, Priorities())
    t = time.perf_counter()
    fill(table, values)
    fill_s = time.perf_counter() - t
    gc.collect()
    per_row = (rss_bytes() - rss_before) / n
    vector_bytes = 4 * (args.state_dim + 1)  # float32 state and action values
    rng = np.random.default_rng(2)
    t = time.perf_counter()
    table.draw_prioritized(rng, b)
    first_draw_ms = (time.perf_counter() - t) * 1e3
    for i in range(0, n, 2):  # half the buffer final
        table.apply_reward(AttributedReward(RewardKind.FINAL, f"t{i}", "ep", user_of(i), "camp", "search", 0, 0,
                                            "USD", 0.0, T0))

    states = np.asarray(rng.random((n, args.state_dim)), dtype=np.float32)
    ceiling = time_calls(lambda: np.take(states, (rng.random(b) * n).astype(np.int64), axis=0), 2000)
    uniform = time_calls(lambda: table.take(table.draw_uniform(rng, b, False)), 2000)
    with_ids = time_calls(lambda: table.take(table.draw_uniform(rng, b, False), with_ids=True), 2000)
    finals = time_calls(lambda: table.take(table.draw_uniform(rng, b, True)), 2000)
    prio = time_calls(lambda: table.take(table.draw_prioritized(rng, b)[0]), 500)
    draw_only = time_calls(lambda: table.draw_prioritized(rng, b), 500)
    index = table.take(np.arange(b, dtype=np.int64))["index"]

    def update_then_draw() -> None:
        table.set_priorities(index, rng.random(b))
        table.draw_prioritized(rng, b)

    update = time_calls(update_then_draw, 500) - draw_only

    rewards = corrections(args.corrections, n)
    block = 10_000
    worst_draw_ms = 0.0
    applied_s = 0.0
    for start in range(0, len(rewards), block):
        t = time.perf_counter()
        for r in rewards[start:start + block]:
            table.apply_reward(r)
        applied_s += time.perf_counter() - t
        t = time.perf_counter()
        table.draw_prioritized(rng, b)  # the first draw after a block of corrections
        worst_draw_ms = max(worst_draw_ms, (time.perf_counter() - t) * 1e3)
    apply_rate = len(rewards) / applied_s

    codec = AvroCodec("attributed_reward")
    payloads = [codec.encode(reward_to_record(r._replace(revision=r.revision + 100))) for r in rewards[:100_000]]
    t = time.perf_counter()
    for p in payloads:
        table.apply_reward(reward_from_record(codec.decode(p)))
    decode_rate = len(payloads) / (time.perf_counter() - t)

    print(f"replay buffer: {n:,} experiences, state dim {args.state_dim}, batch {b}, ids like 't123456'")
    print(f"  fill                                  {n / fill_s:>12,.0f} touchpoints/s")
    print(f"  memory (RSS growth, incl. states)     {per_row:>12,.0f} B per experience")
    print(f"  memory without state/action values    {per_row - vector_bytes:>12,.0f} B per experience "
          "(target ≤ 150)")
    print(f"  ceiling: numpy gather of the states   {ceiling:>12.1f} µs/batch")
    print(f"  uniform sample                        {uniform:>12.1f} µs/batch")
    print(f"  uniform sample with string ids        {with_ids:>12.1f} µs/batch")
    print(f"  uniform sample, final only            {finals:>12.1f} µs/batch")
    print(f"  prioritized sample                    {prio:>12.1f} µs/batch")
    print(f"  priority update of {b} (eager)        {update:>12.1f} µs         (target ≤ 100)")
    print(f"  first prioritized draw after filling  {first_draw_ms:>12.1f} ms")
    print(f"  worst draw after {block:,} corrections {worst_draw_ms:>12.1f} ms         (target ≤ 5)")
    print(f"  apply corrections (decoded)           {apply_rate:>12,.0f} /s")
    print(f"  decode Avro + apply (as the sink)     {decode_rate:>12,.0f} /s")


if __name__ == "__main__":
    main()
