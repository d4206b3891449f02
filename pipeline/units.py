"""Event-time units in milliseconds (event timestamps are epoch milliseconds everywhere). One definition.

May import: no other part of the package."""

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
