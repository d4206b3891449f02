"""``rewardstream worker``: one worker process, on the Faust runtime (the default) or the Kafka-native one."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pipeline.cli.common import add_kafka_arguments, kafka_settings, load_engine_config, load_weights, wire_flags
from pipeline.http_auth import WeakToken, is_loopback, require_token
from pipeline.kafka import partition_counts
from pipeline.kafka.topics import project_topics
from pipeline.settings import Settings

RUNTIMES = ("faust", "kafka")


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a streaming worker against Kafka (Faust or Kafka-native runtime)")
    add_kafka_arguments(p, config_help="TOML file ([kafka] and [attribution] tables); environment overrides it")
    p.add_argument("--web-port", type=int, help="this worker's HTTP port (each worker needs its own)")
    p.add_argument("--datadir", help="this worker's RocksDB directory (each worker needs its own)")
    p.add_argument("--weights", help="fitted weights for data_driven/shapley")
    p.add_argument("--runtime", choices=RUNTIMES,
                   help="faust (the default: Faust agents, at-least-once with stable reward ids) or kafka "
                        "(confluent-kafka with Kafka transactions: exactly once for read_committed readers)")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(handler=run)


def check_web(settings: Settings) -> str | None:
    """The refusal message when the HTTP views would be open to other hosts without a token, else None."""
    if settings.web_token:
        try:
            require_token(settings.web_token, "REWARDSTREAM_WEB_TOKEN")
        except WeakToken as exc:
            return str(exc)
    elif not is_loopback(settings.web_bind):
        return (f"web_bind is {settings.web_bind}, so /journeys/ (users' touchpoints and conversion values) would "
                "be open to other hosts; set REWARDSTREAM_WEB_TOKEN, or bind to 127.0.0.1")
    return None


def check_runtime(settings: Settings) -> str | None:
    if settings.runtime not in RUNTIMES:
        return f"runtime must be one of {RUNTIMES}, got {settings.runtime!r}"
    return None


def check_topics(settings: Settings) -> str | None:
    """The refusal message when input topics are missing or not co-partitioned, else None."""
    counts = partition_counts(settings, project_topics(settings))
    missing = [t for t, n in counts.items() if n is None]
    if missing:
        return f"topics {missing} do not exist; create them with `rewardstream topics create`"
    if len(set(counts.values())) != 1 or settings.partitions not in counts.values():
        return (f"partition counts disagree: {counts} (configured {settings.partitions}); touchpoints, "
                "conversions and the journey table must have the same count to co-partition by user_id")
    return None


def run(args: argparse.Namespace) -> int:
    settings = kafka_settings(args.config, args.bootstrap, web_port=args.web_port, datadir=args.datadir,
                              runtime=args.runtime, **wire_flags(args))
    config = load_engine_config(args.config)
    learned = load_weights(args.weights or config.weights_file)
    problem = check_runtime(settings) or check_web(settings) or check_topics(settings)
    if problem:
        print(f"worker refuses to start: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("rewardstream").setLevel(logging.INFO)
    if settings.runtime == "kafka":
        return run_kafka(settings, config, learned, args.loglevel)
    from pipeline.stream.app import create_app
    from pipeline.stream.faust_runtime import QuietWorker

    app, _worker = create_app(settings, config, learned)
    print(f"worker {settings.app_id} on :{settings.web_port}, state in {settings.datadir}", flush=True)
    try:
        QuietWorker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return int(exit_.code) if isinstance(exit_.code, int) else 1
    return 0


def run_kafka(settings: Settings, config: Any, learned: Any, loglevel: str) -> int:
    from pipeline.runtime.worker import KafkaWorker

    logging.basicConfig(level=getattr(logging, loglevel.upper(), logging.WARNING),
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    logging.getLogger("rewardstream").setLevel(logging.INFO)
    worker = KafkaWorker(settings, config, learned)
    print(f"worker {settings.app_id} (kafka runtime, transactional id {worker.transactional_id}) on "
          f":{settings.web_port}, state in {settings.datadir}", flush=True)
    return worker.run()
