"""The smoke gate: run the golden smoke subset on a freshly installed bundle and gate it.

This is the one call the OTA installer makes after installing a bundle (`edgetui.ota.smoke` runs it in a
child process). It orchestrates `runner.evaluate_bundle`; the verdict itself is `gate.evaluate`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from edgetui.config import Paths
from edgetui.db import open_db
from edgetui.evals.gate import GateVerdict
from edgetui.evals.golden import GoldenError, default_golden_path, load_golden
from edgetui.evals.runner import evaluate_bundle
from edgetui.evals.runs import RunStore
from edgetui.ota.bundle import Bundle

log = logging.getLogger(__name__)


def smoke_gate(bundle: Bundle, paths: Paths, baseline_bundle: Bundle | None = None, timeout_s: float = 300.0,
               golden_path: Path | None = None, run_missing_baseline: bool = True) -> GateVerdict:
    """Run the smoke subset on an installed `bundle` and gate it.

    `baseline_bundle` (or None) is what it must not regress against, usually the previously active
    bundle: its last passing run (smoke or full) on the same golden set is the baseline; when it has
    none and `run_missing_baseline` is true, its smoke subset is run first (one more model load).
    Without a baseline bundle the default rules apply (see `gate.default_baseline_ref`). `timeout_s`
    bounds the whole call: at the deadline the run in progress is cancelled, its finished cases stay
    stored (a later call resumes them) and the gate fails. Any error is a failed gate, never an
    exception (the installer must be able to roll back), except a golden set that fails validation
    (`GoldenError`: bad input, nothing stored). The error is logged with its traceback.

    Returns `GateVerdict(passed, reasons, run_id, ...)`: `reasons` lists each failed check in words;
    the run and its verdict are stored in the database like any `edgetui eval` run.
    """
    golden_path = golden_path or default_golden_path(bundle.name)
    golden = load_golden(golden_path)
    base_ref = baseline_bundle.ref if baseline_bundle is not None else None
    log.info("smoke gate on %s (baseline %s, timeout %g s, golden %s)", bundle.ref, base_ref, timeout_s,
             golden.sha256[:12])
    cancel = threading.Event()
    timer = threading.Timer(timeout_s, cancel.set)
    timer.daemon = True
    timer.start()
    try:
        if base_ref is not None and run_missing_baseline and base_ref != bundle.ref:
            db = open_db(p=paths)
            try:
                missing = RunStore(db).last_passing(golden.sha256, bundle_ref=base_ref) is None
            finally:
                db.conn.close()
            if missing:
                log.info("smoke gate: no passing run of baseline %s, running its smoke subset first", base_ref)
                evaluate_bundle(baseline_bundle, paths, golden_path=golden_path, smoke=True, timeout_s=timeout_s,
                                cancel=cancel)
        out = evaluate_bundle(bundle, paths, golden_path=golden_path, smoke=True, baseline_ref=base_ref,
                              timeout_s=timeout_s, cancel=cancel)
    except GoldenError:
        raise
    except Exception as e:  # the contract: a smoke eval that cannot run is a failed gate (then a rollback)
        log.exception("smoke gate on %s: the eval could not run", bundle.ref)
        return GateVerdict(False, [f"smoke eval could not run: {type(e).__name__}: {e}"])
    finally:
        timer.cancel()
    if out.gate is None:
        verdict = GateVerdict(False, [f"smoke run {out.run.id} did not finish within {timeout_s:g} s "
                                      f"({out.run.n_done}/{out.run.n_cases} cases)"], out.run.id)
    else:
        verdict = out.gate
    log.info("smoke gate on %s: %s (run %s)%s", bundle.ref, "passed" if verdict.passed else "FAILED",
             verdict.run_id, "" if verdict.passed else ": " + "; ".join(verdict.reasons))
    return verdict
