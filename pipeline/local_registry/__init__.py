"""A local Apicurio Registry (Confluent-compatible API) run from Maven Central with plain ``java``, like the broker
of ``pipeline.local_kafka``: for ``--serialization confluent`` in tests, the demo and development. Nothing here is
needed when a real schema registry is configured. Imports the local broker's cache location only.

May import: ``pipeline.local_kafka``, ``pipeline.ports``."""

from pipeline.local_registry.registry import LocalRegistry, LocalRegistryError, RegistryStatus

__all__ = ["LocalRegistry", "LocalRegistryError", "RegistryStatus"]
