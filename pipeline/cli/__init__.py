"""The ``rewardstream`` command line: one module per sub-command."""
