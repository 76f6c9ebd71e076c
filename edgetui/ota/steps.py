"""Named points in an install, activation or rollback where a test may crash or fail the process.

Production code calls `step("...")` after each durable write and around every rename; by default it
does nothing. The kill test installs a hook that SIGKILLs the process at the Nth step, the
failing-write test one that raises there, and both then check the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_hook: Callable[[str], None] | None = None


def step(name: str) -> None:
    if _hook is not None:
        _hook(name)


@contextmanager
def hooked(fn: Callable[[str], None]) -> Iterator[None]:
    global _hook
    saved, _hook = _hook, fn
    try:
        yield
    finally:
        _hook = saved
