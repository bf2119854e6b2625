"""Everything `visiontrain-bench` runs; no library module imports this package."""
