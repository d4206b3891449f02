"""Fuzz targets and their runner for the decoders that take bytes from outside (see targets.py)."""
