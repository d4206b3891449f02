"""`rewardstream backfill` and `fit` end to end on a generated log with every kind of mess."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from pipeline.cli.main import main
from pipeline.events.types import MODEL_NAMES
from pipeline.synthetic import BAD_LINES, LogSpec, generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    path.write_text("\n".join(generate(LogSpec(users=800, bad_lines=len(BAD_LINES), seed=3))) + "\n")
    return path


def _ms(iso: object) -> int:
    from pipeline.events.parse import parse_timestamp

    return parse_timestamp(iso)


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

    # Replay the output in order. No attribution or correction may follow a touchpoint's final; a refund
    # may, but only one dated after the touchpoint's window, and such refunds are not part of the final.
    window_ms = 7 * 86_400_000
    latest: dict[tuple[object, object], dict[str, object]] = {}
    finals: dict[object, int] = {}
    unattributed: set[object] = set()
    for r in rewards:
        tid = r["touchpoint_id"]
        if r["kind"] == "unattributed":  # a conversion that paid nobody: it names no touchpoint and no amount
            assert tid == "" and r["amount_minor"] == 0 and r["reason"] in ("unknown_user", "no_touchpoint_in_window")
            assert r["conversion_id"] not in unattributed
            unattributed.add(r["conversion_id"])
            continue
        if r["kind"] == "final":
            assert tid not in finals, "a touchpoint was finalised twice"
            finals[tid] = int(r["amount_minor"])  # type: ignore[call-overload]
            continue
        if tid in finals:
            assert r["kind"] == "refund", r
        key = (r["conversion_id"], tid)
        assert key not in latest or int(r["revision"]) > int(latest[key]["revision"])  # type: ignore[call-overload]
        latest[key] = r
    accepted = {r["touchpoint_id"] for r in rewards if r["kind"] != "unattributed"}
    assert set(finals) == accepted, "every accepted touchpoint gets exactly one final"
    assert unattributed, "the log has conversions with no touchpoint in their window"
    assert f"+{len(unattributed):,} with no touchpoint in their window" in summary
    expected: dict[object, int] = defaultdict(int)
    for (_, tid), r in latest.items():
        late_refund = r["kind"] == "refund" and _ms(r["conversion_time"]) > _ms(r["touch_time"]) + window_ms
        if not late_refund:
            expected[tid] += int(r["amount_minor"])  # type: ignore[call-overload]
    assert {t: v for t, v in finals.items() if v or expected.get(t)} == {t: v for t, v in expected.items() if v}
    assert any(r["kind"] == "correction" for r in rewards)
    assert any(r["kind"] == "refund" for r in rewards)


def test_local_amounts_add_up_to_each_conversion_value(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "rewards.jsonl"
    main(["backfill", "--input", str(log), "--output", str(out), "--config",
          str(ROOT / "config" / "example.toml"), "--quiet", "--model", "time_decay"])
    latest: dict[tuple[object, object], dict[str, object]] = {}
    for r in _read(out):
        if r["kind"] not in ("final", "unattributed"):
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
    report = tmp_path / "report"
    assert main(["fit", "--input", str(log), "--output", str(weights), "--min-journeys", "50", "--order", "auto",
                 "--weight-by", "value", "--report", str(report)]) == 0
    body = orjson.loads(weights.read_bytes())
    assert body["format_version"] == 2 and body["weights_id"] and body["fallback"] is None
    assert body["markov"]["weighting"] == "value" and set(body["markov"]["order_scores"]) == {"1", "2", "3", "4"}
    assert set(body["journey_counts"]) >= {"converted", "not_converted", "censored"}
    data = orjson.loads((report / "fit-report.json").read_bytes())
    assert data["weights_id"] == body["weights_id"]
    assert set(data["credit_per_model"]["minor_units"]) == set(MODEL_NAMES)
    assert set(data["shapley_values"]) == set(body["markov"]["removal_effects"])
    states = data["markov"]["first_order_transitions"]["states"]
    rows = data["markov"]["first_order_transitions"]["probabilities"]
    assert all(abs(sum(row) - 1) < 1e-9 for state, row in zip(states, rows, strict=True)
               if state not in ("(conversion)", "(null)"))
    assert (report / "fit-report.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "r.jsonl"
    assert main(["backfill", "--input", str(log), "--output", str(out), "--model", "data_driven",
                 "--weights", str(weights), "--config", str(ROOT / "config" / "example.toml"), "--quiet"]) == 0
    assert {r["model"] for r in _read(out) if r["kind"] == "attribution"} >= {"data_driven"}
    capsys.readouterr()
    assert main(["fit", "--input", str(log), "--output", str(weights), "--min-journeys", "1000000"]) == 0
    assert "FALLBACK" in capsys.readouterr().err


def test_native_and_python_backfill_files_are_identical(tmp_path: Path) -> None:
    """Through files, as users run it: the native engine parses chunks of 64 KiB or more on a second thread
    and writes its output on a third; the output and the rejected lines must still be the reference's."""
    from pipeline.backfill import rejected_path, run_backfill
    from pipeline.engine import EngineConfig

    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(generate(LogSpec(users=4000, bad_lines=len(BAD_LINES), seed=11))) + "\n")
    assert log.stat().st_size > 4 * (1 << 20)  # several of the backfill's 1 MiB chunks
    outputs = {}
    for engine in ("python", "native"):
        out = tmp_path / f"{engine}.jsonl"
        summary = run_backfill(log, out, EngineConfig(default_model="time_decay"), progress=False, engine=engine)
        # a future event's reason names the moment the backfill started, which differs between the two runs
        rejected = re.sub(rb"entered the log \(\d+\)", b"entered the log (start)", rejected_path(out).read_bytes())
        outputs[engine] = (out.read_bytes(), rejected, summary.rewards_out, summary.rejected)
    assert outputs["native"][2] > 10_000 and outputs["native"][3] >= len(BAD_LINES)
    assert outputs["native"] == outputs["python"]


@pytest.mark.timeout(60, method="thread")  # the hang was in native code: no signal would get through
def test_a_log_whose_chunks_pay_nothing_until_its_end_is_written_whole(tmp_path: Path) -> None:
    """Touchpoints only, every window open until the input ends: chunk after chunk yields no reward line. The
    native writer lost the buffer of each such chunk, and after three waited forever for one to come back."""
    from pipeline.backfill import run_backfill
    from pipeline.engine import EngineConfig

    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(orjson.dumps({
        "type": "touchpoint", "touchpoint_id": f"t{i}", "episode_id": "e", "user_id": f"u{i % 700}",
        "campaign_id": "c", "channel": "search", "timestamp": 1_767_225_600_000 + i * 1000, "state": [0.5] * 8,
        "action": 1}) + b"\n" for i in range(3000)))
    outputs = {}
    for engine in ("python", "native"):
        out = tmp_path / f"{engine}.jsonl"
        # chunks of 4 KiB: hundreds of them, none with a reward in it
        summary = run_backfill(log, out, EngineConfig(), progress=False, engine=engine, max_line_bytes=4096)
        outputs[engine] = out.read_bytes()
        assert summary.events_in == 3000 and summary.rewards_out == 3000  # each touchpoint's final, at the end
    assert outputs["native"] == outputs["python"]
