"""PNG reports of demo runs and of attributed-reward files.

May import: ``pipeline.attribution``, ``pipeline.demo``, ``pipeline.engine``, ``pipeline.events``,
``pipeline.model_comparison``, ``pipeline.money``."""
