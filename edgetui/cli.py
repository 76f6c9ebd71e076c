"""The `edgetui` command: a thin typer face over the core. No logic the TUI would also need.

Exit codes everywhere: 0 ok, 1 a check or gate failed, 2 bad input (one line on stderr: problem + fix);
the codes, `BAD_INPUT` and `fail` live in `edgetui/cli_errors.py`, shared with every part's commands.
Each part registers its own commands from `edgetui/<part>/cli.py`. `--verbose/-v` (before the command)
also prints the log (`edgetui/log.py`) at DEBUG on stderr.

Opening the TUI (no command) is the one place the core reaches into `screens/`: this module is the
composition root of the `edgetui` command.
"""

from __future__ import annotations

import json
import logging
import sys

import typer

from edgetui import __version__
from edgetui import log as edgetui_log
from edgetui.cli_errors import BAD_INPUT, fail
from edgetui.engine.base import GenParams

app = typer.Typer(add_completion=True, no_args_is_help=False, help="Offline policy assistant for edge devices.")
log = logging.getLogger(__name__)
_command: str | None = None  # the command being run, for the exit line in `main`


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context, version: bool = typer.Option(False, "--version", help="Print the version."),
         verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the log (DEBUG) on stderr.")) -> None:
    """With no command, open the TUI on the active bundle."""
    if version:
        typer.echo(f"edgetui {__version__}")
        raise typer.Exit(0)
    edgetui_log.setup(verbose)
    global _command
    _command = ctx.invoked_subcommand or "(tui)"
    log.info("edgetui %s: %s started", __version__, _command)  # never argv: a question can be confidential
    if ctx.invoked_subcommand is None:
        from screens.app import run_app

        run_app()


@app.command()
def generate(
    text: str,
    max_tokens: int = typer.Option(64, "--max-tokens", "-n", min=1, help="Output cap in tokens."),
    raw: bool = typer.Option(False, "--raw", help="Send TEXT as is, without the chat format."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object with text and stats."),
) -> None:
    """Stream a completion from the active bundle's model."""
    from edgetui.session import Session

    try:
        with Session.open() as session:
            bundle = session.bundle
            prompt = text if raw else bundle.chat_prompt(text)
            g = session.engine.generate(prompt, GenParams(max_tokens=max_tokens))
            for tok in g:
                if not as_json:
                    sys.stdout.write(tok.text)
                    sys.stdout.flush()
    except BAD_INPUT as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps({"bundle": bundle.ref, "text": g.text, "stats": g.stats.to_dict()}))
    else:
        s = g.stats
        typer.echo(f"\n[{s.prompt_tokens} prompt tok, TTFT {s.ttft_ms:.0f} ms, {s.decode_tps:.1f} tok/s]", err=True)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the install: versions, CPU features, data dir, active bundle, sensors, a crash probe."""
    from edgetui.doctor import run_checks

    findings = run_checks()
    if as_json:
        typer.echo(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for f in findings:
            typer.echo(f.line())
    raise typer.Exit(0 if all(f.ok for f in findings) else 1)


def _register_parts() -> None:
    from edgetui.assistant import cli as assistant_cli
    from edgetui.evals import cli as evals_cli
    from edgetui.ota import cli as ota_cli
    from edgetui.telemetry import cli as telemetry_cli

    for part in (assistant_cli, telemetry_cli, evals_cli, ota_cli):
        part.register(app)
    # distill registers lazily: its module imports torch only inside commands.
    from edgetui.distill import cli as distill_cli

    distill_cli.register(app)


_register_parts()


def main() -> None:
    try:
        app()
    except SystemExit as e:  # click ends every standalone run with SystemExit, code 0 included
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if _command is not None:
            log.info("%s exited with code %d", _command, code)
        raise
    except BaseException:
        log.exception("%s crashed", _command or "edgetui")
        raise
