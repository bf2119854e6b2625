"""The progress line (issue 12.14): steady wall-clock interval, step/total, epoch, loss,
img/s and ETA, on a clock the test drives."""

from __future__ import annotations

from visiontrain.training.progress import ProgressLog


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_one_line_per_interval_with_rates_over_that_interval():
    clock = Clock()
    log = ProgressLog(total_steps=100, steps_per_epoch=25, global_batch_size=32, every_s=10,
                      step=0, clock=clock)
    lines = []
    for step in range(5, 101, 5):  # 5 steps every 2 s: 2.5 steps/s, 80 img/s
        clock.now += 2
        lines.append(log.update(step, loss=float(step), steps=5))
    logged = [line for line in lines if line]
    assert len(logged) == 4  # at 10, 20, 30, 40 s
    assert logged[0] == "Step 25/100 (25%), epoch 1/4: loss 15.0000, 80 img/s, ETA 0:00:30"
    assert logged[1] == "Step 50/100 (50%), epoch 2/4: loss 40.0000, 80 img/s, ETA 0:00:20"
    assert logged[-1].startswith("Step 100/100 (100%), epoch 4/4:")


def test_a_resumed_run_counts_from_its_step():
    clock = Clock()
    log = ProgressLog(total_steps=100, steps_per_epoch=25, global_batch_size=10, every_s=0,
                      step=60, clock=clock)
    clock.now += 4
    assert log.update(70, loss=1.5, steps=10) == (
        "Step 70/100 (70%), epoch 3/4: loss 1.5000, 25 img/s, ETA 0:00:12")
