"""The journey state machine and the engine that drives it in event time. Pure: no I/O, no Kafka.

May import: ``pipeline.attribution``, ``pipeline.errors``, ``pipeline.events``, ``pipeline.money``,
``pipeline.units``."""

from pipeline.engine.clock import EventClock
from pipeline.engine.config import EngineConfig
from pipeline.engine.engine import (
    FILE_QUORUM,
    LOG,
    AttributionEngine,
    EngineStats,
    ExpiryIndex,
    HeapExpiryIndex,
    Refused,
    StepOutput,
)
from pipeline.engine.journey import Context, Journey, Split, Touch, apply_conversion, apply_touchpoint, expire

__all__ = ["FILE_QUORUM", "LOG", "AttributionEngine", "Context", "EngineConfig", "EngineStats",
           "EventClock", "ExpiryIndex", "HeapExpiryIndex", "Journey", "Refused", "Split", "StepOutput", "Touch",
           "apply_conversion", "apply_touchpoint", "expire"]
