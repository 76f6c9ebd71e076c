"""Sensor readers. Every value is a number or None: absent hardware, a missing permission, a file that
vanished or holds garbage all read as None, never as an exception.

Files are read under an injectable root (`edgetui.config.sysfs_root()` by default), so tests point a
reader at a fixture tree: `/sys/class/thermal` (zones and trip points), `/sys/class/hwmon` (the files
psutil's `sensors_temperatures` reads), cpufreq, `/sys/class/powercap` (RAPL), `/sys/class/power_supply`
(the files psutil's `sensors_battery` reads), `/proc/stat` and `/proc/meminfo`. Only the engine child's
RSS (psutil, by pid) and NVIDIA GPUs (NVML) are read from the live machine.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from edgetui.config import sysfs_root
from edgetui.telemetry.nvml import GpuReading, Nvml

# Trip kinds at which the kernel throttles (passive cooling) or shuts down; `active` only starts a fan.
THROTTLE_TRIPS = ("passive", "hot", "critical")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="strict").strip()
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def read_num(path: Path, scale: float = 1.0) -> float | None:
    """A sysfs number times `scale`, or None when the file is absent, unreadable or not a number."""
    raw = read_text(path)
    if raw is None:
        return None
    try:
        v = float(raw.split()[0]) * scale
    except (ValueError, IndexError):
        return None
    return v if math.isfinite(v) else None


def _index(p: Path) -> int:
    m = re.search(r"(\d+)$", p.name)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class Trip:
    kind: str  # active | passive | hot | critical
    temp_c: float


@dataclass(frozen=True)
class Zone:
    name: str
    temp_c: float | None
    trips: tuple[Trip, ...] = ()


@dataclass(frozen=True)
class CoreFreq:
    cpu: int
    cur_mhz: float | None
    max_mhz: float | None


@dataclass(frozen=True)
class Battery:
    percent: float | None
    status: str | None
    power_w: float | None


@dataclass(frozen=True)
class Reading:
    """One pass over every sensor; `mono` is the clock the rates were computed with."""

    mono: float
    zones: tuple[Zone, ...] = ()
    cores: tuple[CoreFreq, ...] = ()
    cpu_util: float | None = None  # percent of all cores
    core_util: tuple[float | None, ...] = ()
    mem_avail_mb: float | None = None
    mem_total_mb: float | None = None
    engine_rss_mb: float | None = None
    power_w: float | None = None
    energy_j: float | None = None  # since this reader started
    battery: Battery | None = None
    gpus: tuple[GpuReading, ...] = ()


def thermal_zones(root: Path) -> list[Zone]:
    """`/sys/class/thermal/thermal_zone*`: type, temp (m°C) and trip points; duplicate types get `#N`."""
    out: list[Zone] = []
    seen: dict[str, int] = {}
    base = root / "sys/class/thermal"
    for d in sorted(base.glob("thermal_zone*"), key=_index):
        name = read_text(d / "type") or d.name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        trips = []
        for tf in sorted(d.glob("trip_point_*_temp"), key=lambda p: int(p.name.split("_")[2])):
            kind = read_text(tf.with_name(tf.name.replace("_temp", "_type")))
            temp = read_num(tf, 1e-3)
            if kind and temp is not None and temp > 0:
                trips.append(Trip(kind, temp))
        out.append(Zone(name, read_num(d / "temp", 1e-3), tuple(trips)))
    return out


def hwmon_temps(root: Path) -> list[Zone]:
    """`/sys/class/hwmon/hwmon*/temp*_input` (what psutil.sensors_temperatures reads); crit is a trip."""
    out: list[Zone] = []
    for d in sorted((root / "sys/class/hwmon").glob("hwmon*"), key=_index):
        chip = read_text(d / "name") or d.name
        for f in sorted(d.glob("temp*_input"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
            stem = f.name[: -len("_input")]
            label = read_text(d / f"{stem}_label") or stem
            crit = read_num(d / f"{stem}_crit", 1e-3)
            trips = (Trip("critical", crit),) if crit and crit > 0 else ()
            out.append(Zone(f"{chip}/{label}", read_num(f, 1e-3), trips))
    return out


def cpufreq(root: Path) -> list[CoreFreq]:
    """Per-core current and maximum frequency (MHz) from cpufreq; cores without cpufreq are left out."""
    out = []
    base = root / "sys/devices/system/cpu"
    for d in sorted(base.glob("cpu[0-9]*"), key=_index):
        f = d / "cpufreq"
        if not f.is_dir():
            continue
        cur = read_num(f / "scaling_cur_freq", 1e-3)
        if cur is None:
            cur = read_num(f / "cpuinfo_cur_freq", 1e-3)
        mx = read_num(f / "cpuinfo_max_freq", 1e-3)
        if mx is None:
            mx = read_num(f / "scaling_max_freq", 1e-3)
        out.append(CoreFreq(_index(d), cur, mx))
    return out


def meminfo(root: Path) -> tuple[float | None, float | None]:
    """(available, total) in MB from /proc/meminfo."""
    raw = read_text(root / "proc/meminfo")
    vals: dict[str, float] = {}
    for line in (raw or "").splitlines():
        key, _, rest = line.partition(":")
        try:
            vals[key] = float(rest.split()[0]) / 1024
        except (ValueError, IndexError):
            continue
    return vals.get("MemAvailable"), vals.get("MemTotal")


def battery(root: Path) -> Battery | None:
    """The first `/sys/class/power_supply/*` of type Battery (what psutil.sensors_battery reads)."""
    for d in sorted((root / "sys/class/power_supply").glob("*")):
        if read_text(d / "type") != "Battery":
            continue
        pct = read_num(d / "capacity")
        power = read_num(d / "power_now", 1e-6)
        if power is None:
            cur, volt = read_num(d / "current_now", 1e-6), read_num(d / "voltage_now", 1e-6)
            power = cur * volt if cur is not None and volt is not None else None
        return Battery(pct, read_text(d / "status"), power)
    return None


def process_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except (psutil.Error, OSError):
        return None


class CpuLoad:
    """Utilization from `/proc/stat` deltas between two reads (the first read has no rate: None)."""

    def __init__(self, root: Path):
        self.path = root / "proc/stat"
        self._last: dict[str, tuple[float, float]] = {}

    def read(self) -> tuple[float | None, tuple[float | None, ...]]:
        now: dict[str, tuple[float, float]] = {}
        for line in (read_text(self.path) or "").splitlines():
            if not line.startswith("cpu"):
                continue
            parts = line.split()
            try:
                vals = [float(x) for x in parts[1:9]]
            except ValueError:
                continue
            if len(vals) < 4:
                continue
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)  # idle + iowait
            now[parts[0]] = (sum(vals) - idle, sum(vals))
        utils = {k: self._util(self._last.get(k), v) for k, v in now.items()}
        self._last = now
        cores = sorted((k for k in utils if k != "cpu"), key=lambda k: int(k[3:]) if k[3:].isdigit() else 0)
        return utils.get("cpu"), tuple(utils[k] for k in cores)

    @staticmethod
    def _util(prev: tuple[float, float] | None, cur: tuple[float, float]) -> float | None:
        if prev is None:
            return None
        busy, total = cur[0] - prev[0], cur[1] - prev[1]
        if total <= 0 or busy < 0:
            return None
        return max(0.0, min(100.0, 100.0 * busy / total))


class RaplMeter:
    """Package energy from RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`) → watts and joules.

    The counter wraps at `max_energy_range_uj`; a negative delta adds one range. Only top-level package
    domains are summed (subdomains and psys overlap them). Unreadable counters (root-only on recent
    kernels) read as None; a gap does not lose energy, the next delta covers it.
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        base = root / "sys/class/powercap"
        tops = [d for d in sorted(base.glob("*")) if re.fullmatch(r"[a-z-]+:\d+", d.name)]
        packages = [d for d in tops if (read_text(d / "name") or "").startswith("package")]
        self.domains = packages or tops
        self._last: dict[Path, tuple[float, float]] = {}  # domain -> (raw µJ, t)
        self.energy_j: float | None = None

    def read(self) -> tuple[float | None, float | None]:
        """(power W since the previous read, energy J since the first read)."""
        if not self.domains:
            return None, None
        t = self.clock()
        power, ok = 0.0, True
        for d in self.domains:
            raw = read_num(d / "energy_uj")
            if raw is None:
                ok = False
                continue
            prev = self._last.get(d)
            self._last[d] = (raw, t)
            if prev is None:
                ok = False
                self.energy_j = self.energy_j or 0.0
                continue
            delta = raw - prev[0]
            if delta < 0:
                rng = read_num(d / "max_energy_range_uj")
                if rng is None or rng <= 0:
                    ok = False
                    continue
                delta += rng
            self.energy_j = (self.energy_j or 0.0) + delta * 1e-6
            dt = t - prev[1]
            if dt > 0:
                power += delta * 1e-6 / dt
            else:
                ok = False
        return (power if ok else None), self.energy_j


class Sensors:
    """Reads every sensor under `root`. Stateful: CPU utilization and power are rates between reads.

    NVML is only probed on the live machine (root `/`) unless `nvml=True` says otherwise, so a fixture
    tree gives the same reading on a GPU host and on a laptop.
    """

    def __init__(self, root: Path | str | None = None, nvml: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(root) if root is not None else sysfs_root()
        self.clock = clock
        self.cpu = CpuLoad(self.root)
        self.rapl = RaplMeter(self.root, clock)
        use_nvml = nvml if nvml is not None else self.root.resolve() == Path("/")
        self.nvml = Nvml() if use_nvml else None

    def read(self, pid: int | None = None) -> Reading:
        cpu_util, core_util = self.cpu.read()
        power, energy = self.rapl.read()
        avail, total = meminfo(self.root)
        return Reading(
            mono=self.clock(),
            zones=tuple(thermal_zones(self.root) + hwmon_temps(self.root)),
            cores=tuple(cpufreq(self.root)),
            cpu_util=cpu_util,
            core_util=core_util,
            mem_avail_mb=avail,
            mem_total_mb=total,
            engine_rss_mb=process_rss_mb(pid),
            power_w=power,
            energy_j=energy,
            battery=battery(self.root),
            gpus=tuple(self.nvml.read()) if self.nvml else (),
        )

    def close(self) -> None:
        if self.nvml:
            self.nvml.close()
