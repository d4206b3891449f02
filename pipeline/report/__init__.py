"""PNG reports of demo runs and of attributed-reward files."""
