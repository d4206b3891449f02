"""Which engine runs: the native one (Rust, the default) or the Python reference, by name.

One home for the engine names and for building either engine's batch entry points: the backfill's (chunks of
JSON Lines) and a runtime's (one partition's records). Both runtimes, the backfills and the CLI ask here.
"""

from __future__ import annotations

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import FILE_QUORUM, EngineConfig
from pipeline.engine.chunks import BackfillEngine, PythonBackfill
from pipeline.engine.partition import PartitionEngine
from pipeline.engine.partition.processor import PartitionProcessor

ENGINES = ("native", "python")


def _checked(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def partition_engine(engine: str, partition: int, config: EngineConfig, learned: LearnedWeights | None,
                     slice_limit: int, outbox: bool = True) -> PartitionEngine:
    """A partition's processing by the chosen engine (``native``, the default, or ``python``); without
    ``outbox`` its steps return the rewards apart from the journey writes."""
    if _checked(engine) == "python":
        return PartitionProcessor(partition, config, learned, slice_limit=slice_limit, outbox=outbox)
    from pipeline.native import NativePartitionProcessor

    return NativePartitionProcessor(partition, config, learned, slice_limit=slice_limit, outbox=outbox)


def backfill_engine(engine: str, config: EngineConfig, learned: LearnedWeights | None,
                    reference_ms: int) -> BackfillEngine:
    """The backfill's engine: ``native`` (Rust, the default) or ``python`` (the reference)."""
    if _checked(engine) == "python":
        return PythonBackfill(config, learned, reference_ms)
    from pipeline.native import NativeBackfill

    return NativeBackfill(config, learned, reference_ms, FILE_QUORUM)
