"""The smoke step: a child process bounded by a timeout; a crash, hang or exception is a failed gate."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from ota_fixtures import make_bundle_dir

from edgetui.ota.bundle import Bundle
from edgetui.ota.smoke import SmokeRunner

TESTS = str(Path(__file__).parent)


@pytest.fixture
def demo(tmp_path) -> Bundle:
    return Bundle.open(make_bundle_dir(tmp_path / "src"))


def runner(target: str, grace_s: float = 20.0) -> SmokeRunner:
    return SmokeRunner(f"ota_smoke_targets:{target}", extra_path=TESTS, grace_s=grace_s)


def test_a_passing_gate_passes_with_its_run_id(home, demo):
    res = runner("passes")(demo, home, None, 5)
    assert res.passed and res.run_id == "42" and res.reasons == ()


def test_a_failing_gate_fails_with_its_reasons(home, demo):
    res = runner("fails")(demo, home, demo, 5)
    assert not res.passed and "quality 0.000 < bar 0.500" in res.reasons[0]


def test_a_hanging_gate_is_stopped_at_the_timeout_with_its_children(home, demo):
    t0 = time.monotonic()
    res = runner("hangs", grace_s=1.0)(demo, home, None, 1)
    assert time.monotonic() - t0 < 15
    assert not res.passed and "did not finish within 2 s (hung)" in res.reasons[0]
    pid = int((home.home / "grandchild.pid").read_text())
    for _ in range(50):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_crashing_gate_is_a_failure_naming_the_signal(home, demo):
    res = runner("crashes")(demo, home, None, 5)
    assert not res.passed and "crashed (killed by SIGSEGV)" in res.reasons[0]


def test_a_gate_that_raises_is_a_failure_with_the_error(home, demo):
    res = runner("raises")(demo, home, None, 5)
    assert not res.passed and "RuntimeError: golden set unreadable" in res.reasons[0]


def test_a_missing_gate_module_is_a_failure_not_a_pass(home, demo):
    res = SmokeRunner("edgetui.no_such_module:smoke_gate")(demo, home, None, 5)
    assert not res.passed and "ModuleNotFoundError" in res.reasons[0]
    assert os.path.exists(home.home / "smoke.log")
