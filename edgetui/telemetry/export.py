"""Exports of a sustained run: JSON (everything), CSV (samples, requests) and a Prometheus textfile
(node_exporter's textfile collector: gauges written by prometheus_client, atomically by rename)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from edgetui.telemetry.storage import TelemetryRun, TelemetryStore

SAMPLE_COLUMNS = ["t", "run_id", "tps", "ttft_ms", "hottest_c", "hottest_zone", "cpu_util", "freq_mhz",
                  "freq_max_mhz", "engine_rss_mb", "mem_avail_mb", "power_w", "energy_j", "battery_pct", "throttle"]
REQUEST_COLUMNS = ["seq", "t", "question", "ttft_ms", "decode_tps", "decode_tokens", "prompt_tokens", "error"]

# (metric, verdict field, help). Values that are None are left out, as node_exporter expects.
# `last_run` is not a verdict field: the run's end (or start) as epoch seconds.
PROM_METRICS = [
    ("edgetui_sustained_burst_tps", "burst_tps", "Decode tokens/s, first 20 s of decoding of the last sustained run."),
    ("edgetui_sustained_floor_tps", "floor_tps", "Lowest 30-second decode tokens/s of the last sustained run."),
    ("edgetui_sustained_bar_floor_tps", "bar_floor_tps", "The bundle's sustained floor bar in tokens/s."),
    ("edgetui_sustained_p95_ttft_seconds", "p95_ttft_ms", "p95 time to first token of the last sustained run."),
    ("edgetui_sustained_tokens_per_joule", "tokens_per_joule", "Generated tokens per joule of package energy."),
    ("edgetui_sustained_throttle_events", "throttle_events", "Throttle events during the last sustained run."),
    ("edgetui_sustained_requests", "requests", "Requests served by the last sustained run."),
    ("edgetui_sustained_duration_seconds", "duration_s", "Duration of the last sustained run."),
    ("edgetui_sustained_pass", "passed", "1 when the floor held the bar, 0 when it did not."),
    ("edgetui_sustained_complete", "complete", "1 when the last sustained run ran to its end."),
    ("edgetui_sustained_last_run_timestamp_seconds", "last_run", "When the last sustained run ended."),
]


def run_document(store: TelemetryStore, run_id: int) -> dict:
    """The whole run as plain data: run row with verdict, per-request stats, throttle events, samples."""
    run = store.run(run_id)
    if run is None:
        raise KeyError(f"no sustained run {run_id}")
    return {
        "run": run.to_dict(),
        "requests": store.requests(run_id),
        "throttle_events": [e.to_dict() for e in store.events_between(run.started, run.ended or time.time())],
        "samples": [s.to_dict() for s in store.samples(run_id)],
    }


def write_samples_csv(store: TelemetryStore, run_id: int, path: Path) -> Path:
    samples = store.samples(run_id)
    zones = sorted({z for s in samples for z in (s.temps or {})})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SAMPLE_COLUMNS + [f"temp_c:{z}" for z in zones])
        for s in samples:
            d = s.to_dict()
            d["throttle"] = "; ".join(s.throttle)
            w.writerow([_cell(d[c]) for c in SAMPLE_COLUMNS] + [_cell((s.temps or {}).get(z)) for z in zones])
    return path


def write_requests_csv(store: TelemetryStore, run_id: int, path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(REQUEST_COLUMNS)
        for r in store.requests(run_id):
            w.writerow([_cell(r[c]) for c in REQUEST_COLUMNS])
    return path


def prometheus_registry(run: TelemetryRun) -> CollectorRegistry:
    """The run's gauges, labelled with its bundle and host."""
    v = {**(run.verdict.to_dict() if run.verdict else {}), "last_run": run.ended or run.started}
    if v.get("p95_ttft_ms") is not None:
        v["p95_ttft_ms"] /= 1000.0  # exported in seconds, as the metric name says
    labels = {"bundle": run.bundle or "", "host": run.host or ""}
    registry = CollectorRegistry()
    for name, key, help_ in PROM_METRICS:
        if v.get(key) is not None:
            Gauge(name, help_, list(labels), registry=registry).labels(**labels).set(v[key])
    return registry


def prometheus_text(run: TelemetryRun) -> str:
    return generate_latest(prometheus_registry(run)).decode()


def write_prometheus(run: TelemetryRun, path: Path) -> Path:
    """Write atomically (temp file + rename in the same directory) so a scrape never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), prometheus_registry(run))
    return path


def export_run(store: TelemetryStore, run_id: int, out_dir: Path, prom_path: Path | None = None) -> dict[str, str]:
    """Write every export of a run into `out_dir`; return {kind: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"sustained-{run_id}"
    doc = run_document(store, run_id)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(doc, indent=1, default=list) + "\n")
    paths = {
        "json": json_path,
        "samples_csv": write_samples_csv(store, run_id, Path(f"{stem}-samples.csv")),
        "requests_csv": write_requests_csv(store, run_id, Path(f"{stem}-requests.csv")),
        "prometheus": write_prometheus(store.run(run_id), prom_path or out_dir / "edgetui_sustained.prom"),
    }
    return {k: str(v) for k, v in paths.items()}


def _cell(v):
    return "" if v is None else v
