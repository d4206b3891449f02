"""The journeys table's changelog topic: its name and retention, the same for both runtimes.

Both runtimes keep a partition's journeys in the same compacted topic, in the same value format, so a worker can
move from one runtime to the other on existing state (after a clean stop of the first: the Faust runtime's
rewards still past its last delivered mark are sent again only by the Faust runtime).
"""

from __future__ import annotations

from pipeline.settings import Settings

JOURNEYS_TABLE = "journeys"
# a value is never compacted away before this age: the Faust runtime's outboxes past its delivered mark must
# outlive a long outage
CHANGELOG_RETENTION_MS = 7 * 24 * 3600 * 1000


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{JOURNEYS_TABLE}-changelog"


def changelog_config() -> dict[str, str]:
    """The topic configuration a runtime creates the changelog with."""
    return {"cleanup.policy": "compact", "min.compaction.lag.ms": str(CHANGELOG_RETENTION_MS)}
