"""The eval runner: ask every golden case, score it, store it at once, then gate the finished run.

`run_eval` takes an `ask(question, cancel) -> answer` callable, so the same loop runs the real
assistant (`evaluate_bundle` wires one per bundle, each with its own engine child) or a stand-in in
tests. Each result row is committed as soon as it is scored: an interrupted run (Ctrl+C, a crash, a
cancelled worker) resumes from the database with the same inputs and never redoes a finished case.

Timing: `wall_s` covers the case loop only (the engine is started before it, `load_s`), so
`wall_s / gen_s` is the runner's own overhead over the engine's generation time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from edgetui.engine.base import EngineError
from edgetui.evals.gate import Bars, GateVerdict, default_baseline_ref, evaluate, select_baseline
from edgetui.evals.golden import GoldenCase, GoldenSet, default_golden_path, load_golden
from edgetui.evals.runs import CaseResult, RunRow, RunStore, Target, run_key
from edgetui.evals.scoring import score_case
from edgetui.evals.stats import gen_ms_from_stats, latency, slice_table
from edgetui.evals.stats import quality as pass_rate

AskFn = Callable[[str, threading.Event | None], Any]
log = logging.getLogger(__name__)


@dataclass
class EvalOutcome:
    """What one bundle's run produced; `gate` is None while the run is unfinished."""

    run: RunRow
    results: list[CaseResult]
    gate: GateVerdict | None
    baseline: RunRow | None = None
    resumed: int = 0  # cases already done when this session started

    @property
    def complete(self) -> bool:
        return self.run.status == "complete"


def run_case(case: GoldenCase, ask: AskFn, cancel: threading.Event | None = None,
             clock: Callable[[], float] = time.monotonic) -> CaseResult | None:
    """Ask one case and score the answer; None when cancelled mid-answer (nothing to keep)."""
    t = clock()
    expect = {"facts": [list(f) for f in case.facts], "citations": list(case.citations), "abstain": case.abstain,
              "confidential": case.confidential, "forbid": list(case.forbid)}
    try:
        ans = ask(case.question, cancel)
    except EngineError as e:
        if cancel is not None and cancel.is_set():
            return None
        total = (clock() - t) * 1000
        data = {"question": case.question, "expect": expect, "answer": "", "citations": [], "abstained": False}
        return CaseResult(case.id, case.slice, False, ("error",), (f"error: {type(e).__name__}: {e}",), None, None,
                          None, None, None, None, round(total, 2), f"{type(e).__name__}: {e}", data)
    total = (clock() - t) * 1000
    if cancel is not None and cancel.is_set():
        return None
    text, cited = _get(ans, "answer", ""), tuple(_get(ans, "citations", ()) or ())
    abstained, confidential = bool(_get(ans, "abstained", False)), bool(_get(ans, "confidential", False))
    stats = dict(_get(ans, "stats", {}) or {})
    score = score_case(case, text, cited, abstained, confidential)
    generated = bool(stats.get("prompt_tokens") or stats.get("decode_tokens"))
    data = {"question": case.question, "expect": expect, "answer": text, "citations": list(cited),
            "abstained": abstained, "confidential": confidential,
            "retrieved": [list(r) for r in (_get(ans, "retrieved", ()) or ())], "gate": _get(ans, "gate", None),
            "escalation_offered": bool(_get(ans, "escalation_offered", False)), "stats": stats}
    return CaseResult(
        case.id, case.slice, score.passed, score.failed, score.reasons, score.precision, score.recall,
        stats.get("ttft_ms") if generated else None, stats.get("decode_tps") if generated else None,
        stats.get("decode_tokens") if generated else None, gen_ms_from_stats(stats) if generated else None,
        round(total, 2), None, data)


def _get(obj, name: str, default):
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def summarize(results: list[CaseResult]) -> dict:
    rows = [r.to_dict() for r in results]
    lat = latency(rows)
    return {"quality": round(pass_rate(rows), 4), "cases": len(rows), "passed": sum(r.passed for r in results),
            "slices": [s.to_dict() for s in slice_table(rows)], **lat.to_dict()}


