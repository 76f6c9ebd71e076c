"""A Textual app showing one screen of edgetui on a given session (the shell's other screens stay out of
the picture, so a screen's Pilot and snapshot tests see only that screen)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

from edgetui.session import Session

SCREENS_DIR = Path(__file__).resolve().parent.parent / "screens"


class ScreenHost(App):
    CSS_PATH = str(SCREENS_DIR / "app.tcss")
    TITLE = "edgetui"

    def __init__(self, session: Session, screen: Callable[[], Screen], show_bundle: bool = False,
                 close_on_unmount: bool = False):
        super().__init__()
        self.session = session
        self._screen, self._show_bundle, self._close = screen, show_bundle, close_on_unmount

    @contextlib.asynccontextmanager
    async def opened(self, size: tuple[int, int] = (80, 24)) -> AsyncIterator[Pilot]:
        """Run headless at `size` until the screen has mounted; yields the pilot."""
        async with self.run_test(size=size) as pilot:
            await pilot.pause()
            yield pilot

    def on_mount(self) -> None:
        if self._show_bundle:
            self.sub_title = self.session.bundle.ref
        self.push_screen(self._screen())

    def on_unmount(self) -> None:
        if self._close:
            self.session.close()
