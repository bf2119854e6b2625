"""The training engine: strategies, the custom loop, optimisation, checkpoints."""
