"""The sustained run: the production workload (golden-set questions, round-robin, through the assistant)
for a number of minutes or requests, with the sampler tagging its samples; then the verdict.

The workload is any `ask(question) -> stats dict` (ttft_ms, decode_tps, decode_tokens, prompt_tokens);
decode speed is measured from the engine's own token timestamps, not from the callable. An interrupted
run (Ctrl+C, an engine crash, the operator's stop) keeps what it recorded and is marked incomplete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgetui.engine.base import EngineCrashed, EngineError
from edgetui.telemetry.sampler import DecodeMeter, Sampler
from edgetui.telemetry.storage import TelemetryStore
from edgetui.telemetry.verdict import Verdict, compute_verdict

AskFn = Callable[[str], dict | None]
DEFAULT_MINUTES = 10.0


class WorkloadError(Exception):
    """The workload cannot be built (no golden set, no questions); the message names the fix."""


@dataclass(frozen=True)
class Progress:
    elapsed_s: float
    requests: int
    fraction: float | None  # of the time or request budget, whichever is set
    last: dict | None  # stats of the request that just finished


@dataclass(frozen=True)
class RunResult:
    run_id: int
    verdict: Verdict
    reason: str | None  # why the run is incomplete

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "status": "complete" if self.verdict.complete else "incomplete",
                "reason": self.reason, **self.verdict.to_dict()}


def golden_questions(path: Path | None = None, bundle_name: str = "field-policy") -> list[str]:
    """Questions of a golden set: `path`, else the newest set for the bundle (else for the default bundle)."""
    from edgetui.config import load_settings
    from edgetui.evals.golden import GoldenError, default_golden_path, load_golden

    try:
        if path is None:
            try:
                path = default_golden_path(bundle_name)
            except GoldenError:
                path = default_golden_path(load_settings().default_bundle)
        return [c.question for c in load_golden(path).cases]
    except GoldenError as e:
        raise WorkloadError(str(e)) from e


def assistant_workload(bundle, engine, cancel: threading.Event | None = None) -> AskFn:
    """The production workload: each question through the real assistant pipeline (its output cap)."""
    from edgetui.assistant.corpus import CorpusError
    from edgetui.assistant.pipeline import Assistant
    from edgetui.assistant.prompt import TemplateError

    try:
        assistant = Assistant(bundle, engine)
    except (CorpusError, TemplateError, ValueError, OSError) as e:
        raise WorkloadError(f"bundle {bundle.ref} cannot serve the assistant: {e}") from e

    def ask(question: str) -> dict:
        return dict(assistant.ask(question, cancel=cancel).stats)

    return ask


class SustainedRun:
    def __init__(self, ask: AskFn, questions: list[str], store: TelemetryStore, sampler: Sampler, engine,
                 bundle_ref: str | None = None, bar_floor_tps: float | None = None,
                 minutes: float | None = DEFAULT_MINUTES, max_requests: int | None = None,
                 cancel: threading.Event | None = None, on_progress: Callable[[Progress], None] | None = None):
        if not questions:
            raise WorkloadError("a sustained run needs at least one question")
        if minutes is None and max_requests is None:
            minutes = DEFAULT_MINUTES
        self.ask, self.questions, self.store, self.sampler, self.engine = ask, questions, store, sampler, engine
        self.bundle_ref, self.bar = bundle_ref, bar_floor_tps
        self.minutes, self.max_requests = minutes, max_requests
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        self.run_id: int | None = None

    def _fraction(self, elapsed: float, n: int) -> float | None:
        parts = []
        if self.minutes:
            parts.append(elapsed / (self.minutes * 60))
        if self.max_requests:
            parts.append(n / self.max_requests)
        return min(1.0, max(parts)) if parts else None

    def run(self) -> RunResult:
        meter = DecodeMeter(exact=True)
        self.engine.listeners.append(meter)
        self.run_id = run_id = self.store.create_run(self.bundle_ref, self.minutes, self.max_requests, self.bar)
        self.sampler.run_id = run_id
        t0, wall0 = time.monotonic(), time.time()
        first = self._sample()
        deadline = t0 + self.minutes * 60 if self.minutes else None
        n, errors, ttfts, reason = 0, 0, [], None
        try:
            while True:
                if self.cancel.is_set():
                    reason = "stopped by the operator"
                    break
                if (deadline and time.monotonic() >= deadline) or (self.max_requests and n >= self.max_requests):
                    break
                q = self.questions[n % len(self.questions)]
                t_req, stats, err = time.time(), None, None
                try:
                    stats = self.ask(q) or {}
                except EngineCrashed as e:
                    self.store.add_request(run_id, n, q, t_req, None, f"engine crashed: {e}")
                    raise
                except EngineError as e:  # one request the engine refused: record it, go on
                    err = str(e)
                    errors += 1
                self.store.add_request(run_id, n, q, t_req, stats, err)
                if stats and stats.get("decode_tokens") and stats.get("ttft_ms") is not None:
                    ttfts.append(stats["ttft_ms"])
                n += 1
                if self.on_progress:
                    el = time.monotonic() - t0
                    self.on_progress(Progress(el, n, self._fraction(el, n), stats))
        except KeyboardInterrupt:
            reason = "interrupted (Ctrl+C)"
        except EngineCrashed as e:
            reason = f"engine crashed: {e}"
        except Exception as e:  # recorded as incomplete, then raised: a bug must not pass for a verdict
            reason = f"failed: {type(e).__name__}: {e}"
            raise
        finally:
            t1, wall1 = time.monotonic(), time.time()
            last = self._sample()
            self.sampler.run_id = None
            if meter in self.engine.listeners:
                self.engine.listeners.remove(meter)
            events = self.store.events_between(wall0, wall1)
            energy = None
            if first and last and first.energy_j is not None and last.energy_j is not None:
                energy = last.energy_j - first.energy_j
            verdict = compute_verdict(
                meter.snapshot(), t0, t1, ttfts, n, errors, self.bar, energy, len(events),
                complete=reason is None, tokens=meter.tokens)
            self.store.finish_run(run_id, verdict, reason, ended=wall1)
        return RunResult(run_id, verdict, reason)

    def _sample(self):
        """A sample at the edges of the run (exact energy at start and end); a failing sensor is not fatal."""
        try:
            return self.sampler.sample_once()
        except Exception:
            return self.sampler.latest
