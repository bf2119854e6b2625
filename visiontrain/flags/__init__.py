"""absl flag definitions, validators, and the one conversion from flags to a typed config."""
