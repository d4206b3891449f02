"""Whether a sink's consumer has read everything there is: the signal tests, the demo and benchmarks wait on."""

from __future__ import annotations

from typing import Any


def at_end(consumer: Any) -> bool | None:
    """True when every assigned partition's position is at its end offset; None with nothing assigned. The end
    offsets are the ones the last fetch responses brought (no request here): unknown before the first one."""
    assigned = consumer.assignment()
    if not assigned:
        return None
    for tp in consumer.position(assigned):
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0 or (high > 0 and tp.offset < high):
            return False
    return True
