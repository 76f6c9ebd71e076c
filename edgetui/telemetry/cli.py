"""CLI commands of the telemetry part (registered on the root app by edgetui/cli.py).

- `edgetui telemetry [--watch]`: the sensors now, or one vmstat-like line per interval;
- `edgetui bench sustained`: the sustained run (exit 0 when the floor holds, 1 when not or interrupted).

`bench_app` is the `bench` sub-app; other parts add their benchmarks to it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on this device (sustained runs).")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.command("telemetry")(telemetry)
    app.add_typer(bench_app, name="bench")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def telemetry(
    watch: bool = typer.Option(False, "--watch", "-w", help="Print one line per interval until Ctrl+C."),
    interval: float = typer.Option(1.0, "--interval", "-i", min=0.1, help="Seconds between lines."),
    count: int = typer.Option(0, "--count", "-c", min=0, help="Stop after N lines (0: never)."),
    as_json: bool = typer.Option(False, "--json", help="JSON: one object, or one per line with --watch."),
) -> None:
    """Show the device's sensors; tokens/s and TTFT come from a sustained run sampling in another process."""
    from edgetui.config import ConfigError, paths
    from edgetui.telemetry.sample import WATCH_HEADER, watch_line
    from edgetui.telemetry.sampler import Sampler
    from edgetui.telemetry.storage import TelemetryStore

    try:
        store = TelemetryStore.open(paths().ensure().db)
    except ConfigError as e:
        _fail(str(e))
    sampler = Sampler(hz=0)
    sampler.sample_once()  # rates (CPU load, power) need a first reading
    lines = 0
    try:
        while True:
            time.sleep(interval if watch else min(interval, 0.5))
            s = _with_engine_values(sampler.sample_once(), store, interval)
            if as_json:
                typer.echo(json.dumps(s.to_dict()))
            elif not watch:
                typer.echo(_describe(s))
            else:
                if lines % 20 == 0:
                    typer.echo(WATCH_HEADER)
                typer.echo(watch_line(s))
            lines += 1
            sys.stdout.flush()
            if not watch or (count and lines >= count):
                break
    except KeyboardInterrupt:
        pass
    finally:
        sampler.stop()


def _with_engine_values(s, store, interval: float):
    """tok/s and TTFT of a run sampling in another process (its newest sample, if fresh)."""
    from dataclasses import replace

    latest = store.latest_sample()
    if latest is not None and latest.tps is not None and s.t - latest.t <= max(2.0, 2 * interval):
        return replace(s, tps=latest.tps, ttft_ms=latest.ttft_ms, engine_rss_mb=latest.engine_rss_mb)
    return s


def _describe(s) -> str:
    from edgetui.telemetry.sample import ghz, na

    temps = "  ".join(f"{k} {na(v, '.1f', '°C')}" for k, v in (s.temps or {}).items())
    lines = [f"temperatures  {temps or 'n/a'}",
             f"cpu           {na(s.cpu_util, '.0f', '%')} load, {ghz(s.freq_mhz)}/{ghz(s.freq_max_mhz)} GHz "
             f"(per core: {' '.join(ghz(f) for f in s.core_freq_mhz) or 'n/a'})",
             f"memory        {na(s.mem_avail_mb, '.0f', ' MB')} available of {na(s.mem_total_mb, '.0f', ' MB')}",
             f"power         {na(s.power_w, '.1f', ' W')} (RAPL package)",
             f"battery       {na(s.battery_pct, '.0f', '%')} {s.battery_status or ''}".rstrip()]
    for g in s.gpus:
        lines.append(f"gpu{g['index']}          {g['name']}: {na(g['temp_c'])}°C {na(g['power_w'])} W "
                     f"{na(g['sm_mhz'], '.0f')} MHz {na(g['util_pct'], '.0f')}%")
    if not s.gpus:
        lines.append("gpu           n/a")
    lines.append(f"throttling    {'; '.join(s.throttle) or 'none'}")
    return "\n".join(lines)


