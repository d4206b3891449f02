"""What both sinks share: a consumer loop in a background thread until closed, and :attr:`caught_up` (set while
every assigned partition is read to its end) that tests, the demo and benchmarks wait on."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Self

from pipeline.sinks.progress import at_end


class SinkLoop:
    """Subclasses set ``_consumer``, implement :meth:`poll_once` and close their store in :meth:`_close_store`."""

    _consumer: Any

    def __init__(self, thread_name: str) -> None:
        self.caught_up = threading.Event()
        self._stopping = threading.Event()
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Run in a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self.run, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        while not self._stopping.is_set():
            self.poll_once()

    def poll_once(self) -> int:
        """Read what the broker has and write it; returns the records handled."""
        raise NotImplementedError

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with contextlib.suppress(Exception):
            self._consumer.close()
        self._close_store()

    def _close_store(self) -> None:
        raise NotImplementedError

    def _note_position(self) -> None:
        """Set or clear :attr:`caught_up` (unchanged while nothing is assigned)."""
        done = at_end(self._consumer)
        if done is True:
            self.caught_up.set()
        elif done is False:
            self.caught_up.clear()
