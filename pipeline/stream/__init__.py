"""The streaming worker: Faust agents drive the pure engine over RocksDB tables.

Delivery design (why there is a relay): Faust's at-least-once mode flushes its producer before it commits
offsets, but after a crash a table's changelog can be ahead of the committed offsets, so replayed events look
like duplicates and their rewards, if they were not yet sent, would be lost. Each journey write therefore
carries the rewards produced by that write (an outbox inside the changelog record), so state and output are
one Kafka record. A relay reads the changelog and publishes the outbox to the rewards topic. Consumers get
at-least-once delivery with stable ids: read with read_committed, drop repeated ``reward_id`` values.
"""
