"""Decode-rate windows and the sustained-run verdict: burst, floor, p95 TTFT, tokens per joule, pass/fail.

A decode interval is the time between two consecutive tokens of one request (the first token comes from
the prompt pass, so it starts no interval — the same rule as `Stats.decode_tps`). The decode rate of a
window is the number of intervals ending in it divided by their total duration, so prompt evaluation and
gaps between requests do not dilute it: it is the speed a user sees while text streams.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import accumulate

from edgetui.evals.stats import percentile

BURST_S = 20.0
FLOOR_S = 30.0


class DecodeRates:
    """Windowed decode rates over a fixed set of intervals (prefix sums: each window is O(log n))."""

    def __init__(self, intervals: Iterable[tuple[float, float]]):
        iv = sorted((b, b - a) for a, b in intervals if b >= a)
        self.ends = [b for b, _ in iv]
        self._cum = [0.0, *accumulate(d for _, d in iv)]
        self.first_start = min((b - d for b, d in iv), default=None)  # when decoding began

    def __len__(self) -> int:
        return len(self.ends)

    def rate(self, a: float, b: float) -> float | None:
        """Tokens/s of the intervals ending in [a, b); None when nothing was decoded there."""
        i, j = bisect_left(self.ends, a), bisect_left(self.ends, b)
        busy = self._cum[j] - self._cum[i]
        return (j - i) / busy if j > i and busy > 0 else None

    def floor(self, start: float, end: float, window: float = FLOOR_S, step: float = 1.0,
              ) -> tuple[float | None, float | None, float]:
        """(lowest rate, its window start, window length) over windows sliding by `step` in [start, end].

        A run shorter than the window has one window: the whole run.
        """
        window = min(window, end - start) if end > start else window
        lowest, at = None, None
        n = max(0, math.floor((end - start - window) / step + 1e-9)) + 1
        for k in range(n):
            a = start + k * step
            r = self.rate(a, a + window)
            if r is not None and (lowest is None or r < lowest):
                lowest, at = r, a
        return lowest, at, window


@dataclass(frozen=True)
class Verdict:
    complete: bool
    duration_s: float
    requests: int
    errors: int
    decode_tokens: int  # every token generated in the run
    burst_tps: float | None  # decode rate over the first BURST_S seconds of decoding
    floor_tps: float | None  # lowest FLOOR_S-second window
    floor_at_s: float | None  # where that window starts, seconds into the run
    floor_window_s: float
    p95_ttft_ms: float | None  # linear-interpolated, as the eval gate computes it
    energy_j: float | None
    tokens_per_joule: float | None
    throttle_events: int
    bar_floor_tps: float | None
    passed: bool | None  # floor ≥ bar; None without a bar or without any decoding

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        state = "no verdict" if self.passed is None else "PASS" if self.passed else "FAIL"
        return state if self.complete else f"{state} (incomplete)"


def compute_verdict(intervals: Iterable[tuple[float, float]], start: float, end: float,
                    ttfts_ms: Sequence[float], requests: int, errors: int, bar_floor_tps: float | None,
                    energy_j: float | None = None, throttle_events: int = 0, complete: bool = True,
                    tokens: int | None = None) -> Verdict:
    """The verdict of a run from its decode intervals (monotonic seconds) and per-request TTFTs.

    `tokens` is every token generated (intervals plus each request's first token), for tokens per joule.
    """
    rates = DecodeRates(intervals)
    first = rates.first_start if rates.first_start is not None else start
    burst = rates.rate(first, min(first + BURST_S, end + 1e-9))
    floor, floor_at, window = rates.floor(start, end + 1e-9)
    tokens = len(rates) if tokens is None else tokens
    passed = None if floor is None or bar_floor_tps is None else floor >= bar_floor_tps
    tpj = tokens / energy_j if energy_j and energy_j > 0 and tokens else None
    return Verdict(
        complete=complete,
        duration_s=round(end - start, 2),
        requests=requests,
        errors=errors,
        decode_tokens=tokens,
        burst_tps=_r(burst),
        floor_tps=_r(floor),
        floor_at_s=_r(floor_at - start) if floor_at is not None else None,
        floor_window_s=round(window, 2),
        p95_ttft_ms=_r(percentile(ttfts_ms, 95)),
        energy_j=_r(energy_j),
        tokens_per_joule=_r(tpj, 3),
        throttle_events=throttle_events,
        bar_floor_tps=bar_floor_tps,
        passed=passed,
    )


def _r(v: float | None, nd: int = 2) -> float | None:
    return round(v, nd) if v is not None else None
