"""One absl app per job; each is a console script (see setup.cfg)."""

import os

# Set before any tool imports TensorFlow: its C++ start-up chatter (CUDA probing on
# CPU-only machines) would drown the tool's own output. A user's setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
