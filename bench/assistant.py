"""Assistant benchmark: the dev set (ours, the tuning set), the public golden set (a report) and our validation
sets (val.jsonl and val2.jsonl, each by its own writer, independently of dev, of each other and of the alias and
near-miss questions, never fitted on; the estimate of how the assistant does on a technician's new wording), side by
side.

    .venv/bin/python bench/assistant.py                 # without and with the model, dev + public + val + val2
    .venv/bin/python bench/assistant.py --no-model      # retrieval + intent gate + quote selection only
    .venv/bin/python bench/assistant.py --json out.json # every number and per-case rows

Prints, per set and per arm (without the model: retrieval and quote selection alone; with the model: the
production pipeline, lead included):
- quality with the evals scorer, overall and per slice, each with its 95% Wilson interval;
- abstention precision and recall (an abstention is "positive");
- hybrid retrieval: recall@3 of the expected citations on answerable cases, and latency per question
  (encoder + BM25 + fusion) p50/p95 over every question;
- with the model: the share of answered questions that show a lead and the wrong leads (failing the
  scorer's `lead` check), first words on screen (`first_token_ms`: the quotes) and the complete answer
  (`answer_ms`) p50/p95, the model's TTFT p50/p95, and decode tok/s.

The golden questions are only asked, never put into prompts or examples; nothing here is fitted (the fit
is bench/fit_assistant.py, on dev only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgetui.assistant.pipeline import Assistant  # noqa: E402
from edgetui.evals.golden import load_golden  # noqa: E402
from edgetui.evals.scoring import score_case  # noqa: E402
from edgetui.evals.stats import percentile  # noqa: E402
from edgetui.ota.bundle import Bundle  # noqa: E402

SETS = {"dev": REPO / "golden_sets" / "field-policy" / "dev.jsonl",
        "public": REPO / "golden_sets" / "field-policy" / "v1.jsonl",
        "val": REPO / "golden_sets" / "field-policy" / "val.jsonl",
        "val2": REPO / "golden_sets" / "field-policy" / "val2.jsonl"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a pass rate k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def fmt(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} {k / n:.3f} [{lo:.2f}, {hi:.2f}]" if n else "0/0"


def run_arm(assistant: Assistant, golden) -> dict:
    rows = []
    for c in golden.cases:
        ans = assistant.ask(c.question)
        sc = score_case(c, ans.answer, ans.citations, ans.abstained, ans.confidential)
        rows.append({"id": c.id, "slice": c.slice, "passed": sc.passed, "failed": list(sc.failed),
                     "reasons": list(sc.reasons), "confidential": ans.confidential,
                     "expect_abstain": c.abstain, "abstained": ans.abstained, "gate": ans.gate,
                     "citations": list(ans.citations), "expected": list(c.citations),
                     "retrieved": [i for i, _ in ans.retrieved], "lead": ans.lead, "answer": ans.answer,
                     "stats": ans.stats})
    return summarize(rows)


def summarize(rows: list[dict]) -> dict:
    n, k = len(rows), sum(r["passed"] for r in rows)
    slices: dict[str, list[bool]] = {}
    for r in rows:
        slices.setdefault(r["slice"], []).append(r["passed"])
    tp = sum(r["abstained"] and r["expect_abstain"] for r in rows)
    fp = sum(r["abstained"] and not r["expect_abstain"] for r in rows)
    fn = sum(not r["abstained"] and r["expect_abstain"] for r in rows)
    answerable = [r for r in rows if not r["expect_abstain"]]
    found = sum(sum(e in r["retrieved"][:3] for e in r["expected"]) for r in answerable if r["gate"] is None)
    total = sum(len(r["expected"]) for r in answerable if r["gate"] is None)
    lat = [r["stats"]["retrieval_ms"] for r in rows if r["stats"].get("retrieval_ms")]
    gen = [r["stats"] for r in rows if r["stats"].get("ttft_ms") is not None]
    answered = [r for r in rows if not r["abstained"]]
    out = {"quality": round(k / n, 4), "passed": k, "cases": n, "interval": [round(x, 4) for x in wilson(k, n)],
           "slices": {s: {"passed": sum(v), "cases": len(v), "interval": [round(x, 4) for x in wilson(sum(v), len(v))]}
                      for s, v in slices.items()},
           "abstain_precision": round(tp / (tp + fp), 4) if tp + fp else None,
           "abstain_recall": round(tp / (tp + fn), 4) if tp + fn else None,
           "recall_at_3": round(found / total, 4) if total else None,
           "retrieval_ms_p50": round(percentile(lat, 50), 3) if lat else None,
           "retrieval_ms_p95": round(percentile(lat, 95), 3) if lat else None,
           "leads_shown": round(sum(bool(r["lead"]) for r in answered) / len(answered), 4) if answered else None,
           "wrong_leads": sum("lead" in r["failed"] for r in rows),
           "rows": rows}
    shown = [r["stats"] for r in rows if r["stats"].get("first_token_ms") is not None and not r["abstained"]]
    if gen and shown:
        out["first_ms_p50"] = round(percentile([s["first_token_ms"] for s in shown], 50), 1)
        out["first_ms_p95"] = round(percentile([s["first_token_ms"] for s in shown], 95), 1)
        out["answer_ms_p50"] = round(percentile([s["answer_ms"] for s in shown], 50), 1)
        out["answer_ms_p95"] = round(percentile([s["answer_ms"] for s in shown], 95), 1)
    if gen:
        out["ttft_ms_p50"] = round(percentile([s["ttft_ms"] for s in gen], 50), 1)
        out["ttft_ms_p95"] = round(percentile([s["ttft_ms"] for s in gen], 95), 1)
        out["decode_tps_p50"] = round(percentile([s["decode_tps"] or 0 for s in gen], 50), 1)
    return out


def show(name: str, arm: str, r: dict) -> None:
    print(f"{name:<7} {arm:<13} quality {fmt(r['passed'], r['cases'])}  abstain P {r['abstain_precision']} "
          f"R {r['abstain_recall']}  recall@3 {r['recall_at_3']}  retrieval p50 {r['retrieval_ms_p50']} "
          f"p95 {r['retrieval_ms_p95']} ms  leads shown {r['leads_shown']} wrong {r['wrong_leads']}"
          + (f"\n          answered: first words p50 {r.get('first_ms_p50')} p95 {r.get('first_ms_p95')} ms, complete "
             f"p50 {r.get('answer_ms_p50')} p95 {r.get('answer_ms_p95')} ms; model TTFT p50 {r['ttft_ms_p50']} p95 "
             f"{r['ttft_ms_p95']} ms; decode {r['decode_tps_p50']} tok/s" if "ttft_ms_p50" in r else ""))
    for s, v in r["slices"].items():
        print(f"          {s:<14} {fmt(v['passed'], v['cases'])}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-model", action="store_true", help="only the arm without the model")
    ap.add_argument("--bundle", type=Path, help="a built bundle directory (default: the active bundle)")
    ap.add_argument("--sets", default="dev,public,val,val2")
    ap.add_argument("--json", type=Path, help="write every number (and per-case rows) here")
    args = ap.parse_args()

    from edgetui.config import paths
    from edgetui.session import active_bundle, engine_log

    bundle = Bundle.open(args.bundle) if args.bundle else active_bundle()
    out: dict = {"bundle": bundle.ref, "template_sha256": bundle.template_sha256, "sets": {}}
    sets = {k: load_golden(SETS[k]) for k in args.sets.split(",")}
    t = time.perf_counter()
    bare = Assistant(bundle, None)
    out["open_ms"] = round((time.perf_counter() - t) * 1000, 1)
    for name, g in sets.items():
        bare.ask(g.cases[0].question)  # first call loads onnxruntime's kernels: not a question's latency
        out["sets"].setdefault(name, {})["without_model"] = r = run_arm(bare, g)
        show(name, "without model", r)
    if not args.no_model:
        engine = bundle.engine(engine_log(paths()))
        engine.start()
        try:
            a = Assistant(bundle, engine)
            a.warm()
            for name, g in sets.items():
                out["sets"][name]["with_model"] = r = run_arm(a, g)
                show(name, "with model", r)
                if args.json:
                    args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        finally:
            engine.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