def run_eval(db: sqlite_utils.Database, golden: GoldenSet, target: Target, ask: AskFn, *, smoke: bool = False,
             fresh: bool = False, start: Callable[[], None] | None = None, baseline_ref: str | None = None,
             default_ref: str | None = None, on_result: Callable[[RunRow, CaseResult, int, int], None] | None = None,
             cancel: threading.Event | None = None, clock: Callable[[], float] = time.monotonic,
             now: Callable[[], float] = time.time) -> EvalOutcome:
    """Run (or resume) `target` on `golden`, store every case, and gate the run once it is complete.

    `start` warms the engine before the timed loop. `baseline_ref` names the baseline bundle
    explicitly; `default_ref` is the previously active bundle (tried first, then another version of
    the same bundle). `on_result(run, result, done, total)` is called after each stored case.
    """
    store = RunStore(db)
    cases = golden.subset(smoke)
    case_ids = [c.id for c in cases]
    subset = "smoke" if smoke else "full"
    existing = None if fresh else store.resumable(run_key(target, golden, subset, case_ids))
    done = store.done_ids(existing.id) if existing is not None else set()
    resumed = len(done)
    load_s = 0.0
    if start is not None and len(done) < len(cases):
        t = clock()
        start()  # before any row is written: a bundle that cannot load stores nothing
        load_s = clock() - t
    if existing is not None:
        run_id = existing.id
        store.claim(run_id)
    else:
        run_id = store.create_run(target, golden, subset, case_ids, now=now())
    log.info("eval run %d: %s on %s (%s, %d cases, %d already done)", run_id, target.ref, golden.label, subset,
             len(cases), resumed)
    t0 = clock()
    try:
        for seq, case in enumerate(cases):
            if case.id in done:
                continue
            if cancel is not None and cancel.is_set():
                break
            result = run_case(case, ask, cancel, clock)
            if result is None:
                break
            store.add_result(run_id, seq, result, now=now())
            done.add(case.id)
            if on_result is not None:
                on_result(store.run(run_id), result, len(done), len(cases))
    except BaseException as e:
        store.add_time(run_id, clock() - t0, load_s)
        store.interrupt(run_id)
        log.info("eval run %d interrupted by %s at %d/%d cases", run_id, type(e).__name__, len(done), len(cases))
        raise
    store.add_time(run_id, clock() - t0, load_s)
    if len(done) < len(cases):
        store.interrupt(run_id)
        log.info("eval run %d stopped at %d/%d cases (cancelled)", run_id, len(done), len(cases))
        return EvalOutcome(store.run(run_id), store.results(run_id), None, resumed=resumed)
    return finish(store, run_id, target, baseline_ref, default_ref, now=now(), resumed=resumed)


def finish(store: RunStore, run_id: int, target: Target, baseline_ref: str | None, default_ref: str | None,
           now: float | None = None, resumed: int = 0) -> EvalOutcome:
    """Summarise a run whose cases are all stored, pick its baseline, gate it and freeze it."""
    results = store.results(run_id)
    summary = summarize(results)
    # the gate reads latency from the row, so hand it the summary as the row will hold it
    run = store.run(run_id)
    run = RunRow(**{**run.to_dict(), "quality": summary["quality"], "p50_ttft_ms": summary["p50_ttft_ms"],
                    "p95_ttft_ms": summary["p95_ttft_ms"], "median_tps": summary["median_tps"],
                    "min_tps": summary["min_tps"], "slices": summary["slices"]})
    baseline = select_baseline(store, run, baseline_ref or default_ref)
    if baseline is None and default_ref and not baseline_ref:
        baseline = select_baseline(store, run, None)
    notes = [f"no passing run of {baseline_ref} on {run.golden_label}: compared with the bars only"] \
        if baseline is None and baseline_ref else None
    gate = evaluate(run, results, Bars.of(target.bars), baseline,
                    store.results(baseline.id) if baseline else None, notes)
    store.complete(run_id, summary, gate.to_dict(), gate.passed, baseline.id if baseline else None, now=now)
    log.info("eval run %d complete: quality %.3f (%d/%d passed), gate %s, baseline %s", run_id, summary["quality"],
             summary["passed"], summary["cases"], "passed" if gate.passed else "FAILED",
             baseline.id if baseline else None)
    return EvalOutcome(store.run(run_id), results, gate, baseline, resumed)


def load_outcome(store: RunStore, run_id: int) -> EvalOutcome | None:
    """A stored run as an EvalOutcome (for reports and the eval screen's past runs)."""
    run = store.run(run_id)
    if run is None:
        return None
    gate = GateVerdict.from_dict(run.gate) if run.gate else None
    baseline = store.run(run.baseline_id) if run.baseline_id else None
    return EvalOutcome(run, store.results(run_id), gate, baseline)


# -- the real assistant -------------------------------------------------------------------------
def assistant_ask(bundle, engine) -> AskFn:
    """An `ask` over the production pipeline (gate, retrieval, template, engine, validation)."""
    from edgetui.assistant.pipeline import Assistant

    assistant = Assistant(bundle, engine)

    def ask(question: str, cancel: threading.Event | None = None):
        return assistant.ask(question, cancel=cancel)

    return ask


def evaluate_bundle(bundle, paths, golden_path: Path | None = None, smoke: bool = False,
                    baseline_ref: str | None = None, fresh: bool = False, timeout_s: float | None = None,
                    engine=None, on_result=None, cancel: threading.Event | None = None, db=None) -> EvalOutcome:
    """Run the golden set on one installed bundle with its own engine child (closed afterwards unless
    the caller passed `engine`)."""
    from edgetui.db import open_db
    from edgetui.session import engine_log

    golden = load_golden(golden_path or default_golden_path(bundle.name))
    own_db, own_engine = db is None, engine is None
    db = open_db(p=paths) if own_db else db
    engine = bundle.engine(engine_log(paths), timeout_s=timeout_s) if own_engine else engine
    try:
        return run_eval(db, golden, Target.of(bundle), assistant_ask(bundle, engine), smoke=smoke, fresh=fresh,
                        start=engine.start, baseline_ref=baseline_ref,
                        default_ref=default_baseline_ref(paths, bundle.ref), on_result=on_result, cancel=cancel)
    finally:
        if own_engine:
            engine.close()
        if own_db:
            db.conn.close()
