"""The journey state machine and the engine that drives it in event time. Pure: no I/O, no Kafka."""

from pipeline.engine.config import DAY_MS, HOUR_MS, EngineConfig
from pipeline.engine.engine import AttributionEngine, EngineStats, ExpiryIndex, HeapExpiryIndex
from pipeline.engine.journey import Context, Journey, Split, Touch, apply_conversion, apply_touchpoint, expire

__all__ = ["DAY_MS", "HOUR_MS", "AttributionEngine", "Context", "EngineConfig", "EngineStats", "ExpiryIndex",
           "HeapExpiryIndex", "Journey", "Split", "Touch", "apply_conversion", "apply_touchpoint", "expire"]
