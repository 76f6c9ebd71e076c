"""Smoke-gate stand-ins that the OTA smoke runner imports in its child process (see test_ota_smoke)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Result:
    passed: bool
    reasons: list = field(default_factory=list)
    run_id: int | None = None


def passes(bundle, paths, baseline_bundle=None, timeout_s=0):
    print("noise on stdout must not break the result")
    return Result(True, [], 42)


def fails(bundle, paths, baseline_bundle=None, timeout_s=0):
    return Result(False, [f"quality 0.000 < bar 0.500 ({bundle.ref} vs {baseline_bundle and baseline_bundle.ref})"], 7)


def hangs(bundle, paths, baseline_bundle=None, timeout_s=0):
    # a grandchild in the same process group, like the engine child, must be stopped too
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (paths.home / "grandchild.pid").write_text(str(child.pid))
    time.sleep(600)


def crashes(bundle, paths, baseline_bundle=None, timeout_s=0):
    os.kill(os.getpid(), signal.SIGSEGV)


def raises(bundle, paths, baseline_bundle=None, timeout_s=0):
    raise RuntimeError("golden set unreadable")
