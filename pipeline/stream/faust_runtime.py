"""Faust itself: the App settings the worker runs with, a Worker that does not log at DEBUG, and every reach
into Faust's private API (raw table serializers, a table partition's RocksDB database, the changelog records
recovery applies, whether recovery is done).

Kept apart from the processing code so that the benchmark's bare Faust loop runs with exactly the worker's
settings, and so that every place the project leans on Faust's behaviour is in one small file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.worker import Worker

from pipeline.kafka.clients import group_liveness
from pipeline.settings import Settings
from pipeline.shell import outages


def credentials(settings: Settings) -> Any:
    """SASL/TLS for Faust's aiokafka clients, from the same settings as the confluent-kafka clients."""
    proto = settings.security_protocol.upper()
    if proto == "PLAINTEXT":
        return None
    import ssl

    context = ssl.create_default_context(cafile=settings.ssl_cafile or None) if "SSL" in proto else None
    if proto.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context)


def app_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``faust.App`` for a worker (and for the benchmark's bare Faust loop)."""
    liveness = group_liveness(settings)
    return {
        "id": settings.app_id,
        "broker": [f"kafka://{b.strip()}" for b in settings.bootstrap_servers.split(",")],
        "broker_credentials": credentials(settings),
        "store": "rocksdb://",  # rocksdict; "rocksdict://" is not a store name
        "datadir": settings.datadir,
        "web_host": settings.web_host,
        "web_bind": settings.web_bind,
        "web_port": settings.web_port,
        "canonical_url": f"http://{settings.web_host}:{settings.web_port}",
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_disable_leader": True,
        "processing_guarantee": "at_least_once",
        "table_standby_replicas": settings.standby_replicas,
        "consumer_auto_offset_reset": "earliest",
        "producer_linger": 0.005,
        "broker_session_timeout": liveness["session.timeout.ms"] / 1000,  # Faust's default is 60 s
        "broker_heartbeat_interval": liveness["heartbeat.interval.ms"] / 1000,
        "stream_buffer_maxsize": 16384,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }


class QuietWorker(Worker):
    """Faust's Worker, minus its terminal spinner's hook on the root logger.

    The stock Worker sets the root logger to DEBUG so that its spinner turns on every log call; then every
    ``log.debug`` in aiokafka and Faust builds a LogRecord that nobody reads, a visible share of a worker's CPU
    (docs/benchmarks.md). Here the root logger keeps the requested level."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        logger.setLevel(level or logging.WARNING)
        outages.install()  # mode has set up the root logger's handlers by now


def raw_table(table: Any) -> None:
    """Raw keys and values for a table (Faust tables default to JSON, which would quote them): the changelog key
    is the user_id's UTF-8 bytes, hashed like the input topics' keys, and rewards are keyed with it. ``Table()``
    takes no serializer arguments and the table manager builds the changelog topic (which recovery decodes
    with) at registration: set raw serializers, then rebuild it."""
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    table.changelog_topic = table._new_changelog_topic()


def partition_db(table: Any, partition: int) -> Any:
    """The rocksdict database of one partition of a ``rocksdb://`` table."""
    return table.data._db_for_partition(partition)


def watch_changelog(table: Any, observe: Callable[[int, int, bytes | None, bytes | None], None]) -> None:
    """``observe(partition, offset, key, value)`` for every changelog record Faust's recovery (or a standby
    replica) applies to ``table``. Faust restores a table by calling ``apply_changelog_batch`` on it, looked up
    on the instance (faust/tables/recovery.py); the table's own method still does the writing."""
    apply = table.apply_changelog_batch

    def apply_and_watch(batch: Any) -> None:
        events = list(batch)
        for event in events:
            msg = event.message
            observe(msg.partition, msg.offset, msg.key, msg.value)
        apply(events)

    table.apply_changelog_batch = apply_and_watch


def recovered(app: Any) -> bool:
    """Whether Faust is neither rebalancing nor restoring tables: the assigned partitions' state is complete.
    (``TableManager`` has ``recovery``; its declared type does not.)"""
    return not (app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set())
