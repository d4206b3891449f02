"""Every way the engine refuses an event, by name, with the message a dead letter or a rejected line carries.

The Python engine raises these; the native engine reports the name and its values, and the same function
writes the message, so both engines refuse with the same words.
"""

from __future__ import annotations

from pipeline.errors import InvalidEvent, LateEvent


def late(time_ms: int, watermark: int, lateness_ms: int) -> LateEvent:
    return LateEvent("timestamp", f"event time {time_ms} is before the watermark {watermark} "
                                  f"(later than the allowed lateness of {lateness_ms} ms)")


def future(time_ms: int, skew_ms: int, ingest_ms: int) -> InvalidEvent:
    return InvalidEvent("timestamp", f"event time {time_ms} is more than {skew_ms} ms ahead of the time it "
                                     f"entered the log ({ingest_ms}); refusing a future timestamp")


def unknown_model(model: str) -> InvalidEvent:
    return InvalidEvent("model", f"unknown attribution model {model!r}")


def no_rate(currency: str, base: str) -> InvalidEvent:
    return InvalidEvent("currency", f"no rate from {currency} to base {base} is configured; refusing to guess")


def unknown_refund(refund_of: str, user_id: str) -> InvalidEvent:
    return InvalidEvent("refund_of", f"conversion {refund_of!r} is unknown for user {user_id!r} "
                                     "or older than the refund retention")


def refund_too_old(after_ms: int, refund_of: str, retention_ms: int) -> InvalidEvent:
    return InvalidEvent("refund_of", f"refund dated {after_ms} ms after conversion {refund_of!r}, more than the "
                                     f"refund retention of {retention_ms} ms")


def refund_currency(currency: str, original: str) -> InvalidEvent:
    return InvalidEvent("currency", f"refund in {currency} of a conversion in {original}")


def refund_exceeds(value_minor: int, left: int) -> InvalidEvent:
    return InvalidEvent("value", f"refund of {value_minor} minor units exceeds the {left} not yet refunded")


# name → builder: how the native engine's reports are turned into the same errors
BY_NAME = {f.__name__: f for f in (late, future, unknown_model, no_rate, unknown_refund, refund_too_old,
                                   refund_currency, refund_exceeds)}
