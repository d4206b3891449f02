"""What both worker runtimes (Faust, ``pipeline.stream``; Kafka-native, ``pipeline.runtime``) share around the
partition contract: dead letters, input idleness and the wall clock's floor, the worker's counters and stats, the
HTTP views' content, a step's writes into a partition's RocksDB, and running a worker as a child process. It may
import the engine layer, events, money, settings and ``pipeline.kafka``; never a runtime, Faust or a Kafka client
at module level.

May import: ``pipeline.engine``, ``pipeline.errors``, ``pipeline.events``, ``pipeline.money``, ``pipeline.ports``,
``pipeline.settings``."""
