"""The eval screen: opens on the latest stored run, runs a golden set with live rows and a progress bar,
cancels and resumes, shows per-slice results with baseline deltas, opens a failed case with its reason,
reopens past runs; and its looks at 80x24 (snapshots of stored runs with frozen timings)."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from evals_fixtures import GOLDEN, OracleAsk, golden, target
from screen_host import ScreenHost
from textual.widgets import DataTable, ProgressBar, Static, TabbedContent

from edgetui.config import Paths
from edgetui.evals.runner import run_eval
from edgetui.evals.runs import RunStore, Target
from edgetui.session import Session
from screens.evals import CaseView, EvalScreen

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


class EvalHost(ScreenHost):
    def __init__(self, ctx: Session):
        super().__init__(ctx, EvalScreen)

    def on_unmount(self) -> None:
        self.session.close()


@pytest.fixture
def ctx(tmp_path, bundle, bundle_home, monkeypatch) -> Session:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    home = Paths(tmp_path / "home").ensure()
    home.store.rmdir()
    home.store.symlink_to(bundle_home.store, target_is_directory=True)  # sees the built bundle, writes nothing
    yield Session(home, bundle)
    monkeypatch.delenv("TZ")
    time.tzset()


def frozen(db, tgt: Target, ask, smoke: bool, start: float, **kw):
    """A run with fixed wall-clock stamps and a fake monotonic clock (0.25 s per tick)."""
    ticks = itertools.count()
    return run_eval(db, golden(), tgt, ask, smoke=smoke, now=lambda: start, clock=lambda: next(ticks) * 0.25, **kw)


@pytest.fixture
def stored(ctx):
    """A passing baseline field-policy@0.9.0 (full set), then the active bundle regressing on two cases."""
    g = golden()
    base = frozen(ctx.db, target("0.9.0"), OracleAsk(g), False, T0)
    cand = frozen(ctx.db, Target.of(ctx.bundle), OracleAsk(g, wrong={"can-010", "abs-007"}), True, T0 + 3600,
                  default_ref="field-policy@0.9.0")
    return base, cand


async def wait_idle(app, pilot, timeout: float = 30.0) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        await pilot.pause(0.05)
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            return
    raise AssertionError("eval worker did not finish")


def screen_of(app) -> EvalScreen:
    return next(s for s in app.screen_stack if isinstance(s, EvalScreen))


async def test_opens_on_the_latest_run_with_per_slice_deltas_and_gate(ctx, stored):
    _, cand = stored
    app = EvalHost(ctx)
    async with app.opened() as pilot:
        scr = screen_of(app)
        cases = scr.query_one("#case-table", DataTable)
        assert cases.row_count == 12
        assert cases.get_row("can-010")[:3] == ["can-010", "canonical", "FAIL"]
        await pilot.press("s")
        assert scr.query_one(TabbedContent).active == "summary"
        slices = scr.query_one("#slice-table", DataTable)
        rows = [slices.get_row_at(i) for i in range(slices.row_count)]
        assert rows[0] == ["canonical", "2", "1", "0.500", "1.000", "-0.500"]
        assert rows[-1][0] == "overall" and rows[-1][3] == "0.833"
        verdict = str(scr.query_one("#verdict", Static).render())
        assert "✗ overall quality 0.833 vs baseline 1.000" in verdict and "regressed: abs-007, can-010" in verdict
        assert "gate FAIL" in str(scr.query_one("#headline", Static).render())


async def test_a_failed_case_opens_with_its_question_answer_and_reason(ctx, stored):
    app = EvalHost(ctx)
    async with app.opened() as pilot:
        scr = screen_of(app)
        table = scr.query_one("#case-table", DataTable)
        table.move_cursor(row=table.get_row_index("can-010"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CaseView)
        text = str(app.screen.query_one("#case-text", Static).render())
        assert "How quickly must a Priority 1 SCADA alarm be acknowledged?" in text
        assert "I am not sure." in text and "POL-11#1" in text
        assert "facts: missing '2 minutes'" in text and "citations: recall 0.00" in text
        await pilot.press("escape")
        assert isinstance(app.screen, EvalScreen)


async def test_past_runs_list_and_reopen(ctx, stored):
    base, _ = stored
    app = EvalHost(ctx)
    async with app.opened() as pilot:
        scr = screen_of(app)
        await pilot.press("p")
        runs = scr.query_one("#run-table", DataTable)
        assert runs.row_count == 2
        assert runs.get_row(str(base.run.id))[1:6] == ["01-01 00:00", "field-policy@0.9.0", "field-policy/v1", "full",
                                                      "1.000"]
        runs.move_cursor(row=runs.get_row_index(str(base.run.id)))
        await pilot.press("enter")
        await pilot.pause()
        assert scr.query_one(TabbedContent).active == "summary"
        assert scr.query_one("#case-table", DataTable).row_count == 63


async def test_run_shows_live_rows_progress_and_summary_then_failed_only_filter(ctx, monkeypatch):
    g = golden()
    oracle = OracleAsk(g, wrong={"mes-002"})
    monkeypatch.setattr(EvalScreen, "ask_for", lambda self, bundle: (oracle, lambda: None))
    app = EvalHost(ctx)
    async with app.opened() as pilot:
        scr = screen_of(app)
        assert scr.query_one("#case-table", DataTable).row_count == 0  # nothing stored yet
        await pilot.press("r")
        await wait_idle(app, pilot)
        assert len(oracle.calls) == 12
        assert scr.query_one("#case-table", DataTable).row_count == 12
        bar = scr.query_one("#progress", ProgressBar)
        assert bar.progress == bar.total == 12
        [run] = RunStore(ctx.db).runs()
        assert run.status == "complete" and run.bundle_ref == ctx.bundle.ref and run.n_passed == 11
        assert "11/12 passed" in str(scr.query_one("#progress-label", Static).render())
        await pilot.press("f")
        assert scr.query_one("#case-table", DataTable).row_count == 1


async def test_cancel_keeps_finished_cases_and_r_resumes(ctx, monkeypatch):
    g = golden()
    screen_cancel = {}

    def ask_for(self, bundle):
        screen_cancel["s"] = self
        return slow_then_cancel, lambda: None

    def slow_then_cancel(q, cancel=None):
        if len(oracle.calls) == 4:
            screen_cancel["s"].action_cancel()
        return oracle(q, cancel)

    oracle = OracleAsk(g)
    monkeypatch.setattr(EvalScreen, "ask_for", ask_for)
    app = EvalHost(ctx)
    async with app.opened() as pilot:
        scr = screen_of(app)
        await pilot.press("r")
        await wait_idle(app, pilot)
        [run] = RunStore(ctx.db).runs()
        assert run.status == "interrupted" and run.n_done == 4
        assert "r resumes" in str(scr.query_one("#progress-label", Static).render())
        await pilot.press("r")
        await wait_idle(app, pilot)
        [run] = RunStore(ctx.db).runs()
        assert run.status == "complete" and len(oracle.calls) == 13  # only the cancelled case is asked twice
        assert scr.query_one("#case-table", DataTable).row_count == 12


def test_snapshot_cases_tab_at_80x24(ctx, stored, snap_compare):
    assert snap_compare(EvalHost(ctx), terminal_size=(80, 24))


def test_snapshot_summary_tab_at_80x24(ctx, stored, snap_compare):
    assert snap_compare(EvalHost(ctx), terminal_size=(80, 24), press=["s"])


def test_snapshot_failed_case_view_at_80x24(ctx, stored, snap_compare):
    async def open_case(pilot):
        table = screen_of(pilot.app).query_one("#case-table", DataTable)
        table.move_cursor(row=table.get_row_index("can-010"))
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(EvalHost(ctx), terminal_size=(80, 24), run_before=open_case)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_real_assistant_run_from_the_r_key_then_a_case_opens(ctx, tmp_path, monkeypatch):
    from edgetui.evals import golden as golden_mod

    d = tmp_path / "golden" / "field-policy"
    d.mkdir(parents=True)
    keep = ("can-001", "abs-003", "con-001")
    lines = [line for line in GOLDEN.read_text().splitlines() if json.loads(line)["id"] in keep]
    (d / "v1.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(golden_mod, "GOLDEN_ROOT", tmp_path / "golden")
    app = EvalHost(ctx)
    async with app.opened() as pilot:
        scr = screen_of(app)
        await pilot.press("r")
        await wait_idle(app, pilot, timeout=400)
        [run] = RunStore(ctx.db).runs()
        assert run.status == "complete" and run.n_done == 3 and run.p95_ttft_ms > 0
        table = scr.query_one("#case-table", DataTable)
        assert [table.get_row_at(i)[0] for i in range(3)] == list(keep)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CaseView)
        assert "What seal kit do I use on P-201?" in str(app.screen.query_one("#case-text", Static).render())
