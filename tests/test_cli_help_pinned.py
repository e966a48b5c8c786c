"""The options of the recipe-backed commands, pinned: a refactor of how they are declared must
not change a name, flag, default, help text, type or place in the `--help` panels.

The snapshot is tests/data/cli_options.json; regenerate it only for an intended change:
`python tests/test_cli_help_pinned.py > tests/data/cli_options.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from reidcli.cli.app import app

SNAPSHOT = Path(__file__).parent / "data" / "cli_options.json"
COMMANDS = ("finetune", "pretrain", "cfs-filter")


def describe(command: str) -> list[dict[str, Any]]:
    """Every parameter of `reid COMMAND` as --help shows it, in --help order."""
    click_cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    out = []
    for p in click_cmd.params:
        default = p.default
        out.append({
            "name": p.name, "opts": list(p.opts), "secondary": list(p.secondary_opts),
            "default": list(default) if isinstance(default, tuple) else default,
            "type": str(p.type_descriptor.annotation), "flag": p.is_flag,
            "multiple": p.multiple, "required": p.required, "max": p.max,
            "help": getattr(p, "help", None), "panel": getattr(p, "rich_help_panel", None),
            "metavar": p.metavar, "show_default": getattr(p, "show_default", None),
            "min": p.min,
        })
    return out


def rendered(command: str) -> list[str]:
    """`reid COMMAND --help` as printed, one line per option (COLUMNS=250)."""
    env = {"COLUMNS": "250", "TERMINAL_WIDTH": "250", "NO_COLOR": "1"}
    result = CliRunner().invoke(app, [command, "--help"], env=env)
    assert result.exit_code == 0, result.output
    return [line.rstrip() for line in result.output.splitlines()]


def snapshot() -> dict[str, Any]:
    return {"params": {c: describe(c) for c in COMMANDS},
            "help": {c: rendered(c) for c in COMMANDS}}


def _pinned(part: str, command: str) -> Any:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))[part][command]


@pytest.mark.parametrize("command", COMMANDS)
def test_options_match_the_snapshot(command: str) -> None:
    """Each option as it was; their order is pinned panel by panel (below), as --help shows
    it, since the order of the panels' options among each other is not seen."""
    want = {p["name"]: p for p in _pinned("params", command)}
    got = {p["name"]: p for p in json.loads(json.dumps(describe(command)))}
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name


@pytest.mark.parametrize("command", COMMANDS)
def test_help_panels_keep_their_order(command: str) -> None:
    """What a user reads: the panels and the options in each, in order."""
    def panels(params: list[dict[str, Any]]) -> dict[str | None, list[str]]:
        out: dict[str | None, list[str]] = {}
        for p in params:
            out.setdefault(p["panel"], []).append(p["opts"][-1])
        return out

    want = _pinned("params", command)
    assert list(panels(describe(command)).items()) == list(panels(want).items())


@pytest.mark.parametrize("command", COMMANDS)
def test_help_text_is_unchanged(command: str) -> None:
    assert rendered(command) == _pinned("help", command)


if __name__ == "__main__":
    print(json.dumps(snapshot(), indent=1))
