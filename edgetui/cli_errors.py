"""Exit codes and the one error path every `edgetui` command shares (the root CLI and each part's cli.py).

0 ok, 1 a check or gate failed, 2 bad input (one line on stderr: the problem and the fix), 130 interrupted.
This module imports no CLI, so every sub-CLI can use it without importing the root app back.
"""

from __future__ import annotations

import logging

import typer

from edgetui.config import ConfigError
from edgetui.engine.base import EngineError
from edgetui.ota.manifest import ManifestError
from edgetui.ota.recipe import RecipeError
from edgetui.ota.store import StoreError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

BAD_INPUT: tuple[type[Exception], ...] = (ConfigError, EngineError, ManifestError, RecipeError, StoreError)
"""Errors that mean the input (data dir, bundle, engine set-up) is unusable: exit 2 with their message."""

log = logging.getLogger(__name__)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print one line naming the problem and the fix, exit non-zero."""
    log.info("command failed (exit %d): %s", code, message)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