@bench_app.command("sustained")
def sustained(
    minutes: float = typer.Option(None, "--minutes", "-m", min=0.05, help="Run length (default 10 minutes)."),
    requests: int = typer.Option(None, "--requests", "-r", min=1, help="Stop after N requests."),
    golden: Path = typer.Option(None, "--golden", help="Golden-set JSONL (default: the bundle's newest)."),
    prom: Path = typer.Option(None, "--prom", help="Also write the Prometheus textfile here."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as one JSON object."),
) -> None:
    """Golden-set questions round-robin through the assistant; verdict: burst, floor, p95 TTFT vs the bar."""
    from edgetui.config import ConfigError
    from edgetui.engine.base import EngineError
    from edgetui.ota.store import StoreError
    from edgetui.session import Session
    from edgetui.telemetry.export import export_run
    from edgetui.telemetry.run import SustainedRun, WorkloadError, assistant_workload, golden_questions
    from edgetui.telemetry.storage import TelemetryStore

    try:
        session = Session.open()
        p, bundle = session.paths, session.bundle
        questions = golden_questions(golden, bundle.name)
        engine = session.engine
        engine.start()
    except (ConfigError, StoreError, WorkloadError, EngineError) as e:
        _fail(str(e))
    store = TelemetryStore.open(p.db)
    sampler = session.sampler
    sampler.attach(engine)
    sampler.start()
    last_line = [0.0]

    def progress(pr) -> None:
        if pr.elapsed_s - last_line[0] >= 10 or pr.fraction == 1.0:
            last_line[0] = pr.elapsed_s
            s = sampler.latest
            typer.echo(f"{pr.elapsed_s:6.0f} s  {pr.requests:4d} req  "
                       f"{watch_cols(s) if s else ''}", err=True)

    try:
        run = SustainedRun(assistant_workload(bundle, engine), questions, store, sampler, engine,
                           bundle_ref=bundle.ref, bar_floor_tps=bundle.bars.get("sustained_floor_tps"),
                           minutes=minutes, max_requests=requests, on_progress=progress)
        typer.echo(f"sustained run on {bundle.ref}: {_budget(run)}; "
                   "Ctrl+C stops it (what it recorded is kept, marked incomplete)", err=True)
        result = run.run()
    except WorkloadError as e:
        _fail(str(e))
    finally:
        session.close()  # the sampler, the engine child and the database
    exports = export_run(store, result.run_id, p.exports, prom)
    v = result.verdict
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "bundle": bundle.ref, "exports": exports}, indent=1))
    else:
        typer.echo(summary_text(result, bundle.ref))
        typer.echo(f"exports: {exports['json']} (+ CSV, Prometheus textfile {exports['prometheus']})")
    raise typer.Exit(0 if v.complete and v.passed else 1)


def watch_cols(s) -> str:
    from edgetui.telemetry.sample import ghz, na

    return (f"{na(s.tps)} tok/s  {na(s.hottest_c)}°C  {ghz(s.freq_mhz)} GHz  {na(s.power_w)} W"
            + (f"  THROTTLE {'; '.join(s.throttle)}" if s.throttle else ""))


def _budget(run) -> str:
    parts = []
    if run.minutes:
        parts.append(f"{run.minutes:g} min")
    if run.max_requests:
        parts.append(f"{run.max_requests} requests")
    return " or ".join(parts)


def summary_text(result, bundle_ref: str) -> str:
    from edgetui.telemetry.sample import na

    v = result.verdict
    lines = [
        f"run {result.run_id} · {bundle_ref} · {v.duration_s:.0f} s · {v.requests} requests"
        + (f" · {v.errors} errors" if v.errors else ""),
        f"burst {na(v.burst_tps)} tok/s · floor {na(v.floor_tps)} tok/s ({v.floor_window_s:.0f} s window) · "
        f"bar {na(v.bar_floor_tps, 'g')} · p95 TTFT {na(v.p95_ttft_ms, '.0f')} ms",
        f"tokens/J {na(v.tokens_per_joule, '.2f')} · throttle events {v.throttle_events}",
        f"verdict: {v.label}" + (f" — {result.reason}" if result.reason else ""),
    ]
    return "\n".join(lines)
