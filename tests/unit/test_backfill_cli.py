"""`rewardstream backfill` and `fit` end to end on a generated log with every kind of mess."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from pipeline.cli.main import main
from pipeline.synthetic import BAD_LINES, LogSpec, generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    path.write_text("\n".join(generate(LogSpec(users=800, bad_lines=len(BAD_LINES), seed=3))) + "\n")
    return path


def _read(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("model", ["linear", "time_decay", "position_based", "last_click"])
def test_backfill_output_is_exact_complete_and_explained(log: Path, tmp_path: Path, model: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rewards.jsonl"
    assert main(["backfill", "--input", str(log), "--output", str(out), "--model", model,
                 "--config", str(ROOT / "config" / "example.toml"), "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "conversions attributed" in summary and "rejected:" in summary
    rewards = _read(out)
    rejected = _read(tmp_path / "rewards.rejected.jsonl")
    assert len(rejected) == len(BAD_LINES)
    assert all(r["reason"] and r["field"] for r in rejected)

    # Replay the output in order: a touchpoint's final equals the latest shares it had at that moment;
    # only refunds (which may follow a final, within the refund retention) can move it afterwards.
    latest: dict[tuple[object, object], dict[str, object]] = {}
    finals: dict[object, int] = {}
    after_final: dict[object, int] = defaultdict(int)
    for r in rewards:
        tid = r["touchpoint_id"]
        if r["kind"] == "final":
            assert tid not in finals, "a touchpoint was finalised twice"
            earned = sum(int(x["amount_minor"]) for (_, t), x in latest.items() if t == tid)  # type: ignore[call-overload]
            assert int(r["amount_minor"]) == earned, tid  # type: ignore[call-overload]
            finals[tid] = earned
            continue
        if tid in finals:
            assert r["kind"] == "refund" and int(r["revision"]) == 0, r  # type: ignore[call-overload]
            after_final[tid] += int(r["amount_minor"])  # type: ignore[call-overload]
        key = (r["conversion_id"], tid)
        assert key not in latest or int(r["revision"]) > int(latest[key]["revision"])  # type: ignore[call-overload]
        latest[key] = r
    accepted = {r["touchpoint_id"] for r in rewards}
    assert set(finals) == accepted, "every accepted touchpoint gets exactly one final"
    for tid, extra in after_final.items():
        assert finals[tid] + extra == sum(int(x["amount_minor"]) for (_, t), x in latest.items() if t == tid)  # type: ignore[call-overload]
    assert any(r["kind"] == "correction" for r in rewards)
    assert any(r["kind"] == "refund" for r in rewards)


def test_local_amounts_add_up_to_each_conversion_value(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "rewards.jsonl"
    main(["backfill", "--input", str(log), "--output", str(out), "--config",
          str(ROOT / "config" / "example.toml"), "--quiet", "--model", "time_decay"])
    latest: dict[tuple[object, object], dict[str, object]] = {}
    for r in _read(out):
        if r["kind"] != "final":
            key = (r["conversion_id"], r["touchpoint_id"])
            if key not in latest or int(r["revision"]) >= int(latest[key]["revision"]):  # type: ignore[arg-type]
                latest[key] = r
    from decimal import Decimal

    sums: dict[object, Decimal] = defaultdict(Decimal)
    value: dict[object, Decimal] = {}
    for (cid, _), r in latest.items():
        sums[cid] += Decimal(str(r["local_amount"]))
        value[cid] = Decimal(str(r["conversion_value"]))
    assert sums
    for cid, total in sums.items():
        assert abs(total) == value[cid], cid


def test_fit_writes_versioned_weights_used_by_backfill(log: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.json"
    assert main(["fit", "--input", str(log), "--output", str(weights), "--min-journeys", "50"]) == 0
    body = orjson.loads(weights.read_bytes())
    assert body["format_version"] == 1 and body["weights_id"] and body["fallback"] is None
    out = tmp_path / "r.jsonl"
    assert main(["backfill", "--input", str(log), "--output", str(out), "--model", "data_driven",
                 "--weights", str(weights), "--config", str(ROOT / "config" / "example.toml"), "--quiet"]) == 0
    assert {r["model"] for r in _read(out) if r["kind"] == "attribution"} >= {"data_driven"}
    capsys.readouterr()
    assert main(["fit", "--input", str(log), "--output", str(weights), "--min-journeys", "1000000"]) == 0
    assert "FALLBACK" in capsys.readouterr().err
