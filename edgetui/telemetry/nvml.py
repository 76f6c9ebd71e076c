"""NVIDIA GPUs through NVML (`pynvml`, from the nvidia-ml-py package), only when a GPU is there.

No module, no driver, no device, or any NVMLError: an empty list (init is tried once, not every
sample). A single metric that fails reads as None; the others still come through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# nvmlClocksEventReasons bits that mean the clocks are held down (idle and app settings are not throttling).
THROTTLE_BITS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    temp_c: float | None = None
    power_w: float | None = None
    sm_mhz: float | None = None
    util_pct: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    throttle: tuple[str, ...] = ()


def throttle_reasons(mask: int | None) -> tuple[str, ...]:
    if not mask:
        return ()
    return tuple(name for bit, name in THROTTLE_BITS.items() if mask & bit)


class Nvml:
    def __init__(self):
        self._nv = None
        self._handles: list = []
        self._tried = False
        self.error: str | None = None  # why there are no GPUs (shown by doctor-like callers)

    def _init(self) -> None:
        self._tried = True
        try:
            import pynvml
        except ImportError:
            self.error = "pynvml not installed"
            return
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._nv = pynvml
        except Exception as e:  # NVMLError (no driver, no device) and anything odd from the binding
            self.error = f"NVML unavailable: {e}"
            self._handles = []

    def read(self) -> list[GpuReading]:
        if not self._tried:
            self._init()
        nv = self._nv
        if nv is None:
            return []
        out = []
        for i, h in enumerate(self._handles):
            mem = _try(lambda h=h: nv.nvmlDeviceGetMemoryInfo(h))
            reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
                nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
            out.append(GpuReading(
                index=i,
                name=_name(_try(lambda h=h: nv.nvmlDeviceGetName(h))) or f"gpu{i}",
                temp_c=_try(lambda h=h: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))),
                power_w=_try(lambda h=h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
                sm_mhz=_try(lambda h=h: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
                util_pct=_try(lambda h=h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)),
                mem_used_mb=mem.used / 2**20 if mem is not None else None,
                mem_total_mb=mem.total / 2**20 if mem is not None else None,
                throttle=throttle_reasons(_try(lambda h=h, f=reasons: f(h)) if reasons else None),
            ))
        return out

    def close(self) -> None:
        if self._nv is not None:
            _try(self._nv.nvmlShutdown)
            self._nv = None


def _try(fn: Callable):
    try:
        return fn()
    except Exception:  # NVMLError_NotSupported and friends: that one metric is n/a
        return None


def _name(v) -> str | None:
    return v.decode() if isinstance(v, bytes) else v
