"""Event types, JSON parsing and validation, and the Avro single-object codec."""

from pipeline.events.errors import DuplicateEvent, InvalidEvent, LateEvent
from pipeline.events.parse import parse_event
from pipeline.events.types import AttributedReward, Conversion, Event, RewardKind, Touchpoint

__all__ = ["AttributedReward", "Conversion", "DuplicateEvent", "Event", "InvalidEvent", "LateEvent", "RewardKind",
           "Touchpoint", "parse_event"]
