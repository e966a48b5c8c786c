"""User-facing errors.

Anything the user can fix (a missing folder, an unreadable image, a bad bank, a checkpoint
that does not fit) raises a `ReidError`. The CLI prints its message without a traceback
(exit code 1, or 2 for a `UsageError`); `--verbose` adds the traceback. Library users catch
it like any exception.
"""


class ReidError(Exception):
    """An error caused by the user's input or environment, saying how to fix it."""

    exit_code = 1


class UsageError(ReidError):
    """A setting that cannot work (an option, a recipe key, a combination): bad usage, so the
    CLI exits with 2 like a mistyped option."""

    exit_code = 2


class DatasetError(ReidError):
    """A dataset folder, list file or image is missing, unreadable or malformed."""


class BankError(ReidError):
    """A feature bank or distance file does not follow the documented format."""


class CheckpointError(ReidError):
    """A checkpoint cannot be read or does not fit the model."""


class TrainingError(ReidError):
    """Training cannot continue (non-finite loss, inconsistent resume state, ...)."""


class OutputError(ReidError):
    """An output cannot be written: it is an input, not ours to replace, in use by another
    run, in a read-only folder, or the disk is full."""
