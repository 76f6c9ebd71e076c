"""Sustained runs: a real short run stores samples, per-request stats and a verdict; interrupted runs keep
what they recorded, marked incomplete; exports (JSON, CSV, Prometheus textfile) carry the run."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgetui.db import open_db
from edgetui.engine.base import EngineError, Stats, Token
from edgetui.telemetry.export import export_run, prometheus_text
from edgetui.telemetry.run import SustainedRun, WorkloadError, assistant_workload, golden_questions
from edgetui.telemetry.sampler import Sampler
from edgetui.telemetry.sensors import Sensors
from edgetui.telemetry.storage import TelemetryStore
from edgetui.telemetry.throttle import ThrottleEvent

SYSFS = Path(__file__).parent / "fixtures" / "sysfs"


class TokenSource:
    """Stands in for the engine's listener list in runs whose workload is a plain function."""

    def __init__(self):
        self.listeners: list = []
        self.pid = None

    def stream(self, n: int, dt: float = 0.002) -> dict:
        t0, times = time.monotonic(), []
        for i in range(n):
            time.sleep(dt)
            times.append(time.monotonic())
            for cb in self.listeners:
                cb(Token(f"t{i}", times[-1]))
        for cb in self.listeners:
            cb(Stats(ttft_ms=5.0, decode_tokens=n, start=t0, token_times=tuple(times)))
        return {"ttft_ms": 5.0, "decode_tps": 1 / dt, "decode_tokens": n, "prompt_tokens": 40}


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def store(db_path) -> TelemetryStore:
    return TelemetryStore(open_db(db_path))


@pytest.fixture
def sampler(db_path) -> Sampler:
    """A manual sampler on the laptop tree writing to the test database."""
    s = Sampler(Sensors(SYSFS / "x86-laptop"), hz=0, db_path=db_path)
    yield s
    s.stop()


def test_ctrl_c_keeps_what_was_recorded_and_marks_the_run_incomplete(store, sampler):
    src, calls = TokenSource(), []

    def ask(q: str) -> dict:
        calls.append(q)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return src.stream(20)

    res = SustainedRun(ask, ["a", "b", "c"], store, sampler, src, "b@1", 30.0, minutes=5).run()
    assert calls == ["a", "b", "c", "a"]  # round-robin
    assert res.reason == "interrupted (Ctrl+C)" and not res.verdict.complete
    run = store.run(res.run_id)
    assert run.status == "incomplete" and run.reason == "interrupted (Ctrl+C)" and run.ended
    assert [r["question"] for r in store.requests(res.run_id)] == ["a", "b", "c"]
    assert res.verdict.requests == 3 and res.verdict.decode_tokens == 60
    assert res.verdict.p95_ttft_ms == 5.0
    assert len(store.samples(res.run_id)) == 2  # the run samples its start and end
    assert src.listeners == []  # its token listener is gone
    assert sampler.run_id is None


def test_a_request_the_engine_refuses_is_recorded_and_the_run_goes_on(store, sampler):
    src, n = TokenSource(), [0]

    def ask(q: str) -> dict:
        n[0] += 1
        if n[0] == 2:
            raise EngineError("prompt is too long: shorten it")
        return src.stream(10)

    res = SustainedRun(ask, ["q"], store, sampler, src, None, None, minutes=None, max_requests=3).run()
    assert res.verdict.complete and res.verdict.requests == 3 and res.verdict.errors == 1
    errs = [r["error"] for r in store.requests(res.run_id)]
    assert errs == [None, "prompt is too long: shorten it", None]
    assert res.verdict.passed is None  # no bar


def test_operator_stop_ends_the_run_between_requests(store, sampler):
    src, cancel = TokenSource(), threading.Event()

    def ask(q: str) -> dict:
        cancel.set()
        return src.stream(5)

    res = SustainedRun(ask, ["q"], store, sampler, src, cancel=cancel).run()
    assert res.reason == "stopped by the operator" and res.verdict.requests == 1


