"""rewardstream: multi-day ad conversions turned into attributed rewards for RL agents, on Kafka.

Layout (pure core first, shells around it):
- ``pipeline.events``: event types, JSON parsing/validation, Avro single-object codec (pure).
- ``pipeline.attribution``: exact money, attribution models, fitting of learned models (pure).
- ``pipeline.engine``: the journey state machine and its event-time watermark (pure).
- ``pipeline.backfill``: the engine over a JSON Lines log (file I/O only).
- ``pipeline.kafka``, ``pipeline.local_kafka``, ``pipeline.local_registry``: Kafka client adapters, the schema
  registry client, and the project-managed broker and schema registry.
- ``pipeline.producers``, ``pipeline.replay``: what agents and trainers embed (Kafka adapters).
- ``pipeline.system``: the design document's ``DelayedRewardSystem`` API over those two.
- ``pipeline.cli``: the ``rewardstream`` command.

May import: ``pipeline.system``."""

from typing import Any

__version__ = "0.1.0"

_SYSTEM_API = ("AttributionModel", "ConversionEvent", "DelayedRewardConfig", "DelayedRewardSystem")
__all__ = list(_SYSTEM_API)


def __getattr__(name: str) -> Any:
    """``from pipeline import DelayedRewardSystem`` without importing Kafka clients for every submodule."""
    if name in _SYSTEM_API:
        import pipeline.system

        return getattr(pipeline.system, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
