"""Run every benchmark and print its table: the attribution core and backfill, then the worker on Kafka."""

import sys

from bench import bench_engine, bench_replay, bench_worker

if __name__ == "__main__":
    argv = sys.argv
    sys.argv = argv[:1]
    bench_engine.main()
    print()
    bench_replay.main()
    print()
    bench_worker.main()
