"""``rewardstream registry start|stop|status|address``: the project-managed local schema registry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.local_registry import LocalRegistry, LocalRegistryError
from pipeline.local_registry.registry import DEFAULT_APICURIO_VERSION


def register(sub: Any) -> None:
    p = sub.add_parser("registry", help="start, stop or inspect the local schema registry (Apicurio, "
                                        "Confluent-compatible API)")
    p.add_argument("action", choices=["start", "stop", "status", "address"],
                   help="address prints only the registry URL of a running instance (for --registry-url)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: a free one, kept across restarts)")
    p.add_argument("--instance", default="default", help="registry instance name (its own port and log)")
    p.add_argument("--version", default=DEFAULT_APICURIO_VERSION, help="Apicurio Registry version")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the registry to answer")
    p.add_argument("--purge", action="store_true", help="with stop: also delete the instance's folder")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = LocalRegistry(instance=args.instance, port=args.port, version=args.version)
    try:
        if args.action == "start":
            status, started = registry.start(timeout=args.timeout)
            verb = "started" if started else "already running, nothing to do:"
            print(f"registry {verb} {status.detail}")
            print(f"url: {status.url}  log: {registry.log_file}")
            return 0
        if args.action == "stop":
            print(f"registry {registry.stop(purge=args.purge)}")
            return 0
        status = registry.status()
        if args.action == "address":
            if status.running and status.url:
                print(status.url)
                return 0
            print(f"registry {status.detail}", file=sys.stderr)
            return 1
        print(f"registry {status.detail}")
        return 0 if status.running else 1
    except LocalRegistryError as exc:
        print(f"registry {args.action} failed: {exc}", file=sys.stderr)
        return 2
