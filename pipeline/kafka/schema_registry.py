"""The schema registry behind ``serialization = "confluent"``: a client of the Confluent-compatible REST API
(Confluent Schema Registry, Apicurio's ``/apis/ccompat/v7``, ...) and :func:`wire_format`, the one call every
producer, reader and runtime makes to learn how its topics' records are framed.

On start the project's schemas are registered under TopicNameStrategy subjects (``<topic>-value``); a subject the
project creates gets BACKWARD compatibility, and a schema that differs from a subject's latest version is first
checked against it with the registry's compatibility endpoint and refused when incompatible. Ids are cached both
ways; an id seen on input that is not cached is looked up once (misses are remembered too).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipeline.events.avro import DecodeError, default_registry, make_version
from pipeline.events.wire import CONFLUENT, SERIALIZATIONS, SINGLE_OBJECT, ConfluentWire, WireFormat
from pipeline.settings import Settings

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY = "BACKWARD"


class RegistryError(RuntimeError):
    """The registry refused a request or could not be reached (not a property of one record)."""


class IncompatibleSchema(RegistryError):
    """A changed schema the registry says is not BACKWARD compatible with the subject's latest version."""


class RegistryClient:
    """The few calls of the Confluent-compatible API the project needs."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return int(resp.status), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                return int(err.code), json.loads(payload)
            except ValueError:
                return int(err.code), payload.decode(errors="replace")
        except (OSError, urllib.error.URLError) as exc:
            raise RegistryError(f"schema registry at {self.url} unreachable: {exc}") from exc

    def _ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, payload = self._call(method, path, body)
        if status >= 300:
            raise RegistryError(f"{method} {path}: HTTP {status}: {payload}")
        return payload

    @staticmethod
    def _subject(subject: str) -> str:
        return urllib.parse.quote(subject, safe="")

    def versions(self, subject: str) -> list[int]:
        status, payload = self._call("GET", f"/subjects/{self._subject(subject)}/versions")
        if status == 404:
            return []
        if status >= 300:
            raise RegistryError(f"versions of {subject}: HTTP {status}: {payload}")
        return [int(v) for v in payload]

    def latest_schema(self, subject: str) -> str:
        return str(self._ok("GET", f"/subjects/{self._subject(subject)}/versions/latest")["schema"])

    def set_compatibility(self, subject: str, level: str) -> None:
        self._ok("PUT", f"/config/{self._subject(subject)}", {"compatibility": level})

    def is_compatible(self, subject: str, schema: str) -> bool:
        payload = self._ok("POST", f"/compatibility/subjects/{self._subject(subject)}/versions/latest",
                           {"schema": schema, "schemaType": "AVRO"})
        return bool(payload.get("is_compatible"))

    def register(self, subject: str, schema: str) -> int:
        return int(self._ok("POST", f"/subjects/{self._subject(subject)}/versions",
                            {"schema": schema, "schemaType": "AVRO"})["id"])

    def schema(self, schema_id: int) -> str | None:
        """The schema stored under ``schema_id``; None when the registry has no such id."""
        status, payload = self._call("GET", f"/schemas/ids/{schema_id}")
        if status == 404:
            return None
        if status >= 300:
            raise RegistryError(f"schema {schema_id}: HTTP {status}: {payload}")
        return str(payload["schema"])


def value_subject(topic: str) -> str:
    """TopicNameStrategy: a topic's record values are registered under ``<topic>-value``."""
    return f"{topic}-value"


def topic_schemas(settings: Settings) -> dict[str, str]:
    """Every topic the project writes or reads, with the name of its record schema."""
    return {settings.topic_touchpoints: "touchpoint", settings.topic_conversions: "conversion",
            settings.topic_rewards: "attributed_reward", settings.topic_dead_letters: "dead_letter"}


class RegistrySchemas:
    """``SchemaIds`` from a registry: the project's schemas registered on start, ids cached both ways."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._ids: dict[tuple[str, bytes], int] = {}
        self._fingerprints: dict[int, bytes] = {}
        self._unknown: dict[int, str] = {}
        self._lock = threading.Lock()

    def register_topics(self, topics: dict[str, str]) -> RegistrySchemas:
        """Register each topic's current schema (checking a changed one for BACKWARD compatibility first)."""
        for topic, name in topics.items():
            version = default_registry().current[name]
            schema = json.dumps(version.raw, separators=(",", ":"))
            subject = value_subject(topic)
            if not self.client.versions(subject):
                self.client.set_compatibility(subject, COMPATIBILITY)
            elif make_version(name, json.loads(self.client.latest_schema(subject))).fingerprint != version.fingerprint \
                    and not self.client.is_compatible(subject, schema):
                raise IncompatibleSchema(f"the {name} schema is not {COMPATIBILITY} compatible with the latest "
                                         f"version under {subject}; it is not used")
            schema_id = self.client.register(subject, schema)
            with self._lock:
                self._ids[(topic, version.fingerprint)] = schema_id
                self._fingerprints[schema_id] = version.fingerprint
        return self

    def id_for(self, topic: str, fingerprint: bytes) -> int:
        try:
            return self._ids[(topic, fingerprint)]
        except KeyError:
            raise ValueError(f"no schema with fingerprint {fingerprint.hex()} is registered for {topic}") from None

    def fingerprint_of(self, schema_id: int) -> bytes:
        known = self._fingerprints.get(schema_id)
        if known is not None:
            return known
        if schema_id in self._unknown:
            raise DecodeError("<schema>", self._unknown[schema_id])
        text = self.client.schema(schema_id)
        reason = None
        if text is None:
            reason = f"unknown schema id {schema_id}: the registry has no such schema"
        else:
            try:
                fingerprint = make_version("registry", json.loads(text)).fingerprint
            except Exception as exc:  # fastavro raises assorted errors on schemas it cannot parse
                reason = f"schema id {schema_id} is no Avro schema this version can read: {exc}"
            else:
                if fingerprint not in default_registry().by_fingerprint:
                    reason = f"schema id {schema_id} is no schema of this project (fingerprint {fingerprint.hex()})"
        with self._lock:
            if reason is not None:
                self._unknown[schema_id] = reason
            else:
                self._fingerprints[schema_id] = fingerprint
        if reason is not None:
            raise DecodeError("<schema>", reason)
        return fingerprint


_FORMATS: dict[tuple[str, tuple[tuple[str, str], ...]], WireFormat] = {}
_FORMATS_LOCK = threading.Lock()


def wire_format(settings: Settings) -> WireFormat:
    """How the records on ``settings``' topics are framed: single-object (bytes pass through), or confluent with
    the schemas registered at ``settings.registry_url`` (once per process and set of topics)."""
    if settings.serialization == SINGLE_OBJECT:
        return WireFormat()
    if settings.serialization != CONFLUENT:
        raise ValueError(f"serialization {settings.serialization!r}: expected one of {', '.join(SERIALIZATIONS)}")
    if not settings.registry_url:
        raise ValueError("serialization confluent needs registry_url (REWARDSTREAM_REGISTRY_URL, --registry-url)")
    topics = topic_schemas(settings)
    key = (settings.registry_url, tuple(sorted(topics.items())))
    with _FORMATS_LOCK:
        wire = _FORMATS.get(key)
        if wire is None:
            wire = _FORMATS[key] = ConfluentWire(RegistrySchemas(RegistryClient(settings.registry_url))
                                                 .register_topics(topics))
    return wire
