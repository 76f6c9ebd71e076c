"""Numbers over a run's case results: quality per slice and latency statistics. Pure functions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from edgetui.evals.golden import SLICES

MIN_TOKENS_FOR_TPS = 8  # a decode rate over fewer tokens is noise, not speed


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]; None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@dataclass(frozen=True)
class SliceRow:
    slice: str
    cases: int
    passed: int

    @property
    def quality(self) -> float:
        return self.passed / self.cases if self.cases else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "quality": round(self.quality, 4)}


@dataclass(frozen=True)
class Latency:
    p50_ttft_ms: float | None
    p95_ttft_ms: float | None
    median_tps: float | None
    min_tps: float | None
    generations: int  # cases that reached the engine
    gen_s: float  # sum of engine generation times (prompt + decode)

    def to_dict(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def slice_table(results: Iterable[dict]) -> list[SliceRow]:
    """Rows in canonical slice order (unknown slices last), from result dicts with `slice` and `passed`."""
    counts: dict[str, list[int]] = {}
    for r in results:
        c = counts.setdefault(r["slice"], [0, 0])
        c[0] += 1
        c[1] += int(bool(r["passed"]))
    order = [s for s in SLICES if s in counts] + sorted(s for s in counts if s not in SLICES)
    return [SliceRow(s, *counts[s]) for s in order]


def quality(results: Iterable[dict]) -> float:
    rs = list(results)
    return sum(bool(r["passed"]) for r in rs) / len(rs) if rs else 0.0


def latency(results: Iterable[dict]) -> Latency:
    """TTFT percentiles over cases that generated; decode tok/s over cases with enough tokens."""
    rs = list(results)
    ttfts = [r["ttft_ms"] for r in rs if r.get("ttft_ms") is not None]
    tps = [r["decode_tps"] for r in rs
           if r.get("decode_tps") and (r.get("decode_tokens") or 0) >= MIN_TOKENS_FOR_TPS]
    gen_ms = sum(r.get("gen_ms") or 0.0 for r in rs)
    return Latency(
        p50_ttft_ms=percentile(ttfts, 50), p95_ttft_ms=percentile(ttfts, 95),
        median_tps=statistics.median(tps) if tps else None, min_tps=min(tps) if tps else None,
        generations=len(ttfts), gen_s=gen_ms / 1000.0,
    )


def gen_ms_from_stats(stats: dict) -> float | None:
    """Engine generation time of one answer: prompt pass (TTFT) plus decode."""
    if stats.get("gen_ms") is not None:
        return float(stats["gen_ms"])
    ttft = stats.get("ttft_ms")
    if ttft is None:
        return None
    if stats.get("decode_ms") is not None:
        return float(ttft) + float(stats["decode_ms"])
    n, tps = stats.get("decode_tokens") or 0, stats.get("decode_tps") or 0.0
    return float(ttft) + ((n - 1) / tps * 1000.0 if n > 1 and tps > 0 else 0.0)
