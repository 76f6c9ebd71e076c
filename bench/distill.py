"""Teacher vs distilled students, side by side: p95 TTFT, decode tok/s, model size, engine peak RSS.

Every bundle gets its own engine child (llama.cpp or onnxruntime, as its manifest says); requests
alternate between bundles so the shared machine's noise hits all of them alike. Prompts are built
like production's (the assistant's retriever and template render) from section-summary questions
unlike any golden-set question; answers are greedy and unconstrained, capped at --max-tokens.

    .venv/bin/python bench/distill.py BUNDLE_DIR [BUNDLE_DIR ...] [--prompts 14] [--max-tokens 64] [--json]
The first bundle is the reference (ratios are against it).

`--quality` also runs the golden set on every bundle and scores it with the evals part's scorer. It asks
through the assistant's pipeline when that is installed; until then through a stand-in with the same
steps (retrieve 3 sections, render the bundle template, quote grammar, parse quotes and ids), so
teacher and students are compared on identical prompts either way.
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


def make_ask(bundle: Bundle, eng: ProcessEngine):
    """question -> (answer text, cited ids, abstained, confidential, stats)."""
    try:
        from edgetui.assistant.pipeline import Assistant
    except ImportError:
        Assistant = None
    if Assistant is not None:
        a = Assistant(bundle, eng)

        def ask(q: str):
            r = a.ask(q)
            get = (lambda k, d=None: r.get(k, d)) if isinstance(r, dict) else (lambda k, d=None: getattr(r, k, d))
            return get("answer", ""), tuple(get("citations", ()) or ()), bool(get("abstained", False)), \
                bool(get("confidential", False)), dict(get("stats", {}) or {})
        return ask
    from edgetui.assistant.index import Retriever
    from edgetui.assistant.prompt import ABSTAIN_TEXT, parse_quotes, quote_grammar, render

    retriever = Retriever.in_memory(bundle.corpus_dir)
    max_tokens = int(bundle.runtime.get("max_tokens", 96))

    def ask(q: str):
        secs = [h.section for h in retriever.search(q, 3)[0]]
        grammar = quote_grammar(secs) if bundle.runtime.get("engine", "llama") == "llama" else None
        text, st = eng.complete(render(bundle.template, secs, q), GenParams(max_tokens=max_tokens, grammar=grammar))
        _, quotes = parse_quotes(text)
        ids = tuple(dict.fromkeys(i for i, _ in quotes))
        by_id = {s.id: s for s in secs}
        conf = any(by_id[i].confidential for i in ids if i in by_id)
        return text, ids, ABSTAIN_TEXT.lower() in text.lower() and not ids, conf, st.to_dict()
    return ask


def quality(bundles: list[Bundle], engines: list[ProcessEngine], golden_path: Path) -> list[dict]:
    from edgetui.evals.golden import load_golden
    from edgetui.evals.scoring import score_case

    golden = load_golden(golden_path)
    asks = [make_ask(b, e) for b, e in zip(bundles, engines, strict=True)]
    per: list[dict[str, list[bool]]] = [{} for _ in bundles]
    for case in golden.cases:
        for i, ask in enumerate(asks):
            text, ids, abstained, conf, _ = ask(case.question)
            per[i].setdefault(case.slice, []).append(score_case(case, text, ids, abstained, conf).passed)
    out = []
    for b, slices in zip(bundles, per, strict=True):
        allp = [x for v in slices.values() for x in v]
        out.append({"bundle": b.ref, "quality": round(sum(allp) / len(allp), 3),
                    "slices": {k: round(sum(v) / len(v), 2) for k, v in sorted(slices.items())}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--prompts", type=int, default=14)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quality", type=Path, default=None, metavar="GOLDEN_JSONL",
                    help="also score the golden set on every bundle")
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
        q = quality(bundles, engines, a.quality) if a.quality else []
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
    for o, qi in zip(out, q, strict=False):
        o.update(qi)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print("| bundle | engine | quality | model MB | p95 TTFT ms | decode tok/s | × ref | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for o in out:
        print(f"| {o['bundle']} | {o['engine']} | {o.get('quality', '—')} | {o['model_mb']} | {o['p95_ttft_ms']} | "
              f"{o['decode_tps']} | {o['decode_vs_ref']} | {o['peak_rss_mb']} |")
    for o in out:
        if "slices" in o:
            print(f"{o['bundle']}: " + ", ".join(f"{k} {v}" for k, v in o["slices"].items()))


if __name__ == "__main__":
    main()
