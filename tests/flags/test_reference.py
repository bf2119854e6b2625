"""docs/flags.md is generated from the declarations, and lists every flag of every tool."""

from __future__ import annotations

import pytest

from visiontrain.flags import reference


def test_docs_flags_md_is_the_generators_output():
    assert reference.DOCS.read_text() == reference.render(), (
        f"docs/flags.md is stale; regenerate it: {reference.REGENERATE}")


@pytest.mark.parametrize("tool", sorted(reference.TOOLS))
def test_every_flag_of_the_tool_has_a_row_in_its_section(tool):
    text = reference.render().split(f"\n## {tool}\n")[1].split("\n## ")[0]
    for module, module_flags in reference.tool_flags(tool).flags_by_module_dict().items():
        section = text.split(f"\n### {module}")[1].split("\n### ")[0]
        for flag in module_flags:
            assert f"\n| `--{flag.name}` |" in section, (tool, module, flag.name)


def test_the_train_rows_carry_bounds_choices_and_resume_group():
    text = reference.render().split("\n## visiontrain-train\n")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| `")}
    assert rows["| `--label_smoothing`"].startswith(
        "| `--label_smoothing` | `0.0` | in [0, 0.5] | recipe | Label smoothing. |")
    assert "| `sgd`, `adamw`, `rmsprop`, `lamb`, `lion` | recipe |" in rows["| `--optimizer`"]
    assert "| >= 0 | length |" in rows["| `--early_stop_patience`"]
    assert "| required |  | paths |" in rows["| `--run_dir`"]
    # A preset is recorded as the --augment policy it names: --augment's group.
    assert "| recipe |" in rows["| `--augment_preset`"]
