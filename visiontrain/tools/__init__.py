"""One absl app per job; each is a console script (see setup.cfg)."""
