"""Producers that agents and conversion feeds embed (confluent-kafka adapters over the event codec).

May import: ``pipeline.events``, ``pipeline.kafka``, ``pipeline.settings``."""

from pipeline.producers.event_producer import Delivered, DeliveryError, EventProducer
from pipeline.producers.typed import ConversionProducer, TouchpointProducer

__all__ = ["ConversionProducer", "Delivered", "DeliveryError", "EventProducer", "TouchpointProducer"]
