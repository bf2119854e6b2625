"""The docs hold together: a short README, links that resolve, a layout table that is the
tree, and commands whose tools, subcommands and flags exist.

Fast: reads the Markdown files and defines each tool's flags into its own FlagValues; runs
no tool.
"""

from __future__ import annotations

import fnmatch
import pathlib
import re

import pytest
from absl import flags

from visiontrain.flags import convert, definitions, export, jobs

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, REPO / "configs" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MAX_README_LINES = 250

# Each tool's flag groups, as its module in visiontrain/tools defines them, and the
# subcommands it dispatches on (None: it takes none).
TOOLS = {
    "visiontrain-data": ((convert.define_convert_flags, convert.define_inspect_flags),
                         {"build", "verify", "inspect"}),
    "visiontrain-train": ((definitions.define_data_flags, definitions.define_model_flags,
                           definitions.define_training_flags,
                           definitions.define_distribution_flags), None),
    "visiontrain-evaluate": ((jobs.define_evaluate_flags,), None),
    "visiontrain-export": ((export.define_export_flags,), None),
    "visiontrain-predict": ((jobs.define_predict_flags,), None),
    "visiontrain-bench": ((jobs.define_bench_flags,),
                          {"input", "augment", "train", "transfer", "serve"}),
}
# absl's own flags, which every tool takes.
ABSL_FLAGS = {"flagfile", "help", "helpfull", "helpshort", "verbosity", "v", "logtostderr",
              "alsologtostderr", "log_dir"}
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _rel(path: pathlib.Path) -> str:
    return str(path.relative_to(REPO))


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def _anchors(path: pathlib.Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (a repeated slug gets -1, -2, ...)."""
    anchors, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _code_commands(text: str) -> list[tuple[str, str]]:
    """(command, the line after it) for each visiontrain-* command in a code block, fenced
    or indented by four spaces, with backslash continuations joined and a `$ ` prompt,
    `cd ... &&`, `time` and `taskset -c N` taken off."""
    lines, code, fenced, previous_blank = text.splitlines(), [], False, True
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        elif fenced or (line.startswith("    ") and (previous_blank or code and code[-1] == i - 1)):
            code.append(i)
        previous_blank = not line.strip()
    code_set, commands, i = set(code), [], 0
    while i < len(lines):
        if i not in code_set:
            i += 1
            continue
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 in code_set:
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        line = re.sub(r"^\$\s+", "", line)
        line = re.sub(r"^cd \S+ && ", "", line)
        line = re.sub(r"^(time|taskset -c \d+)\s+", "", line)
        if re.match(r"visiontrain-[a-z]+(\s|$)", line):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            commands.append((line.split(" #")[0], following))
        i += 1
    return commands


def _all_commands():
    for path in DOCS:
        for command, following in _code_commands(path.read_text()):
            yield pytest.param(path, command, following, id=f"{_rel(path)}: {command[:60]}")


def _tool_flags(tool: str) -> flags.FlagValues:
    fv = flags.FlagValues()
    for define in TOOLS[tool][0]:
        define(fv)
    return fv


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move guides to docs/, "
        "recipes to configs/README.md and measured figures to docs/benchmarks.md")


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_every_relative_link_resolves(path):
    broken = []
    for line in _prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{target}: no heading #{anchor} in {_rel(linked)}")
    assert not broken, f"{_rel(path)}: {broken}"


def _layout_table() -> list[str]:
    """The first column of the README's layout table, without its backticks."""
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section, re.MULTILINE)]


def _ignored(name: str) -> bool:
    patterns = [p.strip().rstrip("/") for p in (REPO / ".gitignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    return name == ".git" or any(fnmatch.fnmatch(name, p) for p in patterns)


def test_layout_table_is_the_tree():
    named = _layout_table()
    package = REPO / "visiontrain"
    parts = {p.name for p in package.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py")
             or (p.is_dir() and (p / "__init__.py").exists())}
    top_dirs = {p.name for p in REPO.iterdir() if p.is_dir() and not _ignored(p.name)}
    named_parts = {n.removeprefix("visiontrain/") for n in named if n.startswith("visiontrain/")}
    named_dirs = {n.rstrip("/") for n in named if not n.startswith("visiontrain/")}
    assert named_parts == parts, (
        f"missing from the README's layout table: {sorted(parts - named_parts)}; "
        f"named but not in visiontrain/: {sorted(named_parts - parts)}")
    top_dirs.discard("visiontrain")  # its parts have their own rows
    assert named_dirs == top_dirs, (
        f"top-level dirs missing from the table: {sorted(top_dirs - named_dirs)}; "
        f"named but absent: {sorted(named_dirs - top_dirs)}")


@pytest.mark.parametrize("path,command,following", list(_all_commands()))
def test_commands_name_real_tools_subcommands_and_flags(path, command, following,
                                                        monkeypatch):
    """Every command a doc shows names a tool, a subcommand and flags that exist, and one
    written out in full (no `[optional]` parts or `a|b` choices) parses as written, unless
    the line after it is the error it demonstrates."""
    tool = command.split()[0]
    assert tool in TOOLS, f"{command}: no tool {tool}"
    fv, subcommands = _tool_flags(tool), TOOLS[tool][1]
    words = command.split()[1:]
    if subcommands is not None:
        assert words and words[0] in subcommands, f"{command}: subcommand not in {subcommands}"
    unknown = []
    for name in re.findall(r"(?:^|[\s\[])--([a-z][a-z0-9_]*)", " ".join(words)):
        boolean = name.startswith("no") and name[2:] in fv and fv[name[2:]].boolean
        if name not in fv and name not in ABSL_FLAGS and not boolean:
            unknown.append(name)
    assert not unknown, f"{_rel(path)}: {command}: {tool} has no flag(s) {unknown}"
    for match in re.finditer(r"--flagfile=(configs/\S+)", command):
        assert (REPO / match.group(1)).exists(), f"{command}: no {match.group(1)}"
    written_out = "[" not in command and "|" not in command
    if written_out and "error:" not in following:
        monkeypatch.chdir(REPO)
        argv = [tool] + [w for w in words if w.startswith("--")]
        fv(argv)  # raises on a bad value or a missing required flag
