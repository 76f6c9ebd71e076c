"""Telemetry screen: live plots (tokens/s, hottest temperature, CPU frequency, power) with current values,
a throttle indicator naming the cause, a sustained run started and stopped with one key, its verdict, and
the past runs to reopen.

The sampler lives in the app's session (`session.sampler`), so it keeps sampling while another screen is shown;
the screen only subscribes to it. Runs go through `edgetui.telemetry.run` in a thread worker.
"""

from __future__ import annotations

import threading
import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Sparkline, Static

from edgetui.engine.base import EngineError
from edgetui.telemetry.run import DEFAULT_MINUTES, Progress, RunResult, SustainedRun, WorkloadError
from edgetui.telemetry.sample import Sample, ghz, na
from edgetui.telemetry.storage import TelemetryRun, TelemetryStore
from edgetui.telemetry.throttle import ThrottleEvent

# (widget id, title, value of a sample for the plot)
PLOTS = [
    ("tps", "tokens/s", lambda s: s.tps),
    ("hot", "hottest °C", lambda s: s.hottest_c),
    ("freq", "CPU GHz", lambda s: s.freq_mhz / 1000 if s.freq_mhz is not None else None),
    ("power", "power W", lambda s: s.power_w),
]


def mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def verdict_line(run: TelemetryRun) -> str:
    v = run.verdict
    if v is None:
        return f"run {run.id}: {run.status}"
    return (f"run {run.id} {v.label}: burst {na(v.burst_tps)} · floor {na(v.floor_tps)} · "
            f"bar {na(v.bar_floor_tps, 'g')} tok/s · p95 TTFT {na(v.p95_ttft_ms, '.0f', ' ms')} · "
            f"{v.throttle_events} throttle event{'s' if v.throttle_events != 1 else ''}")


def event_line(ev: ThrottleEvent, t0: float) -> str:
    end = mmss(ev.end - t0) if ev.end is not None else "…"
    return f"⚠ {mmss(max(0.0, ev.start - t0))}–{end} {ev.label}"


