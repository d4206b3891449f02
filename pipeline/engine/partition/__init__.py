"""The partition contract: one input partition's processing as a step, the same for every runtime.

Owns the records a step takes (``records``), what a runtime asks of a partition's engine (``contract``), the
Python engine's implementation of it (``processor``) and the stored journey format with its outbox
(``journey_codec``). The Faust runtime, the Kafka runtime, ``backfill --from-kafka`` and the native engine
(``pipeline.native``) depend on this package; it depends only on the engine, events and money below it, and
never on a Kafka client, Faust or RocksDB.
"""

from pipeline.engine.partition.contract import PartitionEngine
from pipeline.engine.partition.records import (
    CONVERSIONS,
    RESERVED_PREFIX,
    SOURCES,
    TOUCHPOINTS,
    BatchOutput,
    InputRecord,
    Loader,
    Refusal,
    Write,
    decode_record,
    meta_key,
)

__all__ = ["CONVERSIONS", "RESERVED_PREFIX", "SOURCES", "TOUCHPOINTS", "BatchOutput", "InputRecord", "Loader",
           "PartitionEngine", "Refusal", "Write", "decode_record", "meta_key"]
