"""Attribution models scored against the market's causal truth (`rewardstream evaluate`)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from pipeline.cli.common import load_engine_config
from pipeline.cli.main import main
from pipeline.events.jsonl import event_to_json
from pipeline.events.types import Conversion, Event, Touchpoint
from pipeline.market import MARKETS, Truth
from pipeline.model_comparison import EVALUATED, evaluate_models
from pipeline.synthetic import write_engine_config
from pipeline.units import HOUR_MS

T0 = 1_780_272_000_000
SEGMENT = [1.0, 0.0, 0.0, 0.0]


def _touch(tid: str, user: str, channel: str, at: int) -> Touchpoint:
    return Touchpoint(tid, "e", user, "camp", channel, at, 0.0, "banner", SEGMENT, 0)


@pytest.mark.parametrize("engine", ["native", "python"])
def test_each_model_is_scored_on_a_journey_whose_truth_is_known(tmp_path: Path, engine: str) -> None:
    # u1: display opened, search closed, each owed half of 100; u2: an email ad, then a conversion of 50 that
    # would have happened anyway
    events: list[Event] = [
        _touch("t1", "u1", "display", T0), _touch("t2", "u1", "search", T0 + HOUR_MS),
        _touch("t3", "u2", "email", T0 + HOUR_MS + 1),
        Conversion("c1", "u1", "purchase", Decimal("100.00"), "USD", T0 + 2 * HOUR_MS),
        Conversion("c2", "u2", "purchase", Decimal("50.00"), "USD", T0 + 3 * HOUR_MS)]
    truth = {"c1": Truth("camp", "u1", 100.0, ((T0, 0.5), (T0 + HOUR_MS, 0.5)), 0.0),
             "c2": Truth("camp", "u2", 50.0, (), 1.0)}
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(orjson.dumps(event_to_json(e)) + b"\n" for e in events))
    config = load_engine_config(write_engine_config(tmp_path / "c.toml", window_days=7))
    ev = evaluate_models(log, truth, MARKETS["one-cause"](1), config, engine)
    assert ev.truth_per_channel == {"search": 50.0, "display": 50.0, "social": 0.0, "email": 0.0, "video": 0.0}
    assert ev.incremental_value == 100.0 and ev.organic_value == 50.0
    assert [s.model for s in ev.scores] == list(EVALUATED)
    last, first, linear = ev.score("last_click"), ev.score("first_click"), ev.score("linear")
    assert last.per_channel["search"] == 100.0 and last.per_channel["display"] == 0.0
    assert first.per_channel["display"] == 100.0
    assert last.error == pytest.approx(1.5) and first.error == pytest.approx(1.5)  # 50 + 50 + 50 of 100
    assert linear.error == pytest.approx(0.5)  # only the organic 50 given to email
    assert linear.share_error == pytest.approx(1 / 3)
    assert all(s.organic_to_ads == 1.0 for s in ev.scores)  # email had a touch in the window
    assert ev.ranked()[0].error == pytest.approx(0.5)
    assert "best model on the one-cause market" in ev.headline()


def test_evaluate_scores_every_model_on_a_small_causal_market(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    out = tmp_path / "ev"
    assert main(["evaluate", "--days", "4", "--campaigns", "2", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^true incremental\s+[\d,]+", printed, re.M), printed
    for model in ("last_click", "shapley", "data_driven order"):
        assert re.search(rf"^{model}\S*\s+[\d,]+.*%$", printed, re.M), printed
    assert "best model on the causal market:" in printed
    data = json.loads((out / "evaluation.json").read_text())
    assert data["organic_value"] > 0 and data["incremental_value"] > 0
    totals = {round(sum(s["per_channel"].values()), 2) for s in data["scores"]}
    assert len(totals) == 1  # every model pays out the same conversions, split differently
    floor = (totals.pop() - data["incremental_value"]) / data["incremental_value"]
    assert all(s["error"] >= floor - 1e-9 for s in data["scores"])
    assert (out / "evaluation.png").stat().st_size > 30_000


def test_a_touch_the_truth_cannot_name_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(orjson.dumps(event_to_json(_touch(t, t, "email", T0))) + b"\n" for t in ("a", "b")))
    config = load_engine_config(write_engine_config(tmp_path / "c.toml", window_days=7))
    with pytest.raises(ValueError, match="must be unique"):
        evaluate_models(log, {}, MARKETS["one-cause"](1), config)


def test_evaluate_refuses_an_empty_run(tmp_path: Path) -> None:
    assert main(["evaluate", "--days", "0", "--out", str(tmp_path)]) == 2
