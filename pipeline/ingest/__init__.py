"""Conversion feeds into the conversions topic: files (JSON Lines, CSV) and an authenticated HTTP endpoint.

May import: ``pipeline.errors``, ``pipeline.events``, ``pipeline.http_auth``, ``pipeline.producers``,
``pipeline.settings``, ``pipeline.shell`` (its ``outages``: the endpoint says when the broker is back)."""
