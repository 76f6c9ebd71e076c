"""The telemetry sample: one flat, JSON-ready row per sampler tick, and how to print its values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edgetui.telemetry.sensors import Reading


@dataclass(frozen=True)
class Sample:
    t: float  # wall clock, epoch seconds
    mono: float  # time.monotonic() of the reading
    tps: float | None = None  # decode tokens/s over the sliding window; None when no engine is attached
    ttft_ms: float | None = None  # TTFT of the last request
    temps: dict | None = None  # zone -> °C (None for a zone that could not be read)
    hottest_c: float | None = None
    hottest_zone: str | None = None
    cpu_util: float | None = None  # percent of all cores
    core_util: tuple = ()
    freq_mhz: float | None = None  # mean current frequency over cores with cpufreq
    freq_max_mhz: float | None = None
    core_freq_mhz: tuple = ()
    engine_rss_mb: float | None = None
    mem_avail_mb: float | None = None
    mem_total_mb: float | None = None
    power_w: float | None = None
    energy_j: float | None = None  # since the sampler started
    battery_pct: float | None = None
    battery_status: str | None = None
    gpus: tuple = ()  # one dict per GPU (see nvml.GpuReading)
    throttle: tuple = ()  # active throttle causes, one line each
    run_id: int | None = None

    @classmethod
    def from_reading(cls, r: Reading, t: float, tps: float | None = None, ttft_ms: float | None = None,
                     throttle: tuple = (), run_id: int | None = None) -> Sample:
        temps = {z.name: _r(z.temp_c) for z in r.zones}
        known = [(v, k) for k, v in temps.items() if v is not None]
        hottest = max(known) if known else (None, None)
        curs = [c.cur_mhz for c in r.cores if c.cur_mhz is not None]
        maxs = [c.max_mhz for c in r.cores if c.max_mhz is not None]
        b = r.battery
        return cls(
            t=t, mono=r.mono, tps=_r(tps), ttft_ms=_r(ttft_ms), temps=temps,
            hottest_c=hottest[0], hottest_zone=hottest[1],
            cpu_util=_r(r.cpu_util), core_util=tuple(_r(u) for u in r.core_util),
            freq_mhz=_r(sum(curs) / len(curs)) if curs else None,
            freq_max_mhz=_r(sum(maxs) / len(maxs)) if maxs else None,
            core_freq_mhz=tuple(_r(c.cur_mhz) for c in r.cores),
            engine_rss_mb=_r(r.engine_rss_mb), mem_avail_mb=_r(r.mem_avail_mb), mem_total_mb=_r(r.mem_total_mb),
            power_w=_r(r.power_w), energy_j=_r(r.energy_j, 3),
            battery_pct=b.percent if b else None, battery_status=b.status if b else None,
            gpus=tuple(asdict(g) for g in r.gpus), throttle=tuple(throttle), run_id=run_id,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Sample:
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)


def _r(v: float | None, nd: int = 2) -> float | None:
    return round(v, nd) if v is not None else None


def na(v: float | None, spec: str = ".1f", unit: str = "") -> str:
    """A value for people: formatted with its unit, or `n/a` when the sensor had nothing."""
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def ghz(mhz: float | None) -> str:
    return na(mhz / 1000 if mhz is not None else None, ".2f")


WATCH_HEADER = "   tok/s  ttft_ms   hot°C   GHz  max   cpu%  rss_MB  avail_MB  power_W  throttle"


def watch_line(s: Sample) -> str:
    """One compact vmstat-like line (the `edgetui telemetry --watch` format)."""
    return (
        f"{na(s.tps):>8} {na(s.ttft_ms, '.0f'):>8} {na(s.hottest_c):>7} {ghz(s.freq_mhz):>5} "
        f"{ghz(s.freq_max_mhz):>4} {na(s.cpu_util, '.0f'):>6} {na(s.engine_rss_mb, '.0f'):>7} "
        f"{na(s.mem_avail_mb, '.0f'):>9} {na(s.power_w):>8}  {'; '.join(s.throttle) or '-'}"
    )
