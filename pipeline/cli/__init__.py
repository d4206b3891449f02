"""The ``rewardstream`` command line: one module per sub-command.

May import: ``pipeline.attribution``, ``pipeline.backfill``, ``pipeline.compare``, ``pipeline.demo``,
``pipeline.engine``, ``pipeline.errors``, ``pipeline.events``, ``pipeline.http_auth``, ``pipeline.ingest``,
``pipeline.kafka``, ``pipeline.local_kafka``, ``pipeline.local_registry``, ``pipeline.local_servers``,
``pipeline.market``, ``pipeline.model_comparison``, ``pipeline.money``, ``pipeline.native``, ``pipeline.producers``,
``pipeline.replay``, ``pipeline.report``, ``pipeline.runtime``, ``pipeline.settings``, ``pipeline.shell``,
``pipeline.sinks``, ``pipeline.stream``, ``pipeline.synthetic``."""
