"""Which process owns a row marked as in progress (an eval run, a sustained run, an open throttle event).

The writer stores `pid` and `host` from `this_process()`; `is_gone(pid, host)` then says exactly whether
that process can still be writing, where a staleness timeout would guess (a run paused for ten minutes is
still owned; one killed a second ago is not).
"""

from __future__ import annotations

import os
import socket
from functools import cache


@cache
def hostname() -> str:
    return socket.gethostname()


def this_process() -> tuple[int, str]:
    """(pid, host) to store with a row this process owns."""
    return os.getpid(), hostname()


def is_gone(pid: int | None, host: str | None) -> bool:
    """True when the owner cannot still be running: no pid recorded, another host (the database moved or
    the machine was renamed), or no such process here."""
    if pid is None or pid <= 0 or host != hostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False
