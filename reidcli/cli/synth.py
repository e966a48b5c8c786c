"""`reid synth` (placeholder module, filled in by the data layer)."""

import typer

from reidcli.cli.common import ReidGroup

app = typer.Typer(cls=ReidGroup, help="synth", no_args_is_help=True)
