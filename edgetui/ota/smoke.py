"""Run the golden smoke gate on a bundle in a child process, bounded by a timeout.

A smoke eval that crashes (a signal in native code, an exception) or hangs past its timeout is a
failed gate, never a pass: the child runs in its own process group, so a hang is ended with one
SIGKILL to the group, engine grandchild included. The gate itself lives in the evals part:
`edgetui.evals.smoke_gate.smoke_gate(bundle, paths, baseline_bundle=None, timeout_s=...)`.

Run as a module (`python -m edgetui.ota.smoke`) this file is that child: it reads its job as JSON
on stdin and writes one JSON result line to stdout; everything else goes to the smoke log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgetui.config import Paths
from edgetui.ota.bundle import Bundle

# the directory holding the edgetui package that runs now (a checkout, site-packages, an unpacked wheel)
IMPORT_ROOT = str(Path(__file__).resolve().parents[2])

DEFAULT_TARGET = "edgetui.evals.smoke_gate:smoke_gate"
GRACE_S = 30.0  # on top of the gate's own timeout: start-up and model load


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    reasons: tuple[str, ...] = ()
    run_id: str | None = None
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


@dataclass(frozen=True)
class SmokeRunner:
    """Callable `(bundle, paths, baseline, timeout_s) -> SmokeResult` that runs `target` in a child."""

    target: str = DEFAULT_TARGET
    extra_path: str | None = None  # added to the child's sys.path (tests use it for their targets)
    grace_s: float = GRACE_S

    def __call__(self, bundle: Bundle, paths: Paths, baseline: Bundle | None, timeout_s: float) -> SmokeResult:
        job = {"target": self.target, "root": str(bundle.root), "home": str(paths.home),
               "baseline": str(baseline.root) if baseline else None, "timeout_s": timeout_s,
               "extra_path": self.extra_path}
        t0 = time.monotonic()
        log = open(paths.home / "smoke.log", "ab")  # noqa: SIM115 - closed below, after the child
        # the child imports this same edgetui from any working directory: its import root goes first
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (IMPORT_ROOT, os.environ.get("PYTHONPATH"))))}
        proc = subprocess.Popen([sys.executable, "-m", "edgetui.ota.smoke"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, cwd=paths.home, env=env, start_new_session=True)
        try:
            out, _ = proc.communicate(json.dumps(job).encode(), timeout=timeout_s + self.grace_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return SmokeResult(False, (f"smoke eval did not finish within {timeout_s + self.grace_s:.0f} s "
                                       "(hung): stopped it",), seconds=time.monotonic() - t0)
        finally:
            log.close()
        _kill_group(proc)  # engine grandchildren that outlived the gate
        secs = time.monotonic() - t0
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0 or not lines:
            how = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exited with code {proc.returncode}")
            return SmokeResult(False, (f"smoke eval crashed ({how}); see {paths.home / 'smoke.log'}",), seconds=secs)
        try:
            d = json.loads(lines[-1])
            return SmokeResult(bool(d["passed"]), tuple(str(r) for r in d.get("reasons", ())), d.get("run_id"),
                               secs, dict(d.get("detail", {})))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            return SmokeResult(False, (f"smoke eval answered garbage ({e})",), seconds=secs)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _child() -> int:
    job = json.loads(sys.stdin.read())
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the gate's own prints go to the log, not into our result
    if job.get("extra_path"):
        sys.path.insert(0, job["extra_path"])
    try:
        import importlib

        mod, fn = job["target"].split(":")
        gate = getattr(importlib.import_module(mod), fn)
        baseline = Bundle.open(Path(job["baseline"])) if job.get("baseline") else None
        res = gate(Bundle.open(Path(job["root"])), Paths(Path(job["home"])), baseline_bundle=baseline,
                   timeout_s=job["timeout_s"])
        out = {"passed": bool(res.passed), "reasons": [str(r) for r in getattr(res, "reasons", ())],
               "run_id": getattr(res, "run_id", None)}
        if out["run_id"] is not None:
            out["run_id"] = str(out["run_id"])
    except Exception as e:  # a gate that raises is a failed gate, with the reason kept
        out = {"passed": False, "reasons": [f"smoke eval raised {type(e).__name__}: {e}"]}
    os.write(result_fd, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(_child())
