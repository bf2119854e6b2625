"""Input pipelines on the host: shard writing and reading, decoding, the shared preprocessing."""
