"""Run every benchmark and print its table."""

from bench import bench_engine

if __name__ == "__main__":
    bench_engine.main()
