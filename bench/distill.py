"""Teacher vs distilled students, side by side: p95 TTFT, decode tok/s, model size, engine peak RSS.

Every bundle gets its own engine child (llama.cpp or onnxruntime, as its manifest says); requests
alternate between bundles so the shared machine's noise hits all of them alike. Prompts are built
like production's (the assistant's retriever and template render) from section-summary questions
unlike any golden-set question; answers are greedy and unconstrained, capped at --max-tokens.

    .venv/bin/python bench/distill.py BUNDLE_DIR [BUNDLE_DIR ...] [--prompts 14] [--max-tokens 64] [--json]
The first bundle is the reference (ratios are against it). Golden-set quality comes from `edgetui eval`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
from dataclasses import replace
from pathlib import Path

import psutil

from edgetui.engine.base import GenParams
from edgetui.engine.process import ProcessEngine
from edgetui.ota.bundle import Bundle

QUESTIONS = [f"Can you summarise section {n} of {doc}?" for doc, n in (
    ("POL-01", 3), ("POL-02", 2), ("POL-03", 4), ("POL-04", 3), ("POL-05", 2), ("POL-06", 3), ("POL-08", 2),
    ("POL-09", 3), ("POL-10", 2), ("POL-11", 2), ("POL-12", 2), ("POL-13", 3), ("POL-14", 2), ("POL-15", 2))]


def prompts(bundle: Bundle, n: int) -> list[str]:
    from edgetui.assistant.index import Retriever
    from edgetui.assistant.prompt import render

    retriever = Retriever.in_memory(bundle.corpus_dir)
    return [render(bundle.template, [h.section for h in retriever.search(q, 3)[0]], q) for q in QUESTIONS[:n]]


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


class PeakRSS:
    """Polls a process's RSS every 20 ms; `peak` is the largest seen."""

    def __init__(self, pid: int):
        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--prompts", type=int, default=14)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bundles = [Bundle.open(p) for p in a.bundles]
    plist = prompts(bundles[0], a.prompts)
    engines, rss, rows = [], [], {b.ref: {"ttft": [], "tps": []} for b in bundles}
    for b in bundles:
        eng = ProcessEngine(replace(b.engine_spec(), n_threads=a.threads))
        eng.start()
        engines.append(eng)
        rss.append(PeakRSS(eng.pid))
    try:
        for p in plist:
            for b, eng in zip(bundles, engines, strict=True):
                _, s = eng.complete(p, GenParams(max_tokens=a.max_tokens))
                rows[b.ref]["ttft"].append(s.ttft_ms)
                if s.decode_tokens >= 8:
                    rows[b.ref]["tps"].append(s.decode_tps)
    finally:
        peaks = [r.stop() for r in rss]
        for eng in engines:
            eng.close()
    out = []
    for b, peak in zip(bundles, peaks, strict=True):
        r = rows[b.ref]
        size = sum(f.size for f in b.manifest.files if f.path.startswith("model/"))
        out.append({"bundle": b.ref, "engine": b.runtime.get("engine", "llama"), "model_mb": round(size / 1e6, 1),
                    "p95_ttft_ms": round(p95(r["ttft"]), 1), "median_ttft_ms": round(statistics.median(r["ttft"]), 1),
                    "decode_tps": round(statistics.median(r["tps"]), 1) if r["tps"] else None,
                    "peak_rss_mb": round(peak / 1e6, 1), "requests": len(r["ttft"])})
    ref = out[0]
    for o in out:
        o["decode_vs_ref"] = round(o["decode_tps"] / ref["decode_tps"], 2) if o["decode_tps"] and ref["decode_tps"] \
            else None
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print("| bundle | engine | model MB | p95 TTFT ms | decode tok/s | × ref | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for o in out:
        print(f"| {o['bundle']} | {o['engine']} | {o['model_mb']} | {o['p95_ttft_ms']} | {o['decode_tps']} | "
              f"{o['decode_vs_ref']} | {o['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
