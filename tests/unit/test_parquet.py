"""Parquet output (``pipeline.sinks.parquet``): the JSON Lines form's rewards, column for column, in streamed row
groups; and the README's DuckDB query over it, run as written, against sums computed from the JSON Lines."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.events.jsonl import iso_ms, reward_to_json
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.sinks import open_rewards, pumped
from pipeline.sinks.parquet import REWARD_SCHEMA, ParquetRewards, rewards_table
from pipeline.synthetic import LogSpec, generate, write_engine_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One log (several models, currencies, corrections, refunds, bad lines) backfilled to both formats."""
    d = tmp_path_factory.mktemp("parquet")
    lines = generate(LogSpec(users=600, seed=21, bad_lines=4))
    models = ("linear", "time_decay", "last_click")
    # a conversion's own model wins: a log whose conversions pick three models between them
    mixed = [line.replace('"type":"conversion",', f'"type":"conversion","model":"{models[i % 3]}",')
             for i, line in enumerate(lines)]
    (d / "log.jsonl").write_text("\n".join(mixed) + "\n")
    config = write_engine_config(d / "config.toml")
    for fmt in ("jsonl", "parquet"):
        assert main(["backfill", "--input", str(d / "log.jsonl"), "--output", str(d / f"rewards.{fmt}"),
                     "--format", fmt, "--config", str(config), "--quiet"]) == 0
    return d


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row in the JSON form (timestamps back to ISO text)."""
    return {k: (iso_ms(int(v.timestamp() * 1000 + 0.5)) if k.endswith("_time") and v is not None else v)
            for k, v in row.items()}


def test_the_schema_is_the_json_form_of_a_reward() -> None:
    reward = AttributedReward(kind=RewardKind.ATTRIBUTION, touchpoint_id="t", episode_id="e", user_id="u",
                              campaign_id="c", channel="search", revision=0, amount_minor=1, base_currency="USD",
                              original_reward=0.0, touch_time_ms=0)
    assert REWARD_SCHEMA.names == list(reward_to_json(reward))


def test_backfill_to_parquet_holds_what_json_lines_hold(backfilled: Path) -> None:
    rows = [_as_json(r) for r in pq.read_table(backfilled / "rewards.parquet").to_pylist()]
    assert rows == _jsonl(backfilled / "rewards.jsonl") and len(rows) > 1000
    assert (backfilled / "rewards.rejected.jsonl").read_bytes().count(b"\n") == 4
    assert pq.read_schema(backfilled / "rewards.parquet") == REWARD_SCHEMA


def test_row_groups_are_written_as_rewards_come(backfilled: Path, tmp_path: Path) -> None:
    lines = (backfilled / "rewards.jsonl").read_bytes().splitlines(keepends=True)
    path = tmp_path / "r.parquet"
    out = ParquetRewards(path, row_group_bytes=64 << 10)
    for i in range(0, len(lines), 97):
        out.write(b"".join(lines[i:i + 97]))
    before_close = path.stat().st_size  # every row group but the last two is on disk before the end
    out.close()
    meta = pq.read_metadata(path)
    assert meta.num_rows == len(lines) and 10 < meta.num_row_groups <= sum(map(len, lines)) // (64 << 10) + 1
    data = path.stat().st_size - meta.serialized_size  # the row groups, without the footer close writes
    assert before_close > data * (meta.num_row_groups - 3) / meta.num_row_groups
    assert pq.read_table(path) == pq.read_table(backfilled / "rewards.parquet")


def test_an_empty_result_is_an_empty_file_of_the_schema(tmp_path: Path) -> None:
    open_rewards(tmp_path / "none.parquet", "parquet").close()
    table = pq.read_table(tmp_path / "none.parquet")
    assert table.num_rows == 0 and table.schema == REWARD_SCHEMA


def test_a_line_with_a_field_the_schema_does_not_name_is_an_error() -> None:
    line = orjson.dumps({name: None for name in REWARD_SCHEMA.names} | {"surprise": 1}) + b"\n"
    with pytest.raises(pa.ArrowInvalid):
        rewards_table(line)


def test_the_readme_query_gives_the_value_per_channel_by_model(backfilled: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```sql\n(.*?)```", readme[readme.index("## Parquet for analysts"):], re.S)
    assert found is not None
    monkeypatch.chdir(backfilled)  # the query reads 'rewards.parquet'
    got = {(m, ch): (int(v), cur) for m, ch, v, cur in duckdb.sql(found.group(1)).fetchall()}

    # the same from the JSON Lines: each (user, conversion, touchpoint) at its latest revision
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in _jsonl(backfilled / "rewards.jsonl"):
        if r["kind"] in ("attribution", "correction", "refund"):
            key = (r["user_id"], r["conversion_id"], r["touchpoint_id"])
            if key not in latest or r["revision"] > latest[key]["revision"]:
                latest[key] = r
    want: dict[tuple[str, str], int] = defaultdict(int)
    for r in latest.values():
        want[(r["model"], r["channel"])] += r["amount_minor"]
    assert got == {k: (v, "USD") for k, v in want.items()}
    assert {m for m, _ in got} == {"linear", "time_decay", "last_click"}
    # and the exact integers are the JSON amounts' decimals
    assert sum(v for v, _ in got.values()) == sum(
        int(Decimal(str(r["amount"])).scaleb(2)) for r in latest.values())


def test_a_failing_file_behind_the_pump_stops_the_writer_and_is_raised() -> None:
    class Full:
        def __init__(self) -> None:
            self.got = 0

        def write(self, data: bytes, /) -> int:
            self.got += len(data)
            if self.got > 1 << 20:
                raise OSError("disk full")
            return len(data)

        def close(self) -> None:
            pass

    # the writer's next write fails once the file has; leaving the pump raises the file's error
    with pytest.raises(OSError, match="disk full"), pumped(Full()) as fd, pytest.raises(BrokenPipeError):
        for _ in range(64):  # more than the pipe holds once nobody reads
            os.write(fd, b"x" * (1 << 20))
