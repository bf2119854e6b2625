"""A stand-in benchmark configuration for tests/bench/test_harness.py."""


def run_config(name, value):
    if name == "boom":
        raise ValueError("boom")
    return {"name": name, "doubled": 2 * value}
