"""The streaming worker: Faust agents drive the pure engine over RocksDB tables.

Delivery design: after a crash a table's changelog can be ahead of the committed input offsets, so replayed
events look like duplicates and their rewards, if they were not yet sent, would be lost. Each journey write
therefore carries the rewards produced by that write (an outbox inside the changelog record), and the worker
sends the same rewards to the rewards topic in the same step. Restore finds the outboxes written after the
partition's last *delivered mark* and sends them again (``redelivery``), so no reward is lost. Consumers get
at-least-once delivery with stable ids: drop repeated ``reward_id`` values.

May import: ``pipeline.attribution``, ``pipeline.engine``, ``pipeline.errors``, ``pipeline.http_auth``,
``pipeline.kafka``, ``pipeline.native``, ``pipeline.settings``, ``pipeline.shell``."""
