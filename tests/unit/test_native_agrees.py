"""The rules kept in more than one place, held to one home each.

Python's spelling is the home: the package works without the native module, so its constants cannot come from
it. The native module exports its own (``native/src/bindings/rules.rs``), and these tests fail as soon as the two
languages disagree; the example configuration's list of models is held to the same names.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.attribution.models import REGISTRY, build_models
from pipeline.engine.partition import journey_codec, records
from pipeline.events import parse
from pipeline.events.types import (
    MODEL_NAMES,
    NO_TOUCHPOINT_IN_WINDOW,
    UNKNOWN_USER,
    AttributionModel,
    RewardKind,
)
from pipeline.system.config import AttributionModel as SystemAttributionModel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def native() -> ModuleType:
    return pytest.importorskip("pipeline._native", reason="the native engine is not built")


# ------------------------------------------------------------------------------------------------ Python alone


def test_the_model_names_have_one_home_in_python() -> None:
    assert tuple(m.value for m in AttributionModel) == MODEL_NAMES
    assert all(type(name) is str for name in MODEL_NAMES)  # plain strings: they are written into messages
    assert SystemAttributionModel is AttributionModel  # the design document's enum is the wire format's
    assert tuple(REGISTRY) == MODEL_NAMES
    models = build_models(3_600_000.0, Fraction(2, 5), Fraction(2, 5), None)
    assert {name: model.name for name, model in models.items()} == {name: name for name in MODEL_NAMES}


def test_the_example_configuration_lists_every_model() -> None:
    text = (ROOT / "config" / "example.toml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("default_model"))
    listed = tuple(line.split("#", 1)[1].split())
    assert listed == MODEL_NAMES, "config/example.toml's default_model comment lists other models"
    default = tomllib.loads(text)["attribution"]["default_model"]
    assert default in MODEL_NAMES


# ------------------------------------------------------------------------------------------------ both languages


def test_the_model_names_agree(native: ModuleType) -> None:
    assert native.MODEL_NAMES == MODEL_NAMES  # same names, same order: the native engine numbers them


def test_the_event_limits_agree(native: ModuleType) -> None:
    limits = native.LIMITS
    assert limits == {
        "MIN_TIMESTAMP_MS": parse.MIN_TIMESTAMP_MS,
        "MAX_TIMESTAMP_MS": parse.MAX_TIMESTAMP_MS,
        "MAX_ID_LENGTH": parse.MAX_ID_LENGTH,
        "MAX_ABS_REWARD": parse.MAX_ABS_REWARD,
        "MAX_VALUE": limits["MAX_VALUE"],
        "MAX_JSON_DEPTH": parse.MAX_JSON_DEPTH,
    }
    assert Decimal(limits["MAX_VALUE"]) == parse.MAX_VALUE


def test_the_reward_kinds_and_reasons_agree(native: ModuleType) -> None:
    assert tuple(k.value for k in RewardKind) == native.REWARD_KINDS  # in the Avro schema's order
    assert native.UNATTRIBUTED_REASONS == (UNKNOWN_USER, NO_TOUCHPOINT_IN_WINDOW)


def test_the_state_keys_agree(native: ModuleType) -> None:
    assert native.SOURCES == records.SOURCES
    assert native.RESERVED_PREFIX == records.RESERVED_PREFIX
    for partition in (0, 1, 7, 63, 1_000_000):
        assert native.meta_key(partition) == records.meta_key(partition)
        assert native.meta_key(partition).startswith(records.RESERVED_PREFIX)


def test_the_binary_journey_format_agrees(native: ModuleType) -> None:
    # the native engine writes the binary format, which the Python codec reads under this version
    assert native.journey_format_version() == journey_codec.BINARY_VERSION
