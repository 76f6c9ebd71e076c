"""Throttle detection: which causes hold in a reading, and events with start, end and cause over time.

Causes:
- `thermal`: a zone at or above one of its passive / hot / critical trip points (hwmon `crit` counts);
- `cpufreq`: mean CPU frequency below `freq_fraction` of its maximum while utilization is high;
- `gpu`: NVML clock-event reasons that hold the clocks down (power cap, thermal, slowdown).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgetui.telemetry.sensors import THROTTLE_TRIPS, Reading


@dataclass(frozen=True)
class ThrottleRules:
    freq_fraction: float = 0.7  # below this fraction of max frequency…
    util_min: float = 80.0  # …while CPU utilization (percent) is at least this: cpufreq throttling


@dataclass
class ThrottleEvent:
    cause: str  # thermal | cpufreq | gpu
    subject: str  # zone name, "cpu", or "gpu<N>"
    detail: str
    start: float
    end: float | None = None  # None while it lasts
    id: int | None = None

    @property
    def label(self) -> str:
        return f"{self.cause}: {self.detail}"

    def to_dict(self) -> dict:
        return asdict(self)


def detect(r: Reading, rules: ThrottleRules = ThrottleRules()) -> dict[tuple[str, str], str]:
    """(cause, subject) -> human detail for every cause that holds in this reading."""
    out: dict[tuple[str, str], str] = {}
    for z in r.zones:
        if z.temp_c is None:
            continue
        hit = [t for t in z.trips if t.kind in THROTTLE_TRIPS and z.temp_c >= t.temp_c]
        if hit:
            trip = max(hit, key=lambda t: t.temp_c)
            out[("thermal", z.name)] = f"{z.name} {z.temp_c:.1f}°C ≥ {trip.kind} trip {trip.temp_c:.0f}°C"
    cur = [c.cur_mhz for c in r.cores if c.cur_mhz is not None and c.max_mhz]
    mx = [c.max_mhz for c in r.cores if c.cur_mhz is not None and c.max_mhz]
    if cur and r.cpu_util is not None and r.cpu_util >= rules.util_min:
        frac = sum(cur) / sum(mx)
        if frac < rules.freq_fraction:
            out[("cpufreq", "cpu")] = (
                f"{sum(cur) / len(cur) / 1000:.2f}/{sum(mx) / len(mx) / 1000:.2f} GHz "
                f"({frac:.0%} of max) at {r.cpu_util:.0f}% load"
            )
    for g in r.gpus:
        if g.throttle:
            out[("gpu", f"gpu{g.index}")] = f"gpu{g.index} {', '.join(g.throttle)}"
    return out


class ThrottleTracker:
    """Turns per-sample causes into events: a cause opens an event when it appears and closes it when it
    is gone (end = the first sample without it)."""

    def __init__(self, rules: ThrottleRules = ThrottleRules()):
        self.rules = rules
        self.open: dict[tuple[str, str], ThrottleEvent] = {}
        self.current: dict[tuple[str, str], str] = {}  # causes in the newest reading, with today's values

    def update(self, r: Reading, t: float) -> tuple[list[ThrottleEvent], list[ThrottleEvent]]:
        """Feed one reading taken at wall time `t`; return (events opened, events closed)."""
        self.current = causes = detect(r, self.rules)
        opened = []
        for key, detail in causes.items():
            if key not in self.open:
                self.open[key] = ev = ThrottleEvent(key[0], key[1], detail, t)
                opened.append(ev)
        closed = []
        for key in [k for k in self.open if k not in causes]:
            ev = self.open.pop(key)
            ev.end = t
            closed.append(ev)
        return opened, closed

    def close_all(self, t: float) -> list[ThrottleEvent]:
        evs = list(self.open.values())
        for ev in evs:
            ev.end = t
        self.open.clear()
        self.current = {}
        return evs

    @property
    def active(self) -> tuple[str, ...]:
        """The causes holding now, each as `cause: detail` with the newest values."""
        return tuple(f"{cause}: {detail}" for (cause, _), detail in self.current.items())
