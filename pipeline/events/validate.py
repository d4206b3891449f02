"""Validation of events built in code (a producer's argument): the codecs' own checks, so a bad field fails at
the caller rather than in the worker's dead-letter topic. Above every codec: it goes through JSON and Avro."""

from __future__ import annotations

from pipeline.errors import InvalidEvent
from pipeline.events.avro import touchpoint_to_record
from pipeline.events.jsonl import event_to_json
from pipeline.events.parse import parse_event
from pipeline.events.types import Conversion, Event, Touchpoint


def validate_event(event: Event) -> Event:
    """The same checks as for JSON input, applied to an event built in code (a producer's argument):
    a bad field fails here, at the caller, rather than in the worker's dead-letter topic."""
    if not isinstance(event, Touchpoint | Conversion):
        raise InvalidEvent("<event>", f"must be a Touchpoint or a Conversion, got {type(event).__name__}")
    checked = parse_event(event_to_json(event))
    if isinstance(checked, Touchpoint):
        touchpoint_to_record(checked)  # state/action must be JSON without NaN or infinities
    return checked
