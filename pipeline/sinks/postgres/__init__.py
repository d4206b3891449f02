"""The PostgreSQL reward ledger: ``rewardstream sink postgres``, and the facade's database persistence.

``migrations`` applies the versioned SQL schema (``migrations/NNNN_name.sql``) on start; ``rows`` turns a
rewards-topic record into the row staged for the ledger (pure); ``write`` holds the one transaction per batch
(ledger, current state, dead letters, offsets) and isolates the facts the schema refuses; ``sink`` is the
consumer loop, exactly once into PostgreSQL through the offsets it keeps there. May import ``pipeline.events``,
``pipeline.kafka``, ``pipeline.settings`` and psycopg.
"""

from pipeline.sinks.postgres.database_url import DatabaseUnreachable, describe, is_postgres_url
from pipeline.sinks.postgres.sink import PostgresSink

__all__ = ["DatabaseUnreachable", "PostgresSink", "describe", "is_postgres_url"]
