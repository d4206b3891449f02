"""Typed errors for bad input: each names the offending field so a dead letter says what to fix.

May import: no other part of the package."""

from __future__ import annotations


class InvalidEvent(ValueError):
    """An event the pipeline refuses. ``field`` names the offending field, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class LateEvent(InvalidEvent):
    """Older than the watermark: its window may already be final, so accepting it could pay twice."""


class DuplicateEvent(Exception):
    """The id was seen before. Not an error for the sender (retries happen); counted and ignored."""

    def __init__(self, kind: str, event_id: str) -> None:
        super().__init__(f"duplicate {kind} {event_id}")
        self.kind = kind
        self.event_id = event_id


class StateNotWritten(OSError):
    """A worker's local state store refused a write (a full disk, a read-only or failing filesystem). The worker
    stops: its changelog holds every committed write, and a restart with a writable state directory restores the
    store from it."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"the state store at {path} could not be written ({cause}); the changelog holds everything "
                         "committed, and a restart restores the store from it once the directory is writable")
        self.path = path
