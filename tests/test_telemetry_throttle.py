"""Throttle detection on the throttling scenario: temperature rises to the passive trip while the frequency
drops under load; each event is flagged with the right cause, start and end, and stored."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from edgetui.db import open_db
from edgetui.telemetry.sampler import Sampler
from edgetui.telemetry.sensors import CoreFreq, Reading, Sensors, Trip, Zone
from edgetui.telemetry.storage import TelemetryStore
from edgetui.telemetry.throttle import ThrottleRules, detect

SCENARIO = Path(__file__).parent / "fixtures" / "sysfs" / "throttling"
T0 = 1_700_000_000.0  # wall clock of the scenario's t=0


def replay(tmp_path: Path, db_path: Path | None = None, upto: int | None = None, real_clock: bool = False,
           ) -> Sampler:
    """Copy the scenario's base tree and play its timeline into a manual sampler, one sample per step
    (at scenario time T0 + t, or at the real time of each step with `real_clock`)."""
    root = tmp_path / "throttling-root"
    shutil.copytree(SCENARIO / "base", root)
    now = [0.0]
    wall = time.time if real_clock else (lambda: T0 + now[0])
    sampler = Sampler(Sensors(root, clock=lambda: now[0]), hz=0, db_path=db_path, clock=wall)
    sampler.root = root
    for step in json.loads((SCENARIO / "timeline.json").read_text())["steps"][: None if upto is None else upto + 1]:
        for rel, content in step["files"].items():
            (root / rel).write_text(content)
        now[0] = step["t"]
        sampler.sample_once()
    return sampler


def test_scenario_flags_thermal_then_cpufreq_with_right_causes_and_times(tmp_path):
    db = tmp_path / "t.db"
    sampler = replay(tmp_path, db)
    sampler.stop()
    store = TelemetryStore(open_db(db))
    events = store.events_between(T0, T0 + 10)
    expect = json.loads((SCENARIO / "timeline.json").read_text())["expect"]
    assert [(e.cause, e.subject, e.start - T0, e.end - T0) for e in events] == [
        (x["cause"], x["subject"], x["start"], x["end"]) for x in expect]
    thermal, freq = events
    assert thermal.detail == "x86_pkg_temp 96.0°C ≥ passive trip 95°C"
    assert freq.detail == "1.80/3.00 GHz (60% of max) at 95% load"


def test_samples_carry_the_active_causes_and_power_across_the_rapl_wrap(tmp_path):
    sampler = replay(tmp_path)
    by_t = {round(s.t - T0): s for s in sampler.history}
    assert by_t[3].throttle == ()
    assert by_t[4].throttle == ("thermal: x86_pkg_temp 96.0°C ≥ passive trip 95°C",)
    assert [c.split(":")[0] for c in by_t[6].throttle] == ["thermal", "cpufreq"]
    assert by_t[9].throttle == () and by_t[10].throttle == ()
    assert by_t[0].power_w is None
    assert all(by_t[t].power_w == pytest.approx(15.0) for t in range(1, 11))  # wraps between t=2 and t=3
    assert by_t[10].energy_j == pytest.approx(150.0)
    assert by_t[6].cpu_util == pytest.approx(95.0)


def test_low_frequency_at_low_load_is_not_throttling():
    idle = Reading(mono=0, cores=(CoreFreq(0, 800, 4200),), cpu_util=5.0)
    busy = Reading(mono=0, cores=(CoreFreq(0, 800, 4200),), cpu_util=97.0)
    assert detect(idle) == {}
    assert list(detect(busy)) == [("cpufreq", "cpu")]
    assert detect(busy, ThrottleRules(freq_fraction=0.1)) == {}


def test_active_trip_only_starts_a_fan_and_is_not_throttling():
    z = Zone("acpitz", 72.0, (Trip("active", 70.0), Trip("critical", 110.0)))
    assert detect(Reading(mono=0, zones=(z,))) == {}
    hot = Zone("acpitz", 111.0, z.trips)
    assert detect(Reading(mono=0, zones=(hot,))) == {("thermal", "acpitz"): "acpitz 111.0°C ≥ critical trip 110°C"}


def test_stopping_the_sampler_closes_events_still_open_at_its_last_sample(tmp_path):
    db = tmp_path / "t.db"
    sampler = replay(tmp_path, db, upto=6)  # both causes hold at t=6
    sampler.stop()
    events = TelemetryStore(open_db(db)).events_between(T0, T0 + 6)
    assert [(e.cause, e.start - T0, e.end - T0) for e in events] == [("thermal", 4, 6), ("cpufreq", 5, 6)]
