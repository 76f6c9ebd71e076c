"""Sensors read fixture sysfs trees; absent or broken hardware reads as None (n/a), never an exception."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from edgetui.telemetry.nvml import Nvml, throttle_reasons
from edgetui.telemetry.sample import Sample, watch_line
from edgetui.telemetry.sensors import RaplMeter, Sensors, Trip

SYSFS = Path(__file__).parent / "fixtures" / "sysfs"


def read_twice(root, **kw) -> Sample:
    """Rates (CPU load, power) need two readings; return the second as a sample."""
    s = Sensors(root, **kw)
    s.read()
    return Sample.from_reading(s.read(), 0.0)


def test_x86_laptop_tree_reads_zones_trips_hwmon_cpufreq_rapl_memory_and_battery():
    s = Sensors(SYSFS / "x86-laptop")
    r = s.read()
    zones = {z.name: z for z in r.zones}
    assert zones["x86_pkg_temp"].temp_c == 61.0
    assert zones["x86_pkg_temp"].trips == (Trip("passive", 95.0), Trip("critical", 105.0))
    assert zones["acpitz"].trips == (Trip("critical", 110.0), Trip("passive", 95.0))  # trip order as in sysfs
    assert zones["INT3400 Thermal"].trips == ()
    assert zones["coretemp/Package id 0"].temp_c == 62.0
    assert zones["coretemp/Package id 0"].trips == (Trip("critical", 100.0),)
    assert [(c.cpu, c.cur_mhz, c.max_mhz) for c in r.cores] == [
        (0, 2400.0, 4200.0), (1, 2200.0, 4200.0), (2, 2600.0, 4200.0), (3, 1800.0, 4200.0)]
    assert r.mem_avail_mb == pytest.approx(7936.0) and r.mem_total_mb == pytest.approx(15872.0)
    assert r.battery.percent == 87 and r.battery.status == "Discharging" and r.battery.power_w == pytest.approx(9.5)
    assert [d.name for d in s.rapl.domains] == ["intel-rapl:0"]  # the package, not its core subdomain nor psys
    assert r.cpu_util is None and r.power_w is None  # first reading: no rate yet
    assert r.energy_j == 0.0
    assert r.gpus == ()  # a fixture tree never probes NVML


def test_arm_handheld_tree_has_thermal_zones_only():
    smp = read_twice(SYSFS / "arm-handheld")
    assert smp.temps == {"cpu-thermal": 48.3, "gpu-thermal": 44.8, "ddr-thermal": 41.0, "battery": 31.5,
                         "cpu-thermal#2": 47.9}
    assert (smp.hottest_c, smp.hottest_zone) == (48.3, "cpu-thermal")
    assert smp.freq_mhz is None and smp.core_freq_mhz == ()
    assert smp.power_w is None and smp.energy_j is None
    assert smp.cpu_util is None and smp.mem_avail_mb is None and smp.battery_pct is None
    assert smp.throttle == ()


def test_empty_tree_reads_all_none_and_prints_na():
    smp = read_twice(SYSFS / "empty")
    assert smp.temps == {} and smp.hottest_c is None and smp.freq_mhz is None and smp.power_w is None
    line = watch_line(smp)
    assert line.split()[:9] == ["n/a"] * 9


@pytest.fixture
def laptop(tmp_path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SYSFS / "x86-laptop", root)
    return root


def test_sensor_files_that_vanish_or_hold_garbage_mid_run_read_as_none(laptop):
    s = Sensors(laptop)
    s.read()
    zone = laptop / "sys/class/thermal/thermal_zone1"
    (zone / "temp").write_text("garbage\n")
    (zone / "trip_point_0_temp").write_bytes(b"\xff\xfe\n")
    (laptop / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").unlink()
    rapl = laptop / "sys/class/powercap/intel-rapl:0/energy_uj"
    rapl.unlink()
    rapl.mkdir()  # reading a directory fails like a root-only counter does
    (laptop / "proc/meminfo").write_text("MemAvailable: lots\n")
    shutil.rmtree(laptop / "sys/class/power_supply/BAT0")
    r = s.read()
    zones = {z.name: z for z in r.zones}
    assert zones["x86_pkg_temp"].temp_c is None
    assert zones["x86_pkg_temp"].trips == (Trip("critical", 105.0),)
    assert r.cores[0].cur_mhz is None and r.cores[1].cur_mhz == 2200.0
    assert r.power_w is None
    assert r.mem_avail_mb is None and r.battery is None
    smp = Sample.from_reading(r, 0.0)
    assert smp.hottest_c == 62.0  # the other zones still count
    shutil.rmtree(laptop / "sys")  # the whole tree disappears: still no exception
    assert Sample.from_reading(s.read(), 0.0).temps == {}


def test_cpu_utilization_comes_from_proc_stat_deltas(laptop):
    s = Sensors(laptop)
    s.read()
    stat = laptop / "proc/stat"
    stat.write_text(
        "cpu  208300 0 0 192100 0 0 0 0 0 0\n"  # +300 busy, +100 idle
        "cpu0 52150 0 0 48050 0 0 0 0 0 0\ncpu1 52150 0 0 48050 0 0 0 0 0 0\n"
        "cpu2 52000 0 0 48000 0 0 0 0 0 0\ncpu3 52000 0 0 48000 0 0 0 0 0 0\n")
    r = s.read()
    assert r.cpu_util == pytest.approx(75.0)
    assert r.core_util[:2] == (pytest.approx(75.0), pytest.approx(75.0))
    assert r.core_util[2:] == (None, None)  # no time passed on those cores: no rate


def test_rapl_counter_wrap_adds_max_energy_range(tmp_path):
    d = tmp_path / "sys/class/powercap/intel-rapl:0"
    d.mkdir(parents=True)
    (d / "name").write_text("package-0\n")
    (d / "max_energy_range_uj").write_text("1000000000\n")  # 1000 J range
    now = [0.0]
    meter = RaplMeter(tmp_path, clock=lambda: now[0])
    for t, raw, power, energy in [(0, 999_000_000, None, 0.0), (2, 999_020_000, 0.01, 0.02),
                                  (4, 19_020_000, 10.0, 20.02)]:  # 20 J across the wrap in 2 s
        now[0] = t
        (d / "energy_uj").write_text(f"{raw}\n")
        p, e = meter.read()
        assert (p if p is None else pytest.approx(power)) == power
        assert e == pytest.approx(energy)


def test_nvml_absent_reads_no_gpus(monkeypatch):
    nv = Nvml()
    gpus = nv.read()
    if gpus:  # a GPU host: the present path works too
        assert all(g.name and g.index == i for i, g in enumerate(gpus))
    else:  # no NVIDIA driver or no device: no GPUs, and why
        assert nv.error
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the module itself missing
    nv = Nvml()
    assert nv.read() == [] and nv.error == "pynvml not installed"
    smp = read_twice(SYSFS / "empty", nvml=True)
    assert smp.gpus == ()


def test_nvml_throttle_reason_bits_name_only_real_throttling():
    assert throttle_reasons(0x1) == ()  # GPU idle is not throttling
    assert throttle_reasons(0x4 | 0x40) == ("sw_power_cap", "hw_thermal")
    assert throttle_reasons(None) == ()
