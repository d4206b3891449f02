"""Conversion feeds into the conversions topic: files (JSON Lines, CSV) and an authenticated HTTP endpoint."""
