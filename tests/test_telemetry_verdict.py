"""Verdict math: decode-rate windows, burst (first 20 s), floor (lowest 30 s), p95 TTFT, tokens per joule."""

from __future__ import annotations

import pytest

from edgetui.telemetry.verdict import DecodeRates, compute_verdict


def tokens(start: float, end: float, tps: float) -> list[tuple[float, float]]:
    """Decode intervals of a steady stream at `tps` between start and end."""
    out, t, dt = [], start, 1.0 / tps
    while t + dt <= end + 1e-9:
        out.append((t, t + dt))
        t += dt
    return out


def test_rate_counts_intervals_over_their_own_duration_so_gaps_do_not_dilute_it():
    iv = tokens(0, 2, 50) + tokens(5, 7, 50)  # a 3-second gap between two requests
    rates = DecodeRates(iv)
    assert rates.rate(0, 10) == pytest.approx(50)
    assert rates.rate(3, 4.5) is None  # nothing decoded there


def test_floor_is_the_lowest_30_second_window_and_burst_the_first_20_seconds():
    iv = tokens(0, 60, 80) + tokens(60, 90, 40) + tokens(90, 120, 70)  # throttled from 60 s to 90 s
    v = compute_verdict(iv, 0, 120, ttfts_ms=[100] * 19 + [900], requests=20, errors=0, bar_floor_tps=45,
                        energy_j=1000.0, throttle_events=1)
    assert v.burst_tps == pytest.approx(80, rel=1e-3)
    assert v.floor_tps == pytest.approx(40, rel=1e-3) and v.floor_at_s == pytest.approx(60, abs=1)
    assert v.floor_window_s == 30
    assert v.p95_ttft_ms == pytest.approx(140)  # interpolated like the eval gate's p95
    assert v.decode_tokens == len(iv)
    assert v.tokens_per_joule == pytest.approx(len(iv) / 1000, rel=1e-3)
    assert v.passed is False and v.label == "FAIL"
    assert compute_verdict(iv, 0, 120, [], 20, 0, bar_floor_tps=40).passed is True


def test_run_shorter_than_the_windows_uses_the_whole_run():
    iv = tokens(0, 12, 60)
    v = compute_verdict(iv, 0, 12, [200], 3, 0, bar_floor_tps=30, complete=False)
    assert v.burst_tps == pytest.approx(60) and v.floor_tps == pytest.approx(60)
    assert v.floor_window_s == pytest.approx(12)
    assert v.label == "PASS (incomplete)"


def test_no_decoding_no_energy_no_bar_gives_none_not_a_crash():
    v = compute_verdict([], 0, 5, [], 0, 0, bar_floor_tps=None, energy_j=None)
    assert (v.burst_tps, v.floor_tps, v.p95_ttft_ms, v.tokens_per_joule, v.passed) == (None,) * 5
    assert v.label == "no verdict"
