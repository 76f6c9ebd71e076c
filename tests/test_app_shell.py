"""The app shell: opens on the chat screen, shows the bundle, lists keys, quits stopping the engine."""

from __future__ import annotations

import pytest

from edgetui.session import Session
from screens.app import SCREENS, EdgeApp

pytestmark = pytest.mark.model


async def test_app_opens_on_chat_with_bundle_in_header_and_quits_cleanly(bundle_home):
    ctx = Session.open(bundle_home)
    app = EdgeApp(session=ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.current_mode == "chat"
        assert app.sub_title == "field-policy@1.0.0"
        assert type(app.screen).__name__ == "ChatScreen"
        ctx.engine.start()
        pid = ctx.engine.pid
        assert pid is not None
        await pilot.press("ctrl+q")
    assert ctx.closed and ctx.engine_if_created is None  # closed on unmount
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_every_registered_screen_opens_by_its_key(bundle_home):
    app = EdgeApp(session=Session.open(bundle_home))
    async with app.run_test(size=(80, 24)) as pilot:
        for mode, _, key, _ in SCREENS:
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
        await pilot.press("f1")
        assert app.current_mode == "chat"
