"""The main job: agents learning from delayed rewards in a simulated ad market, through the real pipeline.

May import: ``pipeline.attribution``, ``pipeline.events``, ``pipeline.gym``, ``pipeline.market``,
``pipeline.money``, ``pipeline.producers``, ``pipeline.replay``, ``pipeline.settings``, ``pipeline.shell``,
``pipeline.units``."""
