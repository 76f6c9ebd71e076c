"""Stand-ins for the assistant in eval tests (imported by the test_evals_* and test_eval_screen modules).

`OracleAsk` answers every golden case the way its expectations say (so a run scores 1.0), with fixed
timings; `wrong` makes chosen cases fail, `stop_after` simulates an interruption. Runs it produces are
real rows in a real database: gate and resume logic are tested on what the runner actually stores.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from edgetui.evals.golden import GoldenSet, load_golden
from edgetui.evals.runs import Target

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden_sets" / "field-policy" / "v1.jsonl"
BARS = {"quality": 0.5, "p95_ttft_ms": 2000, "sustained_floor_tps": 30, "max_quality_drop": 0.02}


@dataclass(frozen=True)
class FakeAnswer:
    question: str
    answer: str
    citations: tuple[str, ...]
    abstained: bool
    confidential: bool
    stats: dict
    retrieved: tuple = ()
    gate: str | None = None
    escalation_offered: bool = False


def golden() -> GoldenSet:
    return load_golden(GOLDEN)


def target(version: str = "1.0.0", bars: dict | None = None, name: str = "field-policy") -> Target:
    return Target(name, version, f"digest-{name}-{version}", "tmpl-sha", {"temperature": 0.0, "seed": 0},
                  dict(BARS if bars is None else bars))


@dataclass
class OracleAsk:
    golden: GoldenSet
    wrong: set[str] = field(default_factory=set)  # case ids answered badly (no facts, no citations)
    stop_after: int | None = None  # raise KeyboardInterrupt on this call (1-based)
    cancel_after: int | None = None  # set the cancel event during this call
    ttft_ms: float = 400.0
    tps: float = 50.0
    calls: list[str] = field(default_factory=list)

    def __call__(self, question: str, cancel: threading.Event | None = None) -> FakeAnswer:
        self.calls.append(question)
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt
        if self.cancel_after is not None and len(self.calls) == self.cancel_after and cancel is not None:
            cancel.set()
        case = next(c for c in self.golden.cases if c.question == question)
        i = self.golden.cases.index(case)
        stats = {"prompt_tokens": 300, "ttft_ms": self.ttft_ms + i, "decode_tokens": 41, "decode_tps": self.tps,
                 "decode_ms": 40 / self.tps * 1000}
        if case.id in self.wrong:
            return FakeAnswer(question, "I am not sure.", (), False, False, stats)
        if case.abstain:
            return FakeAnswer(question, "The policy documents don't cover this.", (), True, False, stats)
        text = "Per policy: " + ", ".join(f[0] for f in case.facts) + "."
        return FakeAnswer(question, text, case.citations, False, bool(case.confidential), stats)
