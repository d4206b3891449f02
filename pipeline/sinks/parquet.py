"""Attributed rewards as Parquet: the JSON Lines form's columns, typed, written row group by row group.

The reward lines are converted by pyarrow's JSON reader (multi-threaded C++, with the schema given, so a line
with a field the schema does not name is an error rather than a silently dropped column) in pieces of about
``ROW_GROUP_JSON_BYTES``; each piece becomes one row group, converted and written on a thread of its own while the
caller produces the next. Memory is bounded by two pieces, never by the result.

Money stays exact: ``amount_minor`` is the integer the engine computed; ``amount``, ``local_amount`` and
``conversion_value`` are the JSON form's decimal numbers as doubles, for reading, not for sums that must be exact.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

_TIME = pa.timestamp("ms", tz="UTC")

# The JSON form of a reward (pipeline.events.jsonl.reward_to_json), column for column and in its order.
REWARD_SCHEMA = pa.schema([
    ("kind", pa.string()),
    ("reward_id", pa.string()),
    ("conversion_id", pa.string()),
    ("touchpoint_id", pa.string()),
    ("episode_id", pa.string()),
    ("user_id", pa.string()),
    ("campaign_id", pa.string()),
    ("channel", pa.string()),
    ("model", pa.string()),
    ("event", pa.string()),
    ("revision", pa.int32()),
    ("amount", pa.float64()),
    ("amount_minor", pa.int64()),
    ("base_currency", pa.string()),
    ("currency", pa.string()),
    ("local_amount", pa.float64()),
    ("conversion_value", pa.float64()),
    ("original_reward", pa.float64()),
    ("touch_time", _TIME),
    ("conversion_time", _TIME),
    ("delay_seconds", pa.float64()),
    ("position", pa.int32()),
    ("journey_length", pa.int32()),
    ("reason", pa.string()),
])

# JSON text per row group: large enough for whole-column compression and readers' parallelism (about 120k
# rewards), small enough that two pieces in memory do not matter.
ROW_GROUP_JSON_BYTES = 64 << 20
_PARSE = pj.ParseOptions(explicit_schema=REWARD_SCHEMA, unexpected_field_behavior="error")


def rewards_table(lines: bytes) -> pa.Table:
    """Whole JSON reward lines as a table of ``REWARD_SCHEMA``."""
    table = pj.read_json(pa.BufferReader(lines), parse_options=_PARSE)
    return table.select(REWARD_SCHEMA.names)


class ParquetRewards:
    """A Parquet file of rewards, written as JSON lines arrive (``pipeline.sinks.RewardFile``)."""

    def __init__(self, path: Path, row_group_bytes: int = ROW_GROUP_JSON_BYTES) -> None:
        self.path = path
        self.rows = 0
        self._limit = row_group_bytes
        self._pending: list[bytes] = []
        self._size = 0
        self._writer = pq.ParquetWriter(path, REWARD_SCHEMA, compression="zstd")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
        self._running: Future[None] | None = None

    def write(self, data: bytes, /) -> int:
        """Take reward lines as a byte stream (a piece may end inside a line); a row group is converted and
        written once ``row_group_bytes`` are held."""
        if data:
            self._pending.append(data)
            self._size += len(data)
            if self._size >= self._limit:
                self._hand_over()
        return len(data)

    def _hand_over(self, last: bool = False) -> None:
        data = b"".join(self._pending)
        cut = len(data) if last else data.rfind(b"\n") + 1  # whole lines; the rest waits for its end
        self._pending = [data[cut:]] if cut < len(data) else []
        self._size = len(data) - cut
        if cut:
            self._wait()  # one piece converts while the next is gathered; a failure surfaces here
            self._running = self._thread.submit(self._write_group, data[:cut])

    def _write_group(self, data: bytes) -> None:
        table = rewards_table(data)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def _wait(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            running.result()

    def close(self) -> None:
        """Write what is held and the file's footer; the file is only readable after this."""
        try:
            if self._pending:
                self._hand_over(last=True)
            self._wait()
        finally:
            self._thread.shutdown()
            self._writer.close()
