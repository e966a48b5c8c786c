from typer.testing import CliRunner

from reidcli import __version__
from reidcli.cli.app import app

runner = CliRunner()

STAGES = ["cfs-filter", "pretrain", "finetune", "extract", "evaluate", "rerank", "visualize",
          "demo", "synth", "datasets"]


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


def test_user_error_is_one_red_line_exit_1_and_traceback_with_verbose(tmp_path) -> None:
    missing = str(tmp_path / "nope.h5")
    result = runner.invoke(app, ["evaluate", missing])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    verbose = runner.invoke(app, ["-v", "evaluate", missing])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output


def test_help_shows_defaults_written_in_option_help(monkeypatch) -> None:
    # Rich reads "[default: x]" in a help string as a markup tag and drops it silently.
    monkeypatch.setenv("COLUMNS", "250")
    for stage, shown in (("pretrain", "(default: 256x128)"), ("finetune", "(default: 16x4)"),
                         ("pretrain", "(default: 0.996)")):
        result = runner.invoke(app, [stage, "--help"])
        assert result.exit_code == 0
        assert shown in result.output, (stage, shown)


def test_no_option_help_hides_text_in_rich_markup() -> None:
    import click
    import typer

    def commands(cmd: click.Command):
        yield cmd
        for sub in getattr(cmd, "commands", {}).values():
            yield from commands(sub)

    offenders = [f"{cmd.name} {p.name}" for cmd in commands(typer.main.get_command(app))
                 for p in cmd.params if "[default:" in (getattr(p, "help", None) or "")]
    assert offenders == []
