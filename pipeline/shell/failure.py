"""How a worker stops when it cannot go on: loudly, at once, with a non-zero exit.

Either runtime calls this where going on would risk lost or repeated output (a batch Kafka did not take, a
transaction that cannot commit, a step that raised). Nothing is flushed or committed on the way out: everything
not yet acknowledged (Faust) or committed (Kafka runtime) is processed again by whoever restarts the worker."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

log = logging.getLogger("rewardstream.worker")

EXIT_FATAL = 3


def fatal(message: str) -> NoReturn:
    log.critical("%s", message)
    print(f"worker stops: {message}", file=sys.stderr, flush=True)
    os._exit(EXIT_FATAL)
