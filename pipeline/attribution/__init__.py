"""Attribution: the models (a registry by name), fitting of the learned ones, journeys and the delay model.
Pure: no I/O, no Kafka. Exact money lives below it, in ``pipeline.money``.

May import: ``pipeline.events``."""

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.models import REGISTRY, Model, build_models
from pipeline.events.types import MODEL_NAMES

__all__ = ["MODEL_NAMES", "REGISTRY", "LearnedWeights", "Model", "build_models"]
