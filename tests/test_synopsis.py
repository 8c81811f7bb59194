"""The command line as the docs state it: docs/reference.md's synopsis names every option of every
command and nothing else, the README's (shorter) names only real options, and a choice the docs
list is the option's whole set."""

import enum
import re
from pathlib import Path

import pytest
import typer

from adedge.cli import app
from adedge.train.models import MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = typer.main.get_command(app).commands


def _synopses(path: Path) -> dict[str, str]:
    """Each `adedge COMMAND ...` line, with its continuation lines, of the code block in PATH that
    states them all (the one that ends with `adedge demo`)."""
    block = next(b for b in re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), re.S) if re.search(r"^adedge demo", b, re.M))
    found: dict[str, str] = {}
    for line in block.splitlines():
        if match := re.match(r"adedge (\w+)", line):
            command = match.group(1)
            found[command] = line
        elif line.startswith(" "):
            found[command] += " " + line.strip()
    return found


def _opts(command) -> dict[str, object]:
    """Each option name (and alias) of COMMAND (typer's own click) and its parameter."""
    return {opt: param for param in command.params if param.param_type_name == "option" for opt in param.opts}


def _choices(param) -> set[str]:
    if param.name == "model":  # a name in the registry, checked before torch loads
        return set(MODEL_NAMES)
    kind = param.type_descriptor.annotation
    return {member.value for member in kind} if isinstance(kind, type) and issubclass(kind, enum.Enum) else set()


def _stated(synopsis: str) -> tuple[set[str], dict[str, set[str]]]:
    """The options SYNOPSIS names, and the choices it lists for some of them (a|b|c)."""
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-p)\b", synopsis))
    choices = {option: set(values.split("|")) for option, values in re.findall(r"(--[a-z-]+) ([a-z0-9_]+(?:\|[a-z0-9_]+)+)", synopsis)}
    return options, choices


@pytest.mark.parametrize("doc", ["docs/reference.md", "README.md"])
def test_every_synopsis_matches_the_command(doc):
    synopses = _synopses(ROOT / doc)
    assert set(synopses) == set(COMMANDS), f"{doc} lists {sorted(synopses)}, the CLI has {sorted(COMMANDS)}"
    for name, command in COMMANDS.items():
        opts = _opts(command)
        options, choices = _stated(synopses[name])
        assert options <= set(opts), f"{doc}: adedge {name} has no {sorted(options - set(opts))}"
        if doc == "docs/reference.md":  # the full synopsis: every option
            missing = {param.opts[0] for param in set(opts.values()) if not options & set(param.opts)}
            assert not missing, f"{doc}: adedge {name} lacks {sorted(missing)}"
        for option, values in choices.items():
            assert values == _choices(opts[option]), f"{doc}: adedge {name} {option} lists {sorted(values)}, the CLI takes {sorted(_choices(opts[option]))}"
