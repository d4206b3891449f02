"""The main job: agents learning from delayed rewards in a simulated ad market, through the real pipeline."""
