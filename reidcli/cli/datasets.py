"""`reid datasets` (placeholder module, filled in by the data layer)."""

import typer

from reidcli.cli.common import ReidGroup

app = typer.Typer(cls=ReidGroup, help="datasets", no_args_is_help=True)
