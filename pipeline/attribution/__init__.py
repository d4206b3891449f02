"""Attribution: exact money, the models, and fitting of the learned ones. Pure: no I/O, no Kafka."""

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.models import Model, build_models
from pipeline.attribution.money import RatesTable, from_minor, split_exact, to_minor
from pipeline.events.types import MODEL_NAMES

__all__ = ["MODEL_NAMES", "LearnedWeights", "Model", "RatesTable", "build_models", "from_minor", "split_exact",
           "to_minor"]
