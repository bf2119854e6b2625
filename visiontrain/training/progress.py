"""A progress line at a steady wall-clock interval, so a long epoch never looks hung.

    Step 120/460 (26%), epoch 3/10: loss 1.2345, 850 img/s, ETA 0:00:40

Rates are wall-clock over the interval since the previous line (evaluation and
checkpoint time included), so the ETA is what the clock will show. The loop calls
`update` at every step boundary of its compiled multi-step calls: a line comes at
the first boundary after each `every_s` seconds.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Callable


class ProgressLog:
    def __init__(self, total_steps: int, steps_per_epoch: int, global_batch_size: int,
                 every_s: float, step: int, clock: Callable[[], float] = time.monotonic):
        self.total = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.batch = global_batch_size
        self.every_s = every_s
        self.clock = clock
        self.last_time = clock()
        self.last_step = step
        self.loss_sum = 0.0
        self.loss_steps = 0

    def update(self, step: int, loss: float, steps: int) -> str | None:
        """Records `steps` steps ending at `step` with mean `loss`; returns the line if logged."""
        self.loss_sum += loss * steps
        self.loss_steps += steps
        now = self.clock()
        elapsed = now - self.last_time
        if elapsed < self.every_s or step <= self.last_step:
            return None
        steps_per_s = (step - self.last_step) / max(elapsed, 1e-9)
        eta = datetime.timedelta(seconds=round((self.total - step) / steps_per_s))
        epoch = (step - 1) // self.steps_per_epoch + 1  # the epoch of the step just done
        epochs = self.total // self.steps_per_epoch
        line = (f"Step {step}/{self.total} ({100 * step // self.total}%), epoch {epoch}/"
                f"{epochs}: loss {self.loss_sum / self.loss_steps:.4f}, "
                f"{steps_per_s * self.batch:.0f} img/s, ETA {eta}")
        logging.info("%s", line)
        self.last_time, self.last_step = now, step
        self.loss_sum, self.loss_steps = 0.0, 0
        return line
