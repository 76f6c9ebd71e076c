"""OTA: verification throughput vs `sha256sum`, and rollback time for a big vs a small bundle.

1. Verify: one ~100 MB random file in a bundle directory; `verify_files` (what `edgetui bundle
   verify` runs) against `sha256sum` on the same file, page cache warm, alternating repetitions.
   Target: throughput ratio (ours / sha256sum) >= 0.9.
2. Rollback: two stores whose rollback target holds a ~1 GB and a ~10 MB payload (sparse files,
   same file count); `Ota.rollback()` timed, the pointer and STATE restored between repetitions.
   Target: time ratio (1 GB / 10 MB) <= 1.5, i.e. a pointer swap, not a copy.

    .venv/bin/python bench/ota.py [--reps 7] [--verify-mb 100] [--big-mb 1024] [--small-mb 10] [--json]

Everything is created under a temporary directory in /tmp and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from edgetui.config import Paths
from edgetui.ota.manager import Ota
from edgetui.ota.manifest import Manifest, entry_for, verify_files
from edgetui.ota.store import State, Store

CLOCK = "2026-01-01T00:00:00+00:00"


def write_random(path: Path, mb: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))


def bundle_dir(root: Path, version: str, payload_mb: int, sparse: bool = True) -> Manifest:
    """A closed bundle: a payload of `payload_mb` (sparse: holes read as zeros) and four small files."""
    root.mkdir(parents=True, exist_ok=True)
    model = root / "model" / "model.gguf"
    model.parent.mkdir(parents=True, exist_ok=True)
    if sparse:
        with model.open("wb") as f:
            f.truncate(payload_mb << 20)
    else:
        write_random(model, payload_mb)
    (root / "template.txt").write_text("{context}\n{question}\n")
    for i in range(3):
        (root / "corpus").mkdir(exist_ok=True)
        (root / "corpus" / f"POL-0{i}.md").write_text(f"# POL-0{i}\n")
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    m = Manifest(name="bench", version=version, created=CLOCK, files=tuple(entry_for(root, r) for r in rels),
                 runtime={"engine": "llama", "model": "model/model.gguf"}, prompt_template="template.txt",
                 tokenizer_sha256="0" * 64)
    m.save(root / "manifest.json")
    return m


def bench_verify(tmp: Path, mb: int, reps: int) -> dict:
    root = tmp / "verify"
    m = bundle_dir(root, "1.0.0", mb, sparse=False)
    path = root / "model" / "model.gguf"
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)  # warm the page cache
    ours, theirs = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
        theirs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        problems = verify_files(root, m)
        ours.append(time.perf_counter() - t0)
        assert not problems and out.stdout.split()[0] == m.file("model/model.gguf").sha256
    size = sum(f.size for f in m.files)
    best_ours, best_theirs = min(ours), min(theirs)
    return {"bytes": size, "ours_s": round(best_ours, 4), "sha256sum_s": round(best_theirs, 4),
            "ours_mb_s": round(size / best_ours / 1e6, 1), "sha256sum_mb_s": round(path.stat().st_size / best_theirs
                                                                                    / 1e6, 1),
            "ratio": round((size / best_ours) / (path.stat().st_size / best_theirs), 3)}


def rollback_store(tmp: Path, name: str, target_mb: int) -> tuple[Ota, bytes, bytes]:
    """A store with bench@1.0.0 (the rollback target, `target_mb` payload) and bench@1.1.0 active."""
    home = Paths(tmp / name).ensure()
    store = Store(home.store)
    bundle_dir(store.version_dir("bench", "1.0.0"), "1.0.0", target_mb)
    bundle_dir(store.version_dir("bench", "1.1.0"), "1.1.0", 1)
    st = State(floor={"bench": "1.1.0"}, last_good="bench@1.1.0", activations=["bench@1.0.0", "bench@1.1.0"])
    for ref in ("bench@1.0.0", "bench@1.1.0"):
        st.entry(ref).update(status="good", unsigned=True, installed_at=CLOCK)
    store.save_state(st)
    store.set_active("bench", "1.1.0")
    ota = Ota(home, now=lambda: CLOCK)
    return ota, (home.store / "ACTIVE").read_bytes(), (home.store / "STATE").read_bytes()


def bench_rollback(tmp: Path, big_mb: int, small_mb: int, reps: int) -> dict:
    stores = {"big": rollback_store(tmp, "big", big_mb), "small": rollback_store(tmp, "small", small_mb)}
    times: dict[str, list[float]] = {"big": [], "small": []}
    for _ in range(reps):
        for key, (ota, active, state) in stores.items():
            (ota.store.root / "ACTIVE").write_bytes(active)
            (ota.store.root / "STATE").write_bytes(state)
            t0 = time.perf_counter()
            out = ota.rollback()
            times[key].append(time.perf_counter() - t0)
            assert out.ok and out.active == "bench@1.0.0", out
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"big_mb": big_mb, "small_mb": small_mb, "big_ms": round(med["big"] * 1000, 2),
            "small_ms": round(med["small"] * 1000, 2), "ratio": round(med["big"] / med["small"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--verify-mb", type=int, default=100)
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--small-mb", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgetui-bench-ota-", dir="/tmp"))
    try:
        v = bench_verify(tmp, a.verify_mb, a.reps)
        shutil.rmtree(tmp / "verify")
        r = bench_rollback(tmp, a.big_mb, a.small_mb, max(a.reps, 11))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"verify": v, "rollback": r,
              "pass": {"verify_ratio>=0.9": v["ratio"] >= 0.9, "rollback_ratio<=1.5": r["ratio"] <= 1.5}}
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(f"verify {v['bytes'] / 1e6:.0f} MB: edgetui {v['ours_mb_s']} MB/s ({v['ours_s']} s), sha256sum "
          f"{v['sha256sum_mb_s']} MB/s ({v['sha256sum_s']} s), ratio {v['ratio']} (target >= 0.9)")
    print(f"rollback to a {r['big_mb']} MB bundle {r['big_ms']} ms, to a {r['small_mb']} MB bundle {r['small_ms']} ms,"
          f" ratio {r['ratio']} (target <= 1.5)")


if __name__ == "__main__":
    main()