def test_exports_carry_the_run_as_json_csv_and_a_prometheus_textfile(store, sampler, tmp_path):
    src = TokenSource()
    res = SustainedRun(lambda q: src.stream(30), ["q1", "q2"], store, sampler, src, 'b@1 "x"', 30.0,
                       minutes=None, max_requests=2).run()
    paths = export_run(store, res.run_id, tmp_path / "exports", tmp_path / "textfile" / "edgetui.prom")
    doc = json.loads(Path(paths["json"]).read_text())
    assert doc["run"]["verdict"]["requests"] == 2 and len(doc["requests"]) == 2 and len(doc["samples"]) == 2
    with open(paths["samples_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["hottest_c"] == "62.0" and rows[0]["temp_c:x86_pkg_temp"] == "61.0"
    with open(paths["requests_csv"]) as f:
        reqs = list(csv.DictReader(f))
    assert [r["question"] for r in reqs] == ["q1", "q2"] and reqs[0]["decode_tokens"] == "30"
    prom = Path(paths["prometheus"]).read_text()
    assert Path(paths["prometheus"]).parent.name == "textfile"
    assert '# TYPE edgetui_sustained_floor_tps gauge' in prom
    assert 'edgetui_sustained_requests{bundle="b@1 \\"x\\"",host="' in prom
    assert "edgetui_sustained_complete{" in prom and "edgetui_sustained_tokens_per_joule" not in prom  # no energy
    for line in prom.splitlines():  # every sample line: name{labels} value, a finite number
        assert line.startswith("#") or math.isfinite(float(line.rsplit(" ", 1)[1]))
    stamp = next(x for x in prom.splitlines() if x.startswith("edgetui_sustained_last_run_timestamp_seconds{"))
    assert float(stamp.rsplit(" ", 1)[1]) == store.run(res.run_id).ended
    assert prometheus_text(store.run(res.run_id)) == prom


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_whose_process_died_is_marked_abandoned_not_left_running(store):
    t0 = time.time() - 600
    rid = store.create_run("b@1", 10.0, None, 30.0, started=t0)
    store.add_request(rid, 0, "q", t0 + 5, {"ttft_ms": 100.0})
    dead = _dead_pid()
    store.db.execute("UPDATE telemetry_runs SET pid=? WHERE id=?", (dead, rid))  # recorded by a process now gone
    quiet = store.create_run("b@1", 10.0, None, 30.0, started=t0)  # nothing recorded for 10 min, owner alive
    fresh = store.create_run("b@1", 10.0, None, 30.0)
    assert store.close_abandoned() == 1
    run = store.run(rid)
    assert run.status == "incomplete" and run.reason.startswith("abandoned") and run.ended == t0 + 5
    assert store.run(quiet).status == "running" and store.run(fresh).status == "running"
    ev = ThrottleEvent("thermal", "z", "z 99°C", t0 + 1)
    store.open_event(ev, rid)
    live = ThrottleEvent("thermal", "y", "y 99°C", t0 + 2)
    store.open_event(live, quiet)
    store.db.execute("UPDATE throttle_events SET pid=? WHERE id=?", (dead, ev.id))  # left open by the dead process
    store.close_abandoned()
    assert store.events(rid)[0].end == t0 + 1
    assert store.events(quiet)[0].end is None


def test_golden_questions_come_from_the_bundles_golden_set(tmp_path):
    qs = golden_questions(None, "field-policy")
    assert len(qs) >= 20 and qs[0] == "What seal kit do I use on P-201?"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(WorkloadError, match=f"^{bad}:1: "):
        golden_questions(bad)
    with pytest.raises(WorkloadError, match="no such file"):
        golden_questions(tmp_path / "missing.jsonl")
    assert golden_questions(None, "no-such-bundle") == qs  # falls back to the default bundle's set


# -- the real thing ------------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_real_short_sustained_run_stores_samples_requests_and_verdict(bundle, engine, tmp_path):
    db = tmp_path / "t.db"
    store = TelemetryStore(open_db(db))
    sampler = Sampler(hz=2.0, db_path=db)
    sampler.attach(engine)
    sampler.start()
    try:
        run = SustainedRun(assistant_workload(bundle, engine), golden_questions(None, bundle.name), store, sampler,
                           engine, bundle.ref, bundle.bars["sustained_floor_tps"], minutes=20 / 60)
        res = run.run()
    finally:
        sampler.stop()
    v = res.verdict
    assert v.complete and res.reason is None and v.duration_s >= 20  # the last request may run past 20 s
    assert v.burst_tps > 0 and v.floor_tps > 0 and v.decode_tokens > 0
    assert v.floor_window_s == pytest.approx(min(30.0, v.duration_s), abs=0.1)  # shorter than 30 s: one window
    assert v.p95_ttft_ms > 0 and v.bar_floor_tps == 30 and v.passed == (v.floor_tps >= 30)
    reqs = store.requests(res.run_id)
    assert len(reqs) == v.requests >= 1
    assert any(r["decode_tokens"] and r["ttft_ms"] > 0 and r["decode_tps"] > 0 for r in reqs)
    samples = store.samples(res.run_id)
    assert len(samples) >= 20  # 2 Hz for 20 s and more, tagged with the run
    assert any(s.tps and s.tps > 0 for s in samples) and any(s.engine_rss_mb for s in samples)
    row = store.run(res.run_id)
    assert row.status == "complete" and row.verdict == v


@pytest.mark.model
def test_engine_crash_mid_run_keeps_the_run_marked_incomplete(bundle, tmp_path):
    db = tmp_path / "t.db"
    store = TelemetryStore(open_db(db))
    eng = bundle.engine()
    eng.start()
    sampler = Sampler(Sensors(SYSFS / "empty"), hz=0, db_path=db)
    ask = assistant_workload(bundle, eng)
    n = [0]

    def counting_ask(q: str) -> dict:
        n[0] += 1
        return ask(q)

    def kill_on_first_token_of_request_2(event) -> None:
        if n[0] == 2 and isinstance(event, Token) and eng.pid:
            os.kill(eng.pid, signal.SIGKILL)

    eng.listeners.append(kill_on_first_token_of_request_2)
    try:
        res = SustainedRun(counting_ask, golden_questions(None, bundle.name), store, sampler, eng, bundle.ref,
                           30.0, minutes=None, max_requests=4).run()
    finally:
        eng.close()
    assert not res.verdict.complete and res.reason.startswith("engine crashed: engine process killed by SIGKILL")
    reqs = store.requests(res.run_id)
    assert len(reqs) == 2 and reqs[0]["error"] is None and reqs[1]["error"].startswith("engine crashed")
    assert store.run(res.run_id).status == "incomplete"
