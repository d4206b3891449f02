"""The Kafka-native worker runtime: confluent-kafka clients and Kafka transactions around the partition contract.

Owns the processing loop and its transactions (``worker``), the local journey stores and their restore from the
changelog (``store``, ``restore``) and the input marks a restore is checked by (``input_marks``), the event-time
merge of a partition's two inputs (``merge``), non-blocking end-offset queries (``end_offsets``), finding a
partition's owner (``routing``) and the HTTP views' server (``http``). It may import the engine layer and its
partition contract, ``pipeline.native.choice``, ``pipeline.shell``, ``pipeline.kafka`` and settings; never
``pipeline.stream`` (the Faust runtime) or Faust.

May import: ``pipeline.attribution``, ``pipeline.engine``, ``pipeline.http_auth``, ``pipeline.kafka``,
``pipeline.native``, ``pipeline.settings``, ``pipeline.shell``."""