class TelemetryScreen(Screen):
    CSS_PATH = "telemetry.tcss"
    BINDINGS = [
        Binding("r", "toggle_run", "Run/stop"),
        Binding("enter", "open_run", "Open run", show=False),
        Binding("x", "export", "Export"),
        Binding("escape", "live", "Live"),
    ]
    run_minutes: float | None = DEFAULT_MINUTES
    run_requests: int | None = None

    class Sampled(Message):
        def __init__(self, sample: Sample) -> None:
            super().__init__()
            self.sample = sample

    class RunProgress(Message):
        def __init__(self, progress: Progress) -> None:
            super().__init__()
            self.progress = progress

    class RunEnded(Message):
        def __init__(self, result: RunResult | None, error: str | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="plots"):
            for pid, title, _ in PLOTS:
                with Horizontal(classes="plot"):
                    yield Static(title, id=f"{pid}-value", classes="value")
                    yield Sparkline([], id=f"{pid}-spark", summary_function=_mean)
        yield Static("", id="info")
        yield Static("", id="throttle")
        with Horizontal(id="runbar"):
            yield Static("", id="run-status")
            yield ProgressBar(total=1.0, show_eta=False, id="run-progress")
        yield Static("", id="verdict")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self._viewing: int | None = None  # run id shown instead of live data
        self._cancel: threading.Event | None = None
        self._run_t0 = 0.0
        session = self.app.session
        self.sampler = session.sampler  # the app's one sampler, stopped when the session closes
        self.sampler.attach(session.engine)
        self._unsubscribe = self.sampler.subscribe(lambda s: self.post_message(self.Sampled(s)))
        self.sampler.start()
        self.store = TelemetryStore(session.db)
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "started", "bundle", "burst", "floor", "bar", "verdict")
        self._idle_status()
        self.refresh_runs()
        self.show_live()

    def on_unmount(self) -> None:
        self._unsubscribe()
        if self._cancel is not None:  # the app is closing mid-run: end it between requests, kept as incomplete
            self._cancel.set()

    # -- live view ---------------------------------------------------------------------------
    def on_telemetry_screen_sampled(self, msg: Sampled) -> None:
        engine = self.app.session.engine_if_created  # follow a bundle switch (a new engine), without starting one
        if engine is not None:
            self.sampler.attach(engine)
        if self._viewing is None:
            self.show_live()

    def show_live(self) -> None:
        history = list(self.sampler.history)
        latest = self.sampler.latest
        self._plot(history, latest)
        self.query_one("#throttle", Static).set_class(bool(latest and latest.throttle), "throttling")
        if latest is None:
            self.query_one("#throttle", Static).update("waiting for the first sample…")
        elif latest.throttle:
            self.query_one("#throttle", Static).update("▲ THROTTLING " + "; ".join(latest.throttle))
        else:
            self.query_one("#throttle", Static).update("● no throttling")

    def _plot(self, samples: list[Sample], latest: Sample | None) -> None:
        for pid, title, value in PLOTS:
            data = [v for s in samples if (v := value(s)) is not None]
            self.query_one(f"#{pid}-spark", Sparkline).data = data
            self.query_one(f"#{pid}-value", Static).update(f"{title}\n{self._current(pid, latest)}")
        s = latest
        if s is None:
            self.query_one("#info", Static).update("")
            return
        gpu = " · ".join(f"GPU{g['index']} {na(g['temp_c'], '.0f', '°C')} {na(g['power_w'], '.0f', ' W')}"
                         for g in s.gpus) or "GPU n/a"
        self.query_one("#info", Static).update(
            f"TTFT {na(s.ttft_ms, '.0f', ' ms')} · CPU {na(s.cpu_util, '.0f', '%')} · "
            f"RSS {na(s.engine_rss_mb, '.0f', ' MB')} · avail {na(s.mem_avail_mb, '.0f', ' MB')} · "
            f"battery {na(s.battery_pct, '.0f', '%')} · {gpu}")

    @staticmethod
    def _current(pid: str, s: Sample | None) -> str:
        if s is None:
            return "n/a"
        if pid == "tps":
            return na(s.tps)
        if pid == "hot":
            return f"{na(s.hottest_c)} {s.hottest_zone or ''}".rstrip()
        if pid == "freq":
            return f"{ghz(s.freq_mhz)}/{ghz(s.freq_max_mhz)}" if s.freq_mhz is not None else "n/a"
        return f"{na(s.power_w)} ({na(s.energy_j, '.0f')} J)" if s.energy_j is not None else na(s.power_w)

    # -- past runs ---------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        self.store.close_abandoned()
        for r in self.store.runs(50):
            v = r.verdict
            table.add_row(
                str(r.id), time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)), r.bundle or "",
                na(v.burst_tps) if v else "", na(v.floor_tps) if v else "", na(r.bar_floor_tps, "g"),
                v.label if v else r.status, key=str(r.id))
        runs = self.store.runs(1)
        self.query_one("#verdict", Static).update(verdict_line(runs[0]) if runs else "no sustained runs yet")

    def action_open_run(self) -> None:
        table = self.query_one("#runs", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.open_run(int(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_run(int(event.row_key.value))

    def open_run(self, run_id: int) -> None:
        """Show a past run: its samples in the plots, its verdict and its throttle events."""
        run = self.store.run(run_id)
        if run is None:
            return
        self._viewing = run_id
        samples = self.store.samples(run_id)
        self._plot(samples, samples[-1] if samples else None)
        events = self.store.events_between(run.started, run.ended or time.time())
        lines = [event_line(e, run.started) for e in events[:2]]
        if len(events) > 2:
            lines[-1] += f" (+{len(events) - 2} more)"
        throttle = self.query_one("#throttle", Static)
        throttle.set_class(bool(events), "throttling")
        throttle.update("\n".join(lines) or "● no throttle events in this run")
        self.query_one("#verdict", Static).update(
            verdict_line(run) + (f" — {run.reason}" if run.reason else "") + " · esc: live")

    def action_live(self) -> None:
        self._viewing = None
        self.refresh_runs()
        self.show_live()

    def action_export(self) -> None:
        from edgetui.telemetry.export import export_run

        runs = self.store.runs(1)
        run_id = self._viewing or (runs[0].id if runs else None)
        if run_id is None:
            self.notify("no sustained run to export", severity="warning")
            return
        paths = export_run(self.store, run_id, self.app.session.paths.exports)
        self.notify(f"run {run_id} exported to {paths['json']} (+ CSV, .prom)", timeout=6)

    # -- sustained run -----------------------------------------------------------------------
    def _idle_status(self) -> None:
        budget = f"{self.run_minutes:g} min" if self.run_minutes else f"{self.run_requests} requests"
        self.query_one("#run-status", Static).update(f"r: start a sustained run ({budget})")
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(progress=0)
        bar.display = False

    def action_toggle_run(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.query_one("#run-status", Static).update("stopping after this request…")
            return
        self._cancel = threading.Event()
        self._run_t0 = time.monotonic()
        self.query_one("#run-status", Static).update("sustained run starting…")
        self.query_one("#run-progress", ProgressBar).display = True
        self.sustained(self._cancel)

    @work(thread=True, exclusive=True, group="sustained")
    def sustained(self, cancel: threading.Event) -> None:
        from edgetui.telemetry.run import assistant_workload, golden_questions

        session = self.app.session
        try:
            with session.connect() as db:  # this worker's own connection, closed with the block
                bundle, engine = session.bundle, session.engine
                self.sampler.attach(engine)
                run = SustainedRun(
                    assistant_workload(bundle, engine, cancel), golden_questions(None, bundle.name), TelemetryStore(db),
                    self.sampler, engine, bundle_ref=bundle.ref,
                    bar_floor_tps=bundle.bars.get("sustained_floor_tps"), minutes=self.run_minutes,
                    max_requests=self.run_requests, cancel=cancel,
                    on_progress=lambda p: self.post_message(self.RunProgress(p)))
                self.post_message(self.RunEnded(run.run()))
        except (WorkloadError, EngineError) as e:
            self.post_message(self.RunEnded(None, str(e)))
        except Exception as e:  # the run row (if any) is already marked incomplete; keep the app up
            self.post_message(self.RunEnded(None, f"sustained run failed: {type(e).__name__}: {e}"))

    def on_telemetry_screen_run_progress(self, msg: RunProgress) -> None:
        p = msg.progress
        if p.fraction is not None:
            self.query_one("#run-progress", ProgressBar).update(progress=p.fraction)
        self.query_one("#run-status", Static).update(f"running {mmss(p.elapsed_s)} · {p.requests} req · r: stop")

    def on_telemetry_screen_run_ended(self, msg: RunEnded) -> None:
        self._cancel = None
        self._idle_status()
        if msg.error:
            self.notify(msg.error, severity="error", timeout=8)
            return
        self.refresh_runs()
        self.open_run(msg.result.run_id)
        v = msg.result.verdict
        self.notify(f"sustained run {msg.result.run_id}: {v.label}", severity="information" if v.passed else "warning")


def _mean(values) -> float:
    return sum(values) / len(values)
