"""CLI commands of the assistant part (registered on the root app by edgetui/cli.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
