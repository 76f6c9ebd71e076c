"""The release gate: a run against its bundle's bars and against a baseline run.

Bars come from the bundle manifest (`bars`): `quality` (minimum pass rate), `p95_ttft_ms`,
`min_decode_tps` (else `sustained_floor_tps`: no single case may decode slower) and
`max_quality_drop` (default 0.02) vs the baseline, overall and per slice. The baseline is compared on
the cases both runs have, so a smoke run can be held against a full baseline run.

Baseline by default: the last passing run of the previously active bundle on the same golden set
(its sha256); without OTA history, the last passing run of another version of the same bundle.

This module is the verdict only: it runs nothing. Running the smoke subset and gating it after an
install is `edgetui.evals.smoke_gate.smoke_gate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgetui.config import Paths
from edgetui.evals.runs import CaseResult, RunRow, RunStore
from edgetui.evals.stats import quality, slice_table
from edgetui.ota import history
from edgetui.ota.store import Store

DEFAULT_MAX_DROP = 0.02
EPS = 1e-9


@dataclass(frozen=True)
class Bars:
    quality: float | None = None
    p95_ttft_ms: float | None = None
    min_decode_tps: float | None = None
    max_quality_drop: float = DEFAULT_MAX_DROP

    @classmethod
    def of(cls, bars: dict | None) -> Bars:
        b = bars or {}
        tps = b.get("min_decode_tps", b.get("sustained_floor_tps"))
        return cls(_num(b.get("quality")), _num(b.get("p95_ttft_ms")), _num(tps),
                   _num(b.get("max_quality_drop")) if b.get("max_quality_drop") is not None else DEFAULT_MAX_DROP)


def _num(v) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True)
class Check:
    name: str  # quality | p95_ttft_ms | min_decode_tps | drop:overall | drop:<slice> | complete
    ok: bool
    value: float | None
    bar: float | None
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    """The verdict: `passed`, the failed checks in words (`reasons`), every check, and the deltas."""

    passed: bool
    reasons: list[str]
    run_id: int | None = None
    checks: list[Check] = field(default_factory=list)
    baseline: dict | None = None  # {"run_id", "bundle", "quality"} of the baseline run
    deltas: dict = field(default_factory=dict)  # {"overall": {...}, "slices": {slice: {...}}}
    notes: list[str] = field(default_factory=list)  # context that is not a failure (no baseline, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GateVerdict:
        return cls(d["passed"], list(d["reasons"]), d.get("run_id"), [Check(**c) for c in d.get("checks", [])],
                   d.get("baseline"), d.get("deltas", {}), list(d.get("notes", [])))


def evaluate(run: RunRow, results: list[CaseResult], bars: Bars, baseline: RunRow | None = None,
             baseline_results: list[CaseResult] | None = None, notes: list[str] | None = None) -> GateVerdict:
    """Hold a finished run's numbers against the bars and the baseline."""
    checks: list[Check] = []
    notes = list(notes or [])
    rows = [r.to_dict() for r in results]
    if len(rows) < run.n_cases:
        checks.append(Check("complete", False, len(rows), run.n_cases,
                            f"run incomplete: {len(rows)}/{run.n_cases} cases"))
    q = quality(rows)
    if bars.quality is not None:
        checks.append(Check("quality", q + EPS >= bars.quality, q, bars.quality,
                            f"quality {q:.3f} {'>=' if q + EPS >= bars.quality else '<'} bar {bars.quality:.3f}"))
    if bars.p95_ttft_ms is not None:
        p95 = run.p95_ttft_ms
        ok = p95 is None or p95 <= bars.p95_ttft_ms
        checks.append(Check("p95_ttft_ms", ok, p95, bars.p95_ttft_ms,
                            "p95 TTFT n/a (no generations)" if p95 is None else
                            f"p95 TTFT {p95:.0f} ms {'<=' if ok else '>'} bar {bars.p95_ttft_ms:.0f} ms"))
    if bars.min_decode_tps is not None:
        mt = run.min_tps
        ok = mt is None or mt + EPS >= bars.min_decode_tps
        checks.append(Check("min_decode_tps", ok, mt, bars.min_decode_tps,
                            "min decode n/a (no long enough generation)" if mt is None else
                            f"min decode {mt:.1f} tok/s {'>=' if ok else '<'} bar {bars.min_decode_tps:.1f}"))
    deltas: dict = {}
    base_info = None
    if baseline is None:
        if not notes:
            notes.append("no baseline run on this golden set: compared with the bars only")
    else:
        base_info = {"run_id": baseline.id, "bundle": baseline.bundle_ref, "quality": baseline.quality,
                     "subset": baseline.subset}
        deltas = compare(results, baseline_results or [])
        if not deltas["overall"]["cases"]:
            notes.append(f"baseline run {baseline.id} shares no cases with this run: no drop check")
        else:
            checks.extend(_drop_checks(deltas, bars.max_quality_drop))
        if baseline.template_sha256 != run.template_sha256:
            notes.append("prompt template differs from the baseline's")
        if baseline.runtime != run.runtime:
            notes.append("runtime flags differ from the baseline's")
        if baseline.machine.get("cpu") != run.machine.get("cpu"):
            notes.append("baseline ran on a different CPU: latency deltas are not comparable")
    reasons = [c.detail for c in checks if not c.ok]
    return GateVerdict(not reasons, reasons, run.id, checks, base_info, deltas, notes)


