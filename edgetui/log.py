"""Logging for the CLI and the TUI: stdlib `logging` to a rotating file in the data dir.

`setup(verbose)` is called once per entry point (the CLI's root callback, the TUI's start); calling it
again replaces the handlers it installed before (tests run many commands in one process). It configures
the `edgetui` and `screens` loggers only, never the root logger, so libraries stay quiet:

- `<data dir>/logs/edgetui.log`, INFO and up (DEBUG with `verbose`), rotated at 1 MiB, 3 old files kept;
- with `verbose`, the same lines at DEBUG on stderr (the CLI's `--verbose/-v`; never inside the TUI).

A data dir that cannot be written leaves logging without a file, silently: logging never breaks a command.
Several processes may append to the same file; rotation between them is best effort.

What is logged is metadata (commands, exit codes, run ids, quality, verdicts, citation ids, timings),
never a question or an answer: answers can quote confidential policy sections.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from edgetui.config import Paths, paths

LOGGERS = ("edgetui", "screens")
FILE_NAME = "edgetui.log"
MAX_BYTES = 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"


class _Stderr(logging.StreamHandler):
    """A stream handler that writes to whatever `sys.stderr` is at the time of the record."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # noqa: D401 - a property standing in for StreamHandler's attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_installed: list[logging.Handler] = []


def log_file(p: Paths | None = None) -> Path:
    """Where the log goes for data dir `p` (default: the configured one)."""
    return (p or paths()).home / "logs" / FILE_NAME


def _file_handler(p: Paths | None) -> logging.Handler | None:
    try:
        path = log_file(p)
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                    encoding="utf-8")
    except (OSError, RuntimeError):  # unwritable data dir, a file in its place, no home directory
        return None


def reset() -> None:
    """Remove and close the handlers `setup` installed."""
    for h in _installed:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(h)
        h.close()
    _installed.clear()


def setup(verbose: bool = False, p: Paths | None = None) -> Path | None:
    """Send the `edgetui`/`screens` loggers to the log file (and stderr when `verbose`).

    Returns the log file, or None when the data dir cannot hold one."""
    reset()
    fmt = logging.Formatter(FORMAT)
    level = logging.DEBUG if verbose else logging.INFO
    handlers: list[logging.Handler] = []
    fh = _file_handler(p)
    if fh is not None:
        handlers.append(fh)
    if verbose:
        handlers.append(_Stderr())
    if not handlers:  # no file and quiet: keep Python's last-resort handler from printing warnings
        handlers.append(logging.NullHandler())
    for h in handlers:
        h.setFormatter(fmt)
        h.setLevel(level)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for h in handlers:
            logger.addHandler(h)
    _installed.extend(handlers)
    return log_file(p) if fh is not None else None
