"""Assistant benchmark over the public golden set.

    .venv/bin/python bench/assistant.py                       # retrieval + the default mode with the model
    .venv/bin/python bench/assistant.py --no-model            # retrieval only (seconds)
    .venv/bin/python bench/assistant.py --modes quote,model_quote,free --json out.json

Measures (targets from issue 4):
- retrieval recall@3 of the expected citations on answerable cases (≥ 0.90), and its latency p95 over
  every question, first pass included (≤ 10 ms);
- with the model, per question through the production pipeline (prefix warmed once, as the chat screen
  does at start): the fraction of prompt tokens recomputed (≤ 0.6, mean over generated answers) and the
  TTFT breakdown gate + retrieval + engine prompt eval, with end-to-end TTFT / engine prompt-eval time
  (≤ 1.10, median and p95);
- per answer mode, the golden pass rate with the evals scorer (facts, citations, abstain, confidential,
  forbid), so quote selection and free generation are compared on the same questions.

The golden questions are only asked, never put into prompts or examples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def retrieval_bench(golden, corpus_dir: Path, index_path: Path | None, k: int, reps: int) -> dict:
    from edgetui.assistant.gate import strip_instructions
    from edgetui.assistant.index import Retriever

    t = time.perf_counter()
    r = Retriever.open(index_path, corpus_dir)
    open_ms = (time.perf_counter() - t) * 1000
    answerable = [c for c in golden.cases if not c.abstain]
    found = total = full = 0
    misses = []
    lat: list[float] = []
    for rep in range(reps):
        for c in golden.cases:
            hits, _, ms = r.search(strip_instructions(c.question) or c.question, k)
            lat.append(ms)
            if rep == 0 and not c.abstain:
                ids = [h.id for h in hits]
                got = sum(1 for e in c.citations if e in ids)
                found, total, full = found + got, total + len(c.citations), full + (got == len(c.citations))
                if got < len(c.citations):
                    misses.append({"id": c.id, "expected": list(c.citations), "top3": ids})
    return {"index": r.source, "open_ms": round(open_ms, 2), "answerable": len(answerable),
            "recall_at_3": round(found / total, 4), "cases_fully_recalled": round(full / len(answerable), 4),
            "latency_ms": {"p50": round(pct(lat, 0.5), 3), "p95": round(pct(lat, 0.95), 3),
                           "max": round(max(lat), 3), "n": len(lat)},
            "misses": misses}


def model_bench(golden, bundle, engine, mode: str) -> dict:
    from edgetui.assistant.pipeline import Assistant
    from edgetui.evals.scoring import score_case

    a = Assistant(bundle, engine, mode=mode)
    a.warm()
    rows = []
    for c in golden.cases:
        ans = a.ask(c.question)
        sc = score_case(c, ans.answer, ans.citations, ans.abstained, ans.confidential)
        st = ans.stats
        rows.append({"id": c.id, "slice": c.slice, "passed": sc.passed, "failed": list(sc.failed),
                     "abstained": ans.abstained, "gate": ans.gate, "citations": list(ans.citations),
                     "retrieved": [i for i, _ in ans.retrieved], "answer": ans.answer, "stats": st})
        mark = "pass" if sc.passed else "FAIL " + ",".join(sc.failed)
        ttft = f"{st['ttft_ms']:.0f} ms" if st.get("ttft_ms") is not None else "no model"
        print(f"  [{mode}] {c.id:<8} {mark:<26} {ttft}", file=sys.stderr, flush=True)
    gen = [r["stats"] for r in rows if r["stats"].get("ttft_ms") is not None and r["stats"].get("prompt_ms")]
    frac = [s["prompt_recomputed"] / s["prompt_tokens"] for s in gen if s["prompt_tokens"]]
    ratio = [s["ttft_ms"] / s["prompt_ms"] for s in gen]
    slices: dict[str, list[bool]] = {}
    for r in rows:
        slices.setdefault(r["slice"], []).append(r["passed"])
    answerable = [r for r in rows if not next(c for c in golden.cases if c.id == r["id"]).abstain]
    return {
        "mode": mode, "cases": len(rows), "pass_rate": round(sum(r["passed"] for r in rows) / len(rows), 4),
        "answerable_pass_rate": round(sum(r["passed"] for r in answerable) / len(answerable), 4),
        "slices": {k: f"{sum(v)}/{len(v)}" for k, v in slices.items()},
        "generated": len(gen),
        "recomputed_fraction_mean": round(statistics.fmean(frac), 4) if frac else None,
        "recomputed_fraction_max": round(max(frac), 4) if frac else None,
        "prompt_tokens_median": statistics.median(s["prompt_tokens"] for s in gen) if gen else None,
        "gate_ms_p50": round(pct([s["gate_ms"] for s in gen], 0.5), 3) if gen else None,
        "retrieval_ms_p50": round(pct([s["retrieval_ms"] for s in gen], 0.5), 3) if gen else None,
        "engine_prompt_ms_p50": round(pct([s["prompt_ms"] for s in gen], 0.5), 1) if gen else None,
        "ttft_ms_p50": round(pct([s["ttft_ms"] for s in gen], 0.5), 1) if gen else None,
        "ttft_ms_p95": round(pct([s["ttft_ms"] for s in gen], 0.95), 1) if gen else None,
        "ttft_over_prompt_eval_p50": round(pct(ratio, 0.5), 4) if ratio else None,
        "ttft_over_prompt_eval_p95": round(pct(ratio, 0.95), 4) if ratio else None,
        "decode_tps_p50": round(pct([s["decode_tps"] or 0 for s in gen], 0.5), 1) if gen else None,
        "rows": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--golden", type=Path, default=REPO / "golden_sets" / "field-policy" / "v1.jsonl")
    ap.add_argument("--modes", default="quote", help="answer modes to run with the model, comma-separated")
    ap.add_argument("--no-model", action="store_true", help="retrieval only")
    ap.add_argument("--reps", type=int, default=5, help="retrieval passes over the golden questions")
    ap.add_argument("--json", type=Path, help="write every number (and per-case rows) here")
    args = ap.parse_args()

    from edgetui.config import paths
    from edgetui.evals.golden import load_golden
    from edgetui.session import active_bundle, engine_log

    golden = load_golden(args.golden)
    bundle = active_bundle()
    out: dict = {"bundle": bundle.ref, "golden": f"{golden.name}@{golden.version}",
                 "template_sha256": bundle.template_sha256}
    ret = retrieval_bench(golden, bundle.corpus_dir, bundle.index_path, int(bundle.runtime.get("top_k_sections", 3)),
                          args.reps)
    out["retrieval"] = ret
    print(f"retrieval ({ret['index']} index): recall@3 {ret['recall_at_3']:.3f} on {ret['answerable']} answerable "
          f"cases (target ≥ 0.90), all expected in top 3 for {ret['cases_fully_recalled']:.3f}; latency p50 "
          f"{ret['latency_ms']['p50']:.2f} ms, p95 {ret['latency_ms']['p95']:.2f} ms (target ≤ 10 ms), "
          f"max {ret['latency_ms']['max']:.2f} ms over {ret['latency_ms']['n']}")
    for m in ret["misses"]:
        print(f"  miss {m['id']}: expected {m['expected']} top3 {m['top3']}")
    if not args.no_model:
        engine = bundle.engine(engine_log(paths()))
        engine.start()
        try:
            out["modes"] = {}
            for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                r = model_bench(golden, bundle, engine, mode)
                out["modes"][mode] = r
                print(f"mode {mode}: pass {r['pass_rate']:.3f} ({r['answerable_pass_rate']:.3f} of answerable) "
                      f"slices {r['slices']}")
                print(f"  {r['generated']} generated: recomputed fraction mean {r['recomputed_fraction_mean']} "
                      f"(max {r['recomputed_fraction_max']}, target ≤ 0.6); median prompt {r['prompt_tokens_median']} "
                      f"tok; TTFT p50 {r['ttft_ms_p50']} ms = gate {r['gate_ms_p50']} + retrieval "
                      f"{r['retrieval_ms_p50']} + engine prompt eval {r['engine_prompt_ms_p50']} ms; "
                      f"TTFT / prompt eval p50 {r['ttft_over_prompt_eval_p50']} p95 {r['ttft_over_prompt_eval_p95']} "
                      f"(target ≤ 1.10); decode {r['decode_tps_p50']} tok/s", flush=True)
                if args.json:  # after every mode, so a long run that is stopped keeps what it measured
                    args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        finally:
            engine.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
