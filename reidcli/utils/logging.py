"""Console and logging set-up shared by every command.

Library code logs with `logging.getLogger(__name__)`; the CLI decides what reaches the
terminal (`-q` warnings only, default info, `-v` debug) through one rich handler on stderr,
so stdout stays free for machine-readable output (`--json -`).
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)
"""Where progress bars, tables and messages for people go."""

stdout_console = Console()
"""For output meant to be piped (tables a user asked for, JSON)."""


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("reidcli")
    root.handlers.clear()
    handler = RichHandler(console=console, show_time=False, show_path=verbose, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
