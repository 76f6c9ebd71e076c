"""The KV state cache side by side with the full-recompute path, and grammar decode against plain decode.

    .venv/bin/python bench/kv_cache.py            # 30 dev + 30 public questions that reach the model
    .venv/bin/python bench/kv_cache.py --n 120 --json out.json

Two engine children of the same bundle and threads, one per path, so neither path's KV cache holds the other's
prompts; the questions alternate between them in one run:

- `before`: the path the latency issue was filed against, rebuilt here: the model reads the three
  retrieved sections whole (~185 tokens after the resident instructions), nothing is cached, and the quotes
  reach the screen only with the validated answer (so `first_token_ms` is `answer_ms`);
- `recompute`: the assistant as it was before the cache (quotes first, the model reads only them): the
  engine evaluates every token after what its KV cache still shares with the previous prompt (the static
  instructions);
- `cached cold`: the cache path the first time a prefix (instructions + quoted policy text) is seen: it is
  evaluated and its state saved;
- `cached warm`: the same question asked again after other questions: the prefix's state is restored from
  the cache (RAM, else disk) and only the question's tail is evaluated.

Printed per path: p50/p95 of `first_token_ms` (question received → first characters on screen: the
quotes), `answer_ms` (→ the complete validated answer), the model's TTFT, prompt tokens recomputed, and
quality (the evals scorer) per path; the cache's bytes on disk and the most it held in the engine's RAM
(`cache_ram_bytes` in the stats). Then grammar decode: the production lead grammar against no grammar on
the same prompts and engine (tok/s over the decoded tokens; plain decode runs to `--plain-tokens`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgetui.assistant import prompt  # noqa: E402
from edgetui.assistant.pipeline import Assistant  # noqa: E402
from edgetui.engine.base import GenParams  # noqa: E402
from edgetui.engine.process import ProcessEngine  # noqa: E402
from edgetui.engine.state_cache import SUFFIX  # noqa: E402
from edgetui.evals.golden import load_golden  # noqa: E402
from edgetui.evals.scoring import score_case  # noqa: E402
from edgetui.evals.stats import percentile  # noqa: E402
from edgetui.ota.bundle import Bundle  # noqa: E402

SETS = [REPO / "golden_sets" / "field-policy" / "dev.jsonl", REPO / "golden_sets" / "field-policy" / "v1.jsonl"]
PATHS = ("before", "recompute", "cached cold", "cached warm")


class BeforeIssue12(Assistant):
    """The model reads the retrieved sections whole, as it did when the latency issue was filed."""

    def _shown_sections(self, sections, quotes):
        return sections


def questions(bare: Assistant, n: int) -> list:
    """Up to n/2 cases of each set (dev, public) whose answer goes through the model (not abstained/gated)."""
    out = []
    for path in SETS:
        mine = [c for c in load_golden(path).cases if not (a := bare.ask(c.question)).abstained and a.gate is None]
        out += mine[: n // 2]
    return out


def pcts(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    return f"p50 {percentile(xs, 50):8.1f}  p95 {percentile(xs, 95):8.1f}" if xs else "n/a"


def grammar_vs_plain(engine: ProcessEngine, a: Assistant, cases, plain_tokens: int) -> dict:
    """Decode tok/s under the production lead grammar and without a grammar, same prompts, same engine."""
    grammar, stop = prompt.grammar_for("quote", [], False)
    rates: dict[str, list[float]] = {"grammar": [], "plain": []}
    for c in cases:
        query = a.understand(c.question)[0]
        ev = a.hybrid.search(query, a.top_k)
        text = prompt.render(a.template, [q.section for q in ev.quotes[:1]], query)
        for arm, params in (("grammar", GenParams(max_tokens=96, grammar=grammar, stop=stop)),
                            ("plain", GenParams(max_tokens=plain_tokens))):
            _, st = engine.complete(text, params)
            if st.decode_tokens >= 8:
                rates[arm].append(st.decode_tps)
    return {k: sorted(v)[len(v) // 2] if v else None for k, v in rates.items()} | {"n": len(cases)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="a built bundle directory (default: the active bundle)")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plain-tokens", type=int, default=48)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from edgetui.session import active_bundle

    bundle = Bundle.open(args.bundle) if args.bundle else active_bundle()
    bare = Assistant(bundle, None)
    cases = questions(bare, args.n)
    state_dir = Path(tempfile.mkdtemp(prefix="kv-bench-"))
    spec = replace(bundle.engine_spec(), n_threads=args.threads)
    engines = {"recompute": ProcessEngine(replace(spec, state_dir=None)),
               "cached": ProcessEngine(replace(spec, state_dir=str(state_dir)))}
    rows: dict[str, list] = {p: [] for p in PATHS}
    try:
        assistants = {}
        for name, eng in engines.items():
            eng.start()
            assistants[name] = a = Assistant(bundle, eng)
            a.cache_prefixes = name == "cached"
            a.warm()
        assistants["before"] = before = BeforeIssue12(bundle, engines["recompute"])  # shares the engine
        before.cache_prefixes = False
        for label, path in (("first", ("before", "recompute", "cached cold")), ("again", ("cached warm", "recompute"))):
            for i, c in enumerate(cases):
                order = path if i % 2 == 0 else path[::-1]  # alternate which path goes first
                for p in order:
                    a = assistants[p if p in ("before", "recompute") else "cached"]
                    ans = a.ask(c.question)
                    sc = score_case(c, ans.answer, ans.citations, ans.abstained, ans.confidential)
                    keys = ("first_token_ms", "answer_ms", "ttft_ms", "prompt_tokens", "prompt_recomputed", "cache",
                            "cache_hit", "decode_tps", "cache_ram_bytes")
                    row = {"id": c.id, "pass": sc.passed, "answer": ans.answer, **{k: ans.stats.get(k) for k in keys}}
                    if p == "before":  # the quotes waited for the validated lead
                        row["first_token_ms"] = row["answer_ms"]
                    rows[p].append(row)
            print(f"  pass {label} done", flush=True)
        dec = grammar_vs_plain(engines["recompute"], assistants["recompute"], cases[:20], args.plain_tokens)
    finally:
        for eng in engines.values():
            eng.close()
    disk = sum(f.stat().st_size for f in state_dir.glob(f"*{SUFFIX}"))
    print(f"bundle {bundle.ref}, {len(cases)} questions through the model, threads {args.threads}")
    print(f"{'path':12} {'first_token_ms':>28} {'answer_ms':>28} {'model TTFT ms':>28} recomputed  quality  hits")
    summary = {}
    for p in PATHS:
        r = rows[p]
        rec = sorted(x["prompt_recomputed"] for x in r)
        hits = sum(bool(x["cache_hit"]) for x in r)
        q = sum(x["pass"] for x in r)
        summary[p] = {"first_p95": percentile([x["first_token_ms"] for x in r], 95),
                      "answer_p95": percentile([x["answer_ms"] for x in r], 95),
                      "ttft_p95": percentile([x["ttft_ms"] for x in r if x["ttft_ms"]], 95),
                      "quality": q, "recomputed_p50": rec[len(rec) // 2], "hits": hits}
        print(f"{p:12} {pcts([x['first_token_ms'] for x in r]):>28} {pcts([x['answer_ms'] for x in r]):>28} "
              f"{pcts([x['ttft_ms'] for x in r]):>28} p50 {rec[len(rec) // 2]:4d}  {q:3d}/{len(r)}  {hits}")
    warm = summary["cached warm"]
    for name in ("before", "recompute"):
        base = summary[name]
        print(f"warm vs {name}, p95: model TTFT ×{base['ttft_p95'] / warm['ttft_p95']:.2f}, answer "
              f"×{base['answer_p95'] / warm['answer_p95']:.2f}, "
              f"first token ×{base['first_p95'] / warm['first_p95']:.2f} (targets: first token ×5, answer ×2)")
    first = {x["id"]: x["answer"] for x in rows["recompute"][: len(cases)]}
    print(f"quality: before {summary['before']['quality']}/{len(cases)}, cached warm {warm['quality']}/{len(cases)} "
          "(target: within one case)")
    same = sum(first[x["id"]] == x["answer"] for x in rows["cached warm"])
    print(f"answers identical to the recompute path's: {same}/{len(cases)} (restoring is exact)")
    ram = max((x["cache_ram_bytes"] or 0) for p in ("cached cold", "cached warm") for x in rows[p])
    print(f"cache on disk: {disk / 2**20:.1f} MiB in {len(list(state_dir.glob(f'*{SUFFIX}')))} states; "
          f"in the engine's RAM at most {ram / 2**20:.1f} MiB (budget 64 MiB)")
    if dec["grammar"] and dec["plain"]:
        print(f"decode tok/s over {dec['n']} prompts: grammar {dec['grammar']:.1f}, plain {dec['plain']:.1f}, "
              f"ratio {dec['grammar'] / dec['plain']:.2f} (target >= 0.9)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "decode": dec, "disk": disk}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
