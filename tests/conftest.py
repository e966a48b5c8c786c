"""Shared fixtures. Tests never touch the network: everything they read, they write first."""

from __future__ import annotations

import os

import pytest

# Keep torch from oversubscribing the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _reset_reidcli_logger():
    """The CLI callback routes `reidcli` logs to its own handler and stops propagation;
    undo that after each test so later tests can capture logs with caplog."""
    import logging

    yield
    logger = logging.getLogger("reidcli")
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
