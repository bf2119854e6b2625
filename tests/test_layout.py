"""The package layout holds: each package imports only the ones below it, modules stay small.

Every import counts, function-level ones too: a lazy import is a fine way to keep
TensorFlow out of flag parsing, but not a way to hide an arrow that runs back up.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "visiontrain"

# What each part may import besides itself. Leaves first, tools on top.
ALLOWED = {
    "config": set(),
    "errors": set(),
    "fileio": {"errors"},
    # numpy-only calibration math, below evaluation (scores) and serving (--calibrate).
    "calibration": set(),
    # The allocator setting of processes that own their allocator: the tools and the
    # benchmark children.
    "memory": set(),
    "pipelines": {"config", "errors", "fileio"},
    "augment": {"config", "errors"},
    "models": {"config", "errors", "fileio"},
    "evaluation": {"config", "errors", "fileio", "calibration", "pipelines"},
    "serving": {"config", "errors", "fileio", "calibration", "pipelines"},
    "training": {"config", "errors", "fileio", "calibration", "pipelines", "augment", "models",
                 "evaluation"},
    # Flags may read the configs (every setting is declared there, with its default,
    # choices and bounds) and what needs TensorFlow to know: the model registry and the
    # augmentation presets and parser; nothing else of the library.
    "flags": {"config", "models.registry", "augment.policy.PRESETS",
              "augment.policy.parse_policy"},
    "bench": {"config", "errors", "fileio", "calibration", "memory", "pipelines", "augment",
              "models", "training", "evaluation", "serving"},
    "tools": {"config", "errors", "fileio", "calibration", "memory", "pipelines", "augment",
              "models", "training", "evaluation", "serving", "flags", "bench"},
}
MAX_LINES = 400


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts != ("__init__",):
            yield path, parts


def _imports(path: pathlib.Path):
    """Dotted names below `visiontrain.` that a module imports, anywhere in its body."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "visiontrain":
                yield from (alias.name for alias in node.names)
            elif node.module.startswith("visiontrain."):
                base = node.module.removeprefix("visiontrain.")
                yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("visiontrain."):
                    yield alias.name.removeprefix("visiontrain.")


def _allowed(part: str, target: str) -> bool:
    """A rule names a part ("models") or one module of it ("models.registry")."""
    if target.split(".")[0] == part:
        return True
    return any(target == rule or target.startswith(rule + ".")
               or ("." not in rule and target.split(".")[0] == rule) for rule in ALLOWED[part])


@pytest.mark.parametrize(
    "path,parts", [pytest.param(p, parts, id="/".join(parts)) for p, parts in _modules()])
def test_imports_only_run_down(path, parts):
    part = parts[0]
    assert part in ALLOWED, f"{path}: a new top-level part; give it a place in ALLOWED"
    wrong = sorted(t for t in set(_imports(path)) if not _allowed(part, t))
    assert not wrong, f"{path.relative_to(PACKAGE.parent)} ({part}) imports {wrong}"


def test_no_module_over_the_size_limit():
    long = {str(p.relative_to(PACKAGE.parent)): n for p, _ in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concern: {long}"

