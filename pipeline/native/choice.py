"""Which engine runs: the native one (Rust) or the Python reference, by name.

One home for the engine names, the default and the fallback, and for building either engine's batch entry points:
the backfill's (chunks of JSON Lines) and a runtime's (one partition's records). Both runtimes, the backfills and
the CLI ask here.

``auto`` (the default) is the native engine when ``pipeline._native`` was built and the Python engine otherwise,
said once per process in a one-line warning: an install without a Rust toolchain (the extension is optional in
the build) still works, only slower. ``native`` asked for by name and not built is an error, never a silent
fallback: who names it wants its speed.
"""

from __future__ import annotations

import logging

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import FILE_QUORUM, EngineConfig
from pipeline.engine.chunks import BackfillEngine, PythonBackfill
from pipeline.engine.partition import PartitionEngine
from pipeline.engine.partition.processor import PartitionProcessor

AUTO = "auto"
ENGINES = (AUTO, "native", "python")
DEFAULT_ENGINE = AUTO

_log = logging.getLogger("rewardstream.engine")
_warned = False


def resolve(engine: str) -> str:
    """The engine that runs for a choice: ``native`` or ``python``. ``auto`` falls back to ``python`` (with one
    warning per process) when the native module is missing; ``native`` without it raises ``RuntimeError``."""
    global _warned
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "python":
        return engine
    from pipeline import native

    if native.available():
        return "native"
    if engine == "native":
        raise RuntimeError(f"engine 'native' was asked for, but {native.IMPORT_ERROR}")
    if not _warned:
        _warned = True
        _log.warning("the native engine is not installed (%s); using the Python engine (slower; "
                     "REWARDSTREAM_ENGINE=python silences this)", native.IMPORT_CAUSE)
    return "python"


def partition_engine(engine: str, partition: int, config: EngineConfig, learned: LearnedWeights | None,
                     slice_limit: int, outbox: bool = True) -> PartitionEngine:
    """A partition's processing by the chosen engine (see ``resolve``); without ``outbox`` its steps return the
    rewards apart from the journey writes."""
    if resolve(engine) == "python":
        return PartitionProcessor(partition, config, learned, slice_limit=slice_limit, outbox=outbox)
    from pipeline.native import NativePartitionProcessor

    return NativePartitionProcessor(partition, config, learned, slice_limit=slice_limit, outbox=outbox)


def backfill_engine(engine: str, config: EngineConfig, learned: LearnedWeights | None,
                    reference_ms: int) -> BackfillEngine:
    """The backfill's engine by the chosen engine (see ``resolve``)."""
    if resolve(engine) == "python":
        return PythonBackfill(config, learned, reference_ms)
    from pipeline.native import NativeBackfill

    return NativeBackfill(config, learned, reference_ms, FILE_QUORUM)
