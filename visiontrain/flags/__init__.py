"""absl flags generated from the config declarations, the tools' own flags, the one conversion
from flags to typed configs, and docs/flags.md (reference.py)."""
