"""rewardstream: multi-day ad conversions turned into attributed rewards for RL agents, on Kafka.

Layout (pure core first, shells around it):
- ``pipeline.events``: event types, JSON parsing/validation, Avro single-object codec (pure).
- ``pipeline.attribution``: exact money, attribution models, fitting of learned models (pure).
- ``pipeline.engine``: the journey state machine and its event-time watermark (pure).
- ``pipeline.backfill``: the engine over a JSON Lines log (file I/O only).
- ``pipeline.kafka``, ``pipeline.local_kafka``: Kafka client adapters and the project-managed broker.
- ``pipeline.cli``: the ``rewardstream`` command.
"""

__version__ = "0.1.0"