def compare(results: list[CaseResult], baseline_results: list[CaseResult]) -> dict:
    """Quality deltas on the cases both runs have, overall and per slice."""
    base = {r.case_id: r for r in baseline_results}
    common = [r for r in results if r.case_id in base]
    cand_rows = [r.to_dict() for r in common]
    base_rows = [base[r.case_id].to_dict() for r in common]
    qc, qb = quality(cand_rows), quality(base_rows)
    out = {"overall": {"candidate": round(qc, 4), "baseline": round(qb, 4), "delta": round(qc - qb, 4),
                       "cases": len(common)}, "slices": {}}
    b_by = {s.slice: s for s in slice_table(base_rows)}
    for s in slice_table(cand_rows):
        bq = b_by[s.slice].quality
        out["slices"][s.slice] = {"candidate": round(s.quality, 4), "baseline": round(bq, 4),
                                  "delta": round(s.quality - bq, 4), "cases": s.cases}
    out["regressed"] = sorted(r.case_id for r in common if base[r.case_id].passed and not r.passed)
    out["fixed"] = sorted(r.case_id for r in common if r.passed and not base[r.case_id].passed)
    return out


def _drop_checks(deltas: dict, max_drop: float) -> list[Check]:
    out = []
    for name, d in [("overall", deltas["overall"]), *deltas["slices"].items()]:
        drop = d["baseline"] - d["candidate"]
        ok = drop <= max_drop + EPS
        out.append(Check(f"drop:{name}", ok, round(-drop, 4), max_drop,
                         f"{name} quality {d['candidate']:.3f} vs baseline {d['baseline']:.3f} "
                         f"({-drop:+.3f}, max drop {max_drop:.2f})"))
    return out


def select_baseline(store: RunStore, run: RunRow, ref: str | None = None) -> RunRow | None:
    """The run to compare with, always on the same golden sha256 and scorer version: the last passing run of bundle
    `ref` when given, else the last passing run of another version of the same bundle."""
    if ref:
        return store.last_passing(run.golden_sha256, bundle_ref=ref, before_id=run.id,
                                  scorer_version=run.scorer_version)
    return store.last_passing(run.golden_sha256, exclude_ref=run.bundle_ref, bundle_name=run.bundle_name,
                              before_id=run.id, scorer_version=run.scorer_version)


def default_baseline_ref(paths: Paths, candidate_ref: str) -> str | None:
    """The previously active bundle: the active one when the candidate is not (yet) active, else the
    one active before it according to the OTA history (None when there is no such history)."""
    active = Store(paths.store).active_ref()
    if active is not None and f"{active[0]}@{active[1]}" != candidate_ref:
        return f"{active[0]}@{active[1]}"
    ref = previous_active_ref(paths, candidate_ref)
    return ref if ref != candidate_ref else None


def previous_active_ref(paths: Paths, current_ref: str | None = None) -> str | None:
    """The bundle that was active before `current_ref` (default: the latest activation), from the OTA history."""
    return history.previous_active(paths, current_ref)
