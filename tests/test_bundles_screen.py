"""The bundles screen: the installed versions and history, install with the smoke gate (pass and
auto-rollback with the reason shown), verify with progress, activate, one-key rollback with one
confirm, delete; and its looks at 80x24 (synthetic bundles, fixed clock and key)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ota_fixtures import failing_smoke, fixed_keyring, make_bundle_dir, make_ota, tar_of
from textual.app import App
from textual.widgets import DataTable, Input, ProgressBar, Static

from edgetui.config import Paths
from edgetui.ota.store import Store
from edgetui.session import Session
from screens.bundles import BundlesScreen, Confirm, InstallPrompt

REPO = Path(__file__).resolve().parent.parent


class BundlesHost(App):
    """Just the bundles screen on a given context."""

    CSS_PATH = str(REPO / "screens" / "app.tcss")
    TITLE = "edgetui"

    def __init__(self, ctx: Session, ota):
        super().__init__()
        self.session, self.ota = ctx, ota

    def on_mount(self) -> None:
        self.sub_title = self.session.bundle.ref
        self.push_screen(BundlesScreen(ota=self.ota))


@pytest.fixture
def device(tmp_path):
    """demo@1.0.0 kept, demo@1.1.0 active (smoke passed), demo@1.2.0 bad (smoke failed, rolled back)."""
    home = Paths(tmp_path / "home").ensure()
    kr = fixed_keyring(home)
    src = tmp_path / "src"

    def tar(v):
        return tar_of(make_bundle_dir(src, version=v, keyring=kr))

    ota = make_ota(home)
    ota.install(tar("1.0.0"), activate=True)
    ota.install(tar("1.1.0"), activate=True, smoke=True)
    make_ota(home, smoke=failing_smoke).install(tar("1.2.0"), activate=True, smoke=True)
    ctx = Session(home, Store(home.store).active())
    return home, ctx, tar


def host(device, **ota_kw) -> BundlesHost:
    home, ctx, _ = device
    return BundlesHost(ctx, make_ota(home, **ota_kw))


def rows(app) -> dict[str, list]:
    t = app.screen.query_one("#versions", DataTable)
    return {str(t.get_row_at(i)[1]): [str(c) for c in t.get_row_at(i)] for i in range(t.row_count)}


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_table_shows_versions_active_marker_states_and_history(device):
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        r = rows(app)
        assert r["demo@1.1.0"][0] == "●" and r["demo@1.1.0"][2] == "good" and r["demo@1.1.0"][7] == "pass"
        assert r["demo@1.2.0"][2] == "bad" and r["demo@1.2.0"][7] == "fail"
        hist = app.screen.query_one("#history", DataTable)
        assert str(hist.get_row_at(0)[1]) == "auto-rollback ✗"
        await pilot.press("down")  # highlight demo@1.2.0: the reason it was rolled back is shown
        assert "quality 0.000 < bar 0.500" in str(app.screen.query_one("#detail", Static).render())


async def test_r_rolls_back_after_one_confirm_and_the_app_follows(device):
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(pilot)
        assert rows(app)["demo@1.0.0"][0] == "●"
        assert app.session.bundle.ref == "demo@1.0.0" and app.sub_title == "demo@1.0.0"
        await pilot.press("r")  # nothing older is kept: refused before asking
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)


async def test_r_then_n_changes_nothing(device):
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", "n")
        await settle(pilot)
        assert rows(app)["demo@1.1.0"][0] == "●" and app.session.bundle.ref == "demo@1.1.0"


async def test_i_installs_activates_and_runs_the_smoke_gate(device):
    _, _, tar = device
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        assert isinstance(app.screen, InstallPrompt)
        app.screen.query_one(Input).value = str(tar("1.3.0"))
        await pilot.press("enter")
        await settle(pilot)
        assert rows(app)["demo@1.3.0"][0] == "●" and rows(app)["demo@1.3.0"][7] == "pass"
        assert app.session.bundle.ref == "demo@1.3.0"
        assert app.screen.query_one("#progress", ProgressBar).percentage == 1.0


async def test_i_with_a_failing_smoke_gate_rolls_back_and_shows_why(device):
    _, _, tar = device
    app = host(device, smoke=failing_smoke)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        app.screen.query_one(Input).value = str(tar("1.3.0"))
        await pilot.press("enter")
        await settle(pilot)
        r = rows(app)
        assert r["demo@1.1.0"][0] == "●" and r["demo@1.3.0"][2] == "bad"
        assert app.session.bundle.ref == "demo@1.1.0"
        detail = str(app.screen.query_one("#detail", Static).render())
        assert "demo@1.3.0: bad" in detail and "quality 0.000 < bar 0.500" in detail
        assert "rolled back to demo@1.1.0" in str(app.screen.query_one("#status", Static).render())


async def test_i_refuses_an_unsigned_bundle_unless_allowed(device, tmp_path):
    app = host(device)
    unsigned = tar_of(make_bundle_dir(tmp_path / "u", version="1.3.0"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        app.screen.query_one(Input).value = str(unsigned)
        await pilot.press("enter")
        await settle(pilot)
        assert "unsigned bundle" in str(app.screen.query_one("#status", Static).render())
        assert "demo@1.3.0" not in rows(app)
        await pilot.press("i")
        app.screen.query_one(Input).value = str(unsigned)
        await pilot.click("#unsigned")
        await pilot.press("enter")
        await settle(pilot)
        assert rows(app)["demo@1.3.0"][3] == "unsigned" and rows(app)["demo@1.3.0"][0] == "●"


async def test_v_verifies_with_progress_and_flags_a_damaged_file(device):
    home, _, _ = device
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("v")
        await settle(pilot)
        assert rows(app)["demo@1.1.0"][4] == "ok"
        assert app.screen.query_one("#progress", ProgressBar).percentage == 1.0
        p = Store(home.store).version_dir("demo", "1.1.0") / "data" / "big.bin"
        p.write_bytes(p.read_bytes()[:-1] + b"\0")
        await pilot.press("v")
        await settle(pilot)
        assert rows(app)["demo@1.1.0"][4] == "FAIL"
        assert "data/big.bin: size" in str(app.screen.query_one("#status", Static).render()) or \
               "data/big.bin: sha256" in str(app.screen.query_one("#status", Static).render())


async def test_a_activates_the_highlighted_version(device):
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("up", "a")  # demo@1.0.0 is older than the committed 1.1.0: refused
        await settle(pilot)
        assert "anti-rollback" in str(app.screen.query_one("#status", Static).render())
        assert app.session.bundle.ref == "demo@1.1.0"


async def test_d_refuses_the_active_version_and_deletes_another_after_confirm(device):
    app = host(device)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)
        await pilot.press("down", "d")
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(pilot)
        assert "demo@1.2.0" not in rows(app)


def test_snapshot_bundles_screen(device, snap_compare):
    assert snap_compare(host(device), terminal_size=(80, 24))


def test_snapshot_rollback_confirm(device, snap_compare):
    assert snap_compare(host(device), terminal_size=(80, 24), press=["r"])


def test_snapshot_install_prompt(device, snap_compare):
    assert snap_compare(host(device), terminal_size=(80, 24), press=["i"])
