"""The telemetry screen, fed by fixture sysfs trees: live values, the throttle indicator naming its cause,
past runs reopened with their events, a sustained run started and finished with one key, and its looks
at 80x24 (snapshot, with frozen values)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from screen_host import ScreenHost
from test_telemetry_throttle import T0, replay
from textual.widgets import DataTable, Static

from edgetui.config import Paths
from edgetui.session import Session
from edgetui.telemetry.sampler import Sampler
from edgetui.telemetry.sensors import Sensors
from edgetui.telemetry.storage import TelemetryStore
from edgetui.telemetry.throttle import ThrottleEvent
from edgetui.telemetry.verdict import compute_verdict
from screens.telemetry import TelemetryScreen

SYSFS = Path(__file__).parent / "fixtures" / "sysfs"
SCREENS_DIR = Path(__file__).resolve().parent.parent / "screens"


class TelemetryHost(ScreenHost):
    def __init__(self, ctx: Session):
        super().__init__(ctx, TelemetryScreen, close_on_unmount=True)


@pytest.fixture
def ctx(tmp_path, bundle, monkeypatch) -> Session:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    home = Paths(tmp_path / "home").ensure()
    yield Session(home, bundle)
    monkeypatch.delenv("TZ")
    time.tzset()


def fixture_sampler(ctx: Session, tree: str, tmp_path: Path) -> Sampler:
    """A manual sampler on a copy of a fixture tree with two readings taken (frozen values)."""
    root = tmp_path / tree
    shutil.copytree(SYSFS / tree, root)
    now = [0.0]
    s = Sampler(Sensors(root, clock=lambda: now[0]), hz=0, db_path=ctx.paths.db, clock=lambda: T0 + now[0])
    for t in (0.0, 1.0):
        now[0] = t
        s.sample_once()
    return s


def past_run(ctx: Session) -> int:
    """A finished 2-minute run at T0 that met a thermal event from 0:40 to 1:05."""
    store = TelemetryStore(ctx.db)
    rid = store.create_run("field-policy@1.0.0", 2.0, None, 30.0, started=T0)
    ev = ThrottleEvent("thermal", "x86_pkg_temp", "x86_pkg_temp 96.0°C ≥ passive trip 95°C", T0 + 40, T0 + 65)
    store.open_event(ev, rid)
    store.close_event(ev)
    iv = [(t / 50, (t + 1) / 50) for t in range(0, 6000)]  # 50 tok/s for 120 s
    v = compute_verdict(iv, 0, 120, [190.0, 210.0, 210.0], 2, 0, 30.0, energy_j=1500.0, throttle_events=1)
    store.finish_run(rid, v, ended=T0 + 120)
    return rid


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def test_laptop_tree_shows_current_values_and_no_throttling(ctx, tmp_path):
    ctx.sampler = fixture_sampler(ctx, "x86-laptop", tmp_path)
    app = TelemetryHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "62.0 coretemp/Package id 0" in text(app, "#hot-value")
        assert "2.25/4.20" in text(app, "#freq-value")
        assert "battery 87%" in text(app, "#info")
        assert text(app, "#throttle") == "● no throttling"
        assert not app.screen.query_one("#throttle").has_class("throttling")
        assert text(app, "#verdict") == "no sustained runs yet"


async def test_empty_tree_shows_na_everywhere(ctx, tmp_path):
    ctx.sampler = fixture_sampler(ctx, "empty", tmp_path)
    app = TelemetryHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for pid in ("hot", "freq", "power"):
            assert text(app, f"#{pid}-value").splitlines()[1] == "n/a"
        assert "RSS n/a" in text(app, "#info") and "GPU n/a" in text(app, "#info")


async def test_throttling_tree_lights_the_indicator_with_its_causes(ctx, tmp_path):
    ctx.sampler = replay(tmp_path, ctx.paths.db, upto=6)
    app = TelemetryHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        indicator = text(app, "#throttle")
        assert indicator.startswith("▲ THROTTLING thermal: x86_pkg_temp 98.0°C ≥ passive trip 95°C")
        assert "cpufreq: 1.50/3.00 GHz (50% of max) at 95% load" in indicator
        assert app.screen.query_one("#throttle").has_class("throttling")


async def test_sampler_keeps_running_while_another_screen_is_shown(ctx, tmp_path):
    sampler = fixture_sampler(ctx, "x86-laptop", tmp_path)
    sampler.hz = 20.0  # a real thread this time
    ctx.sampler = sampler
    app = TelemetryHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert sampler.running
        from textual.screen import Screen

        await app.push_screen(Screen())  # the operator leaves for another screen
        n = len(sampler.history)
        await pilot.pause(0.4)
        assert sampler.running and len(sampler.history) > n
    assert not sampler.running  # Session.close() stopped it


async def test_past_run_reopens_with_its_verdict_and_throttle_events(ctx, tmp_path):
    ctx.sampler = fixture_sampler(ctx, "x86-laptop", tmp_path)
    rid = past_run(ctx)
    app = TelemetryHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        assert table.row_count == 1
        assert [str(c) for c in table.get_row_at(0)] == [
            str(rid), "2023-11-14 22:13", "field-policy@1.0.0", "50.0", "50.0", "30", "PASS"]
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert text(app, "#throttle") == "⚠ 0:40–1:05 thermal: x86_pkg_temp 96.0°C ≥ passive trip 95°C"
        verdict = text(app, "#verdict")
        assert verdict.startswith(f"run {rid} PASS: burst 50.0 · floor 50.0 · bar 30 tok/s · p95 TTFT 210 ms")
        await pilot.press("escape")
        await pilot.pause()
        assert text(app, "#throttle") == "● no throttling"


def test_snapshot_throttling_at_80x24(ctx, tmp_path, snap_compare):
    ctx.sampler = replay(tmp_path, ctx.paths.db, upto=6)
    past_run(ctx)
    assert snap_compare(TelemetryHost(ctx), terminal_size=(80, 24))


@pytest.mark.model
@pytest.mark.slow
async def test_r_runs_a_sustained_run_to_its_verdict_and_the_run_lists_the_throttle_event(ctx, tmp_path, monkeypatch):
    ctx.sampler = replay(tmp_path, ctx.paths.db, upto=6, real_clock=True)  # throttling right now
    monkeypatch.setattr(TelemetryScreen, "run_minutes", None)
    monkeypatch.setattr(TelemetryScreen, "run_requests", 2)
    app = TelemetryHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert text(app, "#run-status") == "r: start a sustained run (2 requests)"
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.query_one("#run-progress").display
        for _ in range(1200):
            await pilot.pause(0.1)
            if app.screen._cancel is None:
                break
        table = app.screen.query_one("#runs", DataTable)
        assert table.row_count == 1
        row = [str(c) for c in table.get_row_at(0)]
        assert row[2] == "field-policy@1.0.0" and row[5] == "30" and row[6] in ("PASS", "FAIL")
        verdict = text(app, "#verdict")
        assert verdict.startswith(f"run {row[0]} {row[6]}: burst ") and "2 throttle events" in verdict
        events = text(app, "#throttle").splitlines()
        assert events[0].startswith("⚠ 0:00–… thermal: x86_pkg_temp 96.0°C ≥ passive trip 95°C")
        assert events[1].startswith("⚠ 0:00–0:00 cpufreq: 1.80/3.00 GHz")  # the fixture's load ends at the start
        assert text(app, "#run-status") == "r: start a sustained run (2 requests)"
