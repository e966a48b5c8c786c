from typer.testing import CliRunner

from reidcli import __version__
from reidcli.cli.app import app

runner = CliRunner()

STAGES = ["cfs-filter", "pretrain", "finetune", "extract", "evaluate", "rerank", "demo", "synth",
          "datasets"]


def test_help_lists_every_stage() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"reid {__version__}"


def test_unknown_command_is_usage_error() -> None:
    assert runner.invoke(app, ["no-such-stage"]).exit_code == 2
