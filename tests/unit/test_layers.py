"""The package's layers, checked by importing each in a fresh interpreter: money below events, the event types
below the codecs, events below attribution, and the pure cores free of Kafka, Faust and RocksDB."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SHELLS = ("confluent_kafka", "faust", "rocksdict", "aiokafka", "mode")

# module → prefixes it must not load (directly or through anything it imports)
RULES: dict[str, tuple[str, ...]] = {
    "pipeline.money": ("pipeline.events", "pipeline.attribution", "pipeline.engine", *SHELLS),
    "pipeline.events.types": ("pipeline.events.parse", "pipeline.events.avro", "pipeline.events.jsonl",
                              "pipeline.money", "pipeline.attribution", *SHELLS),
    "pipeline.events.parse": ("pipeline.events.avro", "pipeline.events.jsonl", "pipeline.attribution", *SHELLS),
    "pipeline.events.avro": ("pipeline.attribution", "pipeline.engine", *SHELLS),
    "pipeline.events.jsonl": ("pipeline.events.avro", "pipeline.attribution", "pipeline.engine", *SHELLS),
    "pipeline.attribution": ("pipeline.engine", "pipeline.stream", "pipeline.replay", *SHELLS),
    "pipeline.engine": ("pipeline.stream", "pipeline.replay", "pipeline.backfill", "pipeline.native",
                        "pipeline.runtime", *SHELLS),
    "pipeline.engine.partition": ("pipeline.stream", "pipeline.backfill", "pipeline.native", "pipeline.runtime",
                                  *SHELLS),
    "pipeline.native": ("pipeline.stream", "pipeline.backfill", "pipeline.runtime", "pipeline.cli", *SHELLS),
    "pipeline.native.choice": ("pipeline.stream", "pipeline.backfill", "pipeline.runtime", "pipeline.cli", *SHELLS),
    "pipeline.backfill": ("pipeline.stream", "pipeline.runtime", "pipeline.cli", "faust"),
    "pipeline.sinks.parquet": ("pipeline.attribution", "pipeline.engine", "pipeline.native", "pipeline.backfill",
                               "pipeline.stream", "pipeline.runtime", "pipeline.cli", *SHELLS),
    "pipeline.replay.experiences": ("pipeline.stream", "pipeline.engine", *SHELLS),
    "pipeline.sinks.postgres": ("pipeline.stream", "pipeline.replay", "pipeline.system", "pipeline.cli", "faust",
                                "rocksdict", "aiokafka", "mode"),
    "pipeline.sinks.redis_cache": ("pipeline.stream", "pipeline.replay", "pipeline.system", "pipeline.cli", "faust",
                                   "rocksdict", "aiokafka", "mode"),
    "pipeline.local_servers": ("pipeline.events", "pipeline.sinks", "pipeline.system", *SHELLS),
}


@pytest.mark.parametrize("module", list(RULES))
def test_a_layer_loads_nothing_above_it(module: str) -> None:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                       text=True).stdout)
    bad = [m for m in loaded for prefix in RULES[module] if m == prefix or m.startswith(prefix + ".")]
    assert not bad, f"{module} loads {bad}"
