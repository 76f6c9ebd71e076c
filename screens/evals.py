"""Eval screen (F3): pick a golden set and bundle(s), run with a progress bar and live rows, read the
per-slice summary with the baseline comparison, open any case to see why it failed, reopen past runs.

Everything shown comes from `edgetui.evals` (runner, stored runs, reports); the run itself is a thread
worker that hands each bundle to the core runner (`evaluate_bundle`, as `edgetui eval` does; the active
bundle through the app session's Assistant) and posts one message per scored case, and `esc` cancels it
between two tokens. A cancelled
run keeps its finished cases: pressing `r` again with the same choices resumes it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import NamedTuple

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    ProgressBar,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)

from edgetui.evals import golden as golden_mod
from edgetui.evals import report
from edgetui.evals.gate import default_baseline_ref
from edgetui.evals.golden import GoldenError, load_golden
from edgetui.evals.runner import EvalOutcome, evaluate_bundle, load_outcome, run_eval
from edgetui.evals.runs import CaseResult, RunRow, RunStore, Target


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def _facts(facts: list) -> str:
    return "; ".join(" | ".join(f) for f in facts) or "—"


class CaseView(ModalScreen):
    """One case as run: the question, what was expected, the answer, and why it failed."""

    BINDINGS = [Binding("escape", "dismiss", "Back"), Binding("q", "dismiss", "Back", show=False)]

    def __init__(self, result: CaseResult) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        r, d = self.result, self.result.data
        exp = d.get("expect", {})
        stats = d.get("stats", {})
        yes = {True: "yes", False: "no"}
        conf = "" if exp.get("confidential") is None else f" · confidential: {yes[bool(exp['confidential'])]}"
        retrieved = ", ".join(f"{i} ({s:.2f})" if isinstance(s, int | float) else str(i)
                              for i, s in d.get("retrieved", []))
        rows = [
            ("Question", d.get("question", "")),
            ("Expected", f"facts: {_facts(exp.get('facts', []))}"),
            ("", f"citations: {', '.join(exp.get('citations', [])) or '—'} · abstain: "
                 f"{yes[bool(exp.get('abstain'))]}{conf}"),
            ("Answer", d.get("answer", "") or "—"),
            ("Cited", f"{', '.join(d.get('citations', [])) or '—'} · abstained: {yes[bool(d.get('abstained'))]}"
                      f" · confidential: {yes[bool(d.get('confidential'))]}"),
            ("Retrieved", retrieved or "—"),
        ]
        lines = [f"[b]{escape(r.case_id)}[/b] · {escape(r.slice)} · [b]{'PASS' if r.passed else 'FAIL'}[/b]"]
        lines += [f"[b]{label:<10}[/b]{escape(text)}" for label, text in rows]
        if r.reasons:
            lines.append("[b]Why it failed[/b]")
            lines += [f"  • {escape(reason)}" for reason in r.reasons]
        timing = (f"TTFT {_ms(r.ttft_ms)} ms · {r.decode_tokens or 0} tokens at {(r.decode_tps or 0):.1f} tok/s"
                  f" · total {r.total_ms / 1000:.1f} s")
        if r.precision is not None:
            timing += f" · citation precision {r.precision:.2f}, recall {r.recall:.2f}"
        if d.get("gate"):
            timing += f" · gate {d['gate']}"
        if stats.get("prompt_tokens"):
            timing += f" · prompt {stats['prompt_tokens']} tok"
        lines.append(escape(timing))
        with VerticalScroll(id="case-box"):
            yield Static("\n".join(lines), id="case-text")
            yield Static("esc back", id="case-hint")


class Tab(NamedTuple):
    """One tab of the eval screen: its title, its key, and the table that takes the focus."""

    title: str
    key: str
    table: str


TABS = {"cases": Tab("Cases", "c", "#case-table"), "summary": Tab("Summary", "s", "#slice-table"),
        "runs": Tab("Past runs", "p", "#run-table")}


class EvalScreen(Screen):
    CSS_PATH = "evals.tcss"
    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "open", "Open", show=False),
        Binding("f", "failed_only", "Failed only"),
        *[Binding(t.key, f"tab('{tab}')", t.title) for tab, t in TABS.items()],
    ]

    class CaseDone(Message):
        def __init__(self, run: RunRow, result: CaseResult, done: int, total: int) -> None:
            super().__init__()
            self.run, self.result, self.done, self.total = run, result, done, total

    class RunDone(Message):
        def __init__(self, outcome: EvalOutcome | None, error: str | None = None) -> None:
            super().__init__()
            self.outcome, self.error = outcome, error

    class AllDone(Message):
        def __init__(self, outcomes: list[EvalOutcome]) -> None:
            super().__init__()
            self.outcomes = outcomes

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="cases"):
            with TabPane(TABS["cases"].title, id="cases"):
                with Horizontal(id="controls"):
                    yield Select([], id="golden", allow_blank=True, prompt="golden set")
                    yield Select([("smoke", "smoke"), ("full", "full")], id="subset", value="smoke",
                                 allow_blank=False)
                    yield SelectionList(id="bundles")
                with Horizontal(id="progress-row"):
                    yield Static("", id="progress-label")
                    yield ProgressBar(total=1, show_eta=False, id="progress")
                yield DataTable(id="case-table", cursor_type="row", zebra_stripes=True)
            with TabPane(TABS["summary"].title, id="summary"):
                yield Static("", id="headline")
                yield DataTable(id="slice-table", cursor_type="none", zebra_stripes=True)
                with VerticalScroll(id="verdict-box"):
                    yield Static("", id="verdict")
            with TabPane(TABS["runs"].title, id="runs"):
                yield DataTable(id="run-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    # -- setup -------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._cancel: threading.Event | None = None
        self._shown: EvalOutcome | None = None
        self._results: list[CaseResult] = []
        self._failed_only = False
        self._live_run: int | None = None
        session = self.app.session
        self.store = RunStore(session.db)
        sets = []
        for path in golden_mod.available_golden_sets():
            try:
                g = load_golden(path)
            except GoldenError:
                continue
            sets.append((f"{g.label} ({len(g.cases)})", str(path)))
        golden_sel = self.query_one("#golden", Select)
        golden_sel.set_options(sets)
        try:  # the bundle's newest versioned set (v<N>), not its dev set, which sorts first
            newest = str(golden_mod.default_golden_path(session.bundle.name))
        except GoldenError:
            newest = None
        default = next((v for _, v in sets if v == newest), None) or next(
            (v for label, v in sets if label.startswith(f"{session.bundle.name}/")), None)
        if default:
            golden_sel.value = default
        bundles = self.query_one("#bundles", SelectionList)
        active = session.bundle.ref
        refs = sorted({b.ref for b in session.store.installed()} | {active})
        bundles.add_options([(ref, ref, ref == active) for ref in refs])
        self.query_one("#case-table", DataTable).add_columns("case", "slice", "result", "TTFT ms", "why")
        self.query_one("#slice-table", DataTable).add_columns("slice", "cases", "pass", "quality", "baseline",
                                                               "delta")
        self.query_one("#run-table", DataTable).add_columns("run", "started", "bundle", "golden", "subset",
                                                             "quality", "p95 ms", "gate")
        self._set_progress(0, 0, "r: run the selected golden set on the selected bundles")
        self.refresh_runs()
        latest = next((r for r in self.store.runs(limit=1)), None)
        if latest is not None:
            self.show_outcome(load_outcome(self.store, latest.id))
        self.query_one("#case-table", DataTable).focus()

    # -- actions -----------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(TABS[tab].table).focus()

    def action_run(self) -> None:
        if self._cancel is not None:
            self.notify("an eval is already running: esc cancels it", severity="warning")
            return
        golden_path = self.query_one("#golden", Select).value
        refs = list(self.query_one("#bundles", SelectionList).selected)
        if golden_path is Select.BLANK or not golden_path:
            self.notify("pick a golden set first", severity="warning")
            return
        if not refs:
            self.notify("pick at least one bundle", severity="warning")
            return
        smoke = self.query_one("#subset", Select).value == "smoke"
        self._cancel = threading.Event()
        self._results = []
        self._live_run = None
        self.query_one("#case-table", DataTable).clear()
        self._set_progress(0, 1, f"starting {', '.join(refs)}…")
        self.action_tab("cases")
        self.run_evals(str(golden_path), refs, smoke, self._cancel)

    def action_cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self._set_progress(None, None, "cancelling after the current token…")

    def action_failed_only(self) -> None:
        self._failed_only = not self._failed_only
        self._fill_cases(self._results)

    def action_open(self) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == "runs":
            self._open_selected_run()
        elif tabs.active == "cases":
            self._open_selected_case()

    @on(DataTable.RowSelected, "#case-table")
    def _case_selected(self, event: DataTable.RowSelected) -> None:
        self._open_selected_case()

    @on(DataTable.RowSelected, "#run-table")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        self._open_selected_run()

    def _open_selected_case(self) -> None:
        table = self.query_one("#case-table", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        result = next((r for r in self._results if r.case_id == key), None)
        if result is not None:
            self.app.push_screen(CaseView(result))

    def _open_selected_run(self) -> None:
        table = self.query_one("#run-table", DataTable)
        if table.row_count == 0:
            return
        run_id = int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        out = load_outcome(self.store, run_id)
        if out is not None:
            self.show_outcome(out)
            self.action_tab("summary")

    # -- the run (thread worker) ---------------------------------------------------------------
    def ask_for(self, bundle):
        """(ask, start) for the active bundle: the session's one Assistant and engine child (its lock keeps a
        chat question and an eval case from interleaving on the engine)."""
        session = self.app.session
        return session.ask, session.engine.start

    def evaluate(self, bundle, golden_path: Path, smoke: bool, cancel: threading.Event, on_result) -> EvalOutcome:
        """One bundle through the core runner: another version with its own engine child (`evaluate_bundle`,
        the call `edgetui eval` makes), the active one on the session's engine and Assistant."""
        session = self.app.session
        if bundle.ref != session.bundle.ref:
            return evaluate_bundle(bundle, session.paths, golden_path=golden_path, smoke=smoke, on_result=on_result,
                                   cancel=cancel)
        ask, start = self.ask_for(bundle)
        with session.connect() as db:  # this worker's own connection, closed with the block
            return run_eval(db, load_golden(golden_path), Target.of(bundle), ask, smoke=smoke, start=start,
                            default_ref=default_baseline_ref(session.paths, bundle.ref), on_result=on_result,
                            cancel=cancel)

    @work(thread=True, exclusive=True, group="eval")
    def run_evals(self, golden_path: str, refs: list[str], smoke: bool, cancel: threading.Event) -> None:
        session = self.app.session
        outcomes: list[EvalOutcome] = []

        def on_result(run: RunRow, result: CaseResult, done: int, total: int) -> None:
            self.post_message(self.CaseDone(run, result, done, total))

        try:
            load_golden(golden_path)  # a bad file is one error line before any bundle starts
            for ref in refs:
                if cancel.is_set():
                    break
                bundle = session.bundle if ref == session.bundle.ref else session.store.get(*ref.split("@", 1))
                out = self.evaluate(bundle, Path(golden_path), smoke, cancel, on_result)
                outcomes.append(out)
                self.post_message(self.RunDone(out))
        except Exception as e:  # shown to the user; the stored cases stay for a resume
            self.post_message(self.RunDone(None, f"{type(e).__name__}: {e}"))
        finally:
            self.post_message(self.AllDone(outcomes))

    def on_eval_screen_case_done(self, msg: CaseDone) -> None:
        if msg.run.id != self._live_run:  # a new run (or a resumed one: show what it already had)
            self._live_run = msg.run.id
            self._results = self.store.results(msg.run.id)
            self._fill_cases(self._results)
        elif all(r.case_id != msg.result.case_id for r in self._results):  # not already loaded above
            self._results.append(msg.result)
            if not (self._failed_only and msg.result.passed):
                self._add_case_row(msg.result)
            self.query_one("#case-table", DataTable).move_cursor(row=self.query_one("#case-table").row_count - 1)
        passed = sum(r.passed for r in self._results)
        self._set_progress(msg.done, msg.total, f"{msg.run.bundle_ref} {msg.done}/{msg.total} · {passed} passed")

    def on_eval_screen_run_done(self, msg: RunDone) -> None:
        if msg.error:
            self.notify(msg.error, severity="error", timeout=10)
            return
        out = msg.outcome
        self.show_outcome(out)
        self.refresh_runs()
        if out.gate is None:
            self._set_progress(out.run.n_done, out.run.n_cases,
                               f"cancelled at {out.run.n_done}/{out.run.n_cases}: r resumes")

    def on_eval_screen_all_done(self, msg: AllDone) -> None:
        self._cancel = None
        if len(msg.outcomes) > 1:
            self.query_one("#verdict", Static).update(report.matrix(msg.outcomes))
            self.action_tab("summary")

    # -- showing results ---------------------------------------------------------------------------
    def show_outcome(self, out: EvalOutcome) -> None:
        self._shown = out
        self._results = list(out.results)
        self._fill_cases(self._results)
        run = out.run
        gate = "running" if out.gate is None and run.status == "running" else (
            "incomplete" if out.gate is None else ("PASS" if out.gate.passed else "FAIL"))
        self._set_progress(run.n_done, run.n_cases,
                           f"run {run.id} {run.bundle_ref} · {run.n_passed}/{run.n_done} passed · gate {gate}")
        self.query_one("#headline", Static).update(
            f"run {run.id} · {run.bundle_ref} · {run.golden_label} {run.subset} · gate {gate}")
        table = self.query_one("#slice-table", DataTable)
        table.clear()
        for row in report.slice_rows(out):
            table.add_row(*row)
        verdict = report.latency_lines(run)
        if out.gate is not None:
            g = out.gate
            if g.baseline:
                verdict.append(f"baseline: run {g.baseline['run_id']} {g.baseline['bundle']} ({g.baseline['subset']})")
            verdict += [f"✗ {r}" for r in g.reasons] + [f"· {n}" for n in g.notes]
            if g.deltas.get("regressed"):
                verdict.append("regressed: " + ", ".join(g.deltas["regressed"]))
        self.query_one("#verdict", Static).update("\n".join(verdict))

    def _fill_cases(self, results: list[CaseResult]) -> None:
        table = self.query_one("#case-table", DataTable)
        table.clear()
        for r in results:
            if not (self._failed_only and r.passed):
                self._add_case_row(r)

    def _add_case_row(self, r: CaseResult) -> None:
        why = "; ".join(r.failed) if not r.passed else ""
        self.query_one("#case-table", DataTable).add_row(
            r.case_id, r.slice, "pass" if r.passed else "FAIL", _ms(r.ttft_ms), why, key=r.case_id)

    def _set_progress(self, done: int | None, total: int | None, label: str) -> None:
        if total is not None:
            self.query_one("#progress", ProgressBar).update(total=max(total, 1), progress=done or 0)
        self.query_one("#progress-label", Static).update(label)

    def refresh_runs(self) -> None:
        table = self.query_one("#run-table", DataTable)
        table.clear()
        for r in self.store.runs(limit=100):
            gate = {None: r.status, True: "pass", False: "FAIL"}[r.passed]
            table.add_row(str(r.id), time.strftime("%m-%d %H:%M", time.localtime(r.started)), r.bundle_ref,
                          r.golden_label, r.subset, "—" if r.quality is None else f"{r.quality:.3f}",
                          _ms(r.p95_ttft_ms), gate, key=str(r.id))
