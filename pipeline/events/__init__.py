"""Events, in layers: ``types`` (the event types; nothing below them but ``pipeline.errors``), then the codecs
above them: ``parse`` (validation of JSON-shaped input, the one validator), ``jsonl`` and ``avro`` (which
validate through ``parse``), ``wire`` above ``avro`` (the topics' framing: single-object, or Confluent's
header swapped in at the edges, with no I/O), and ``validate`` (events built in code). Money sits below all of them
(``pipeline.money``). This package's init imports only the types, so any layer may import it.

May import: ``pipeline.errors``, ``pipeline.money``."""

from pipeline.errors import DuplicateEvent, InvalidEvent, LateEvent
from pipeline.events.types import AttributedReward, Conversion, Event, RewardKind, Touchpoint

__all__ = ["AttributedReward", "Conversion", "DuplicateEvent", "Event", "InvalidEvent", "LateEvent", "RewardKind",
           "Touchpoint"]
