"""Settings: defaults < TOML < environment; every setting documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.common import load_engine_config
from pipeline.settings import Settings
from pipeline.units import DAY_MS, HOUR_MS

ROOT = Path(__file__).resolve().parents[2]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[kafka]\nbootstrap_servers = "file:1"\npartitions = 12\n')
    s = Settings.load(cfg, env={"REWARDSTREAM_BOOTSTRAP_SERVERS": "env:2"})
    assert (s.bootstrap_servers, s.partitions) == ("env:2", 12)


def test_unknown_or_malformed_settings_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[kafka]\nbootstrp_servers = "x"\n')
    with pytest.raises(ValueError, match="unknown"):
        Settings.load(cfg, env={})
    with pytest.raises(ValueError, match="integer"):
        Settings.load(env={"REWARDSTREAM_PARTITIONS": "eight"})


def test_every_setting_is_documented() -> None:
    assert all(doc for _, doc, _ in Settings.documentation())


def test_example_config_loads_with_its_documented_values() -> None:
    config = load_engine_config(ROOT / "config" / "example.toml")
    assert config.window_for("purchase") == 7 * DAY_MS and config.window_for("signup") == DAY_MS
    assert config.allowed_lateness_ms == HOUR_MS and config.half_life_ms == 24 * HOUR_MS
    assert config.rates.rate("EUR") > 0
    assert Settings.load(ROOT / "config" / "example.toml", env={}) == Settings()


def test_settings_travel_to_a_child_process_through_the_environment_whole() -> None:
    s = Settings(bootstrap_servers="h:1", partitions=3, rocksdb_cache_mb=7, max_event_delay_seconds=9,
                 idle_timeout_seconds=2, batch_linger_ms=1, web_host="w")
    assert Settings.load(env=s.environment()) == s
