"""Sinks and read models fed from the attributed-reward topic: the PostgreSQL reward ledger
(``pipeline.sinks.postgres``) and the Redis reward cache (``pipeline.sinks.redis_cache``).

Kafka stays the source of truth; each sink keeps its consumed offsets in its own store, written with the data,
and resumes from them. May import events, the Kafka adapters (``pipeline.kafka``) and settings; nothing above
(no runtimes, no CLI).
"""
