"""Headless telemetry: `edgetui telemetry [--watch]` and `edgetui bench sustained`, as an SSH user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgetui.cli import app
from edgetui.db import open_db
from edgetui.telemetry.sample import Sample
from edgetui.telemetry.storage import TelemetryStore

REPO = Path(__file__).resolve().parent.parent
SYSFS = Path(__file__).parent / "fixtures" / "sysfs"
_WITH_CTRL_C = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv[0] = 'edgetui'; runpy.run_module('edgetui', run_name='__main__')")


@pytest.fixture
def on_tree(home, monkeypatch):
    def use(tree: str) -> None:
        monkeypatch.setenv("EDGETUI_SYSFS_ROOT", str(SYSFS / tree))

    return use


def test_watch_prints_a_header_and_one_line_per_interval(on_tree):
    on_tree("x86-laptop")
    r = CliRunner().invoke(app, ["telemetry", "--watch", "--interval", "0.1", "--count", "3"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["tok/s", "ttft_ms", "hot°C"] and len(lines) == 4
    assert lines[1].split()[:5] == ["n/a", "n/a", "62.0", "2.25", "4.20"]


def test_watch_on_a_bare_vm_prints_na_not_a_traceback(on_tree):
    on_tree("empty")
    r = CliRunner().invoke(app, ["telemetry", "-w", "-i", "0.1", "-c", "1"])
    assert r.exit_code == 0 and r.output.splitlines()[1].split()[:9] == ["n/a"] * 9


def test_telemetry_once_names_every_sensor_and_json_is_a_sample(on_tree):
    on_tree("throttling/base")
    r = CliRunner().invoke(app, ["telemetry"])
    assert r.exit_code == 0
    assert "x86_pkg_temp 70.0°C" in r.output and "gpu           n/a" in r.output
    r = CliRunner().invoke(app, ["telemetry", "--json"])
    d = json.loads(r.output)
    assert d["hottest_zone"] == "x86_pkg_temp" and d["freq_max_mhz"] == 3000.0 and d["throttle"] == []


def test_watch_shows_tokens_per_second_of_a_run_sampling_in_another_process(on_tree, home):
    on_tree("empty")
    store = TelemetryStore(open_db(home.db))
    store.add_sample(Sample(t=time.time() + 0.5, mono=0.0, tps=61.5, ttft_ms=420.0))
    r = CliRunner().invoke(app, ["telemetry", "-w", "-i", "0.1", "-c", "1"])
    assert r.output.splitlines()[1].split()[:2] == ["61.5", "420"]


def test_bench_sustained_bad_golden_set_is_one_line_exit_2(use_bundle_home, tmp_path):
    bad = tmp_path / "g.jsonl"
    bad.write_text("{}\n")
    r = subprocess.run([sys.executable, "-m", "edgetui", "bench", "sustained", "--golden", str(bad)],
                       capture_output=True, text=True, env=os.environ.copy(), cwd=REPO, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:1: ")


@pytest.mark.model
@pytest.mark.slow
def test_bench_sustained_json_prints_the_verdict_and_stores_the_run(bundle_home, tmp_path):
    """The acceptance command (shortened to 2 requests): JSON verdict, exit 0/1 by the floor, run stored."""
    env = {**os.environ, "EDGETUI_HOME": str(tmp_path / "home")}
    shutil.copytree(bundle_home.home, tmp_path / "home")  # a private copy: this run writes to the database
    r = subprocess.run([sys.executable, "-m", "edgetui", "bench", "sustained", "--requests", "2", "--json"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    out = json.loads(r.stdout)
    assert r.returncode == (0 if out["passed"] else 1), r.stderr
    assert out["status"] == "complete" and out["requests"] == 2 and out["bundle"] == "field-policy@1.0.0"
    assert out["burst_tps"] > 0 and out["floor_tps"] > 0 and out["p95_ttft_ms"] > 0
    assert out["bar_floor_tps"] == 30
    prom = Path(out["exports"]["prometheus"]).read_text()
    assert "edgetui_sustained_floor_tps{" in prom
    store = TelemetryStore(open_db(tmp_path / "home" / "edgetui.db"))
    run = store.run(out["run_id"])
    assert run.status == "complete" and len(store.requests(run.id)) == 2 and store.samples(run.id)


@pytest.mark.model
def test_ctrl_c_during_bench_sustained_keeps_the_run_marked_incomplete(bundle_home, tmp_path):
    shutil.copytree(bundle_home.home, tmp_path / "home")
    db = tmp_path / "home" / "edgetui.db"
    env = {**os.environ, "EDGETUI_HOME": str(tmp_path / "home")}
    # A shell that starts a job in the background (`make test &`, a CI runner) hands it SIGINT ignored, and
    # Python then never raises KeyboardInterrupt: give the child the terminal's Ctrl+C back explicitly.
    argv = [sys.executable, "-c", _WITH_CTRL_C, "bench", "sustained", "--minutes", "5", "--json"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline, recorded = time.monotonic() + 240, 0
        while time.monotonic() < deadline and recorded < 2 and p.poll() is None:  # until the run records
            time.sleep(0.5)
            if db.exists():
                recorded = TelemetryStore(open_db(db)).db.execute(
                    "SELECT COUNT(*) FROM telemetry_samples WHERE run_id IS NOT NULL").fetchone()[0]
        assert recorded >= 2, f"the sustained run recorded {recorded} samples in 240 s: {p.poll()=}"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=240)
    finally:
        p.kill()
    assert p.returncode == 1, err
    d = json.loads(out)
    assert d["status"] == "incomplete" and d["reason"] == "interrupted (Ctrl+C)" and d["complete"] is False
    run = TelemetryStore(open_db(db)).run(d["run_id"])
    assert run.status == "incomplete" and run.ended is not None
