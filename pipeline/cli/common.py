"""Reading the project's TOML file for the commands that need attribution settings."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine.config import EngineConfig


def load_engine_config(path: str | Path | None, model: str | None = None) -> EngineConfig:
    """The ``[attribution]`` table of ``path`` (defaults without a file), with ``--model`` applied."""
    config = EngineConfig()
    if path:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
        config = EngineConfig.from_mapping(data.get("attribution", {}))
    if model:
        config = dataclasses.replace(config, default_model=model)
    return config


def load_weights(path: str | Path | None) -> LearnedWeights | None:
    if not path:
        return None
    return LearnedWeights.from_json(json.loads(Path(path).read_text()))
