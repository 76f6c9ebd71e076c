"""Reports of finished (or stored) runs: a table for 80 columns, JSON, JUnit XML, the candidate matrix."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from edgetui.evals.runner import EvalOutcome
from edgetui.evals.runs import RunRow

_XML_BAD = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def overhead_ratio(run: RunRow) -> float | None:
    return round(run.wall_s / run.gen_s, 3) if run.wall_s and run.gen_s else None


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.0f} ms"


def _tps(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def latency_lines(run: RunRow) -> list[str]:
    ratio = overhead_ratio(run)
    return [f"latency: TTFT p50 {_ms(run.p50_ttft_ms)}, p95 {_ms(run.p95_ttft_ms)} · decode median "
            f"{_tps(run.median_tps)} tok/s, min {_tps(run.min_tps)}",
            f"time: wall {run.wall_s or 0:.1f} s, engine {run.gen_s or 0:.1f} s, load {run.load_s or 0:.1f} s, "
            f"overhead ratio {ratio if ratio is not None else 'n/a'}"]


def slice_rows(out: EvalOutcome) -> list[tuple[str, str, str, str, str, str]]:
    """(slice, cases, passed, quality, baseline, delta) per slice, then overall; '—' without a baseline."""
    deltas = (out.gate.deltas if out.gate else {}) or {}

    def vs(d: dict | None) -> tuple[str, str]:
        return (f"{d['baseline']:.3f}", f"{d['delta']:+.3f}") if d else ("—", "")

    rows = [(s["slice"], str(s["cases"]), str(s["passed"]), f"{s['quality']:.3f}",
             *vs(deltas.get("slices", {}).get(s["slice"]))) for s in out.run.slices or []]
    run = out.run
    rows.append(("overall", str(run.n_done), str(run.n_passed), f"{run.quality or 0:.3f}", *vs(deltas.get("overall"))))
    return rows


def slice_lines(out: EvalOutcome) -> list[str]:
    lines = [f"{'slice':<15}{'cases':>6}{'pass':>6}{'quality':>9}{'baseline':>10}{'delta':>8}"]
    lines += [f"{a:<15}{b:>6}{c:>6}{d:>9}{e:>10}{f:>8}" for a, b, c, d, e, f in slice_rows(out)]
    return lines


def table(out: EvalOutcome, width: int = 80) -> str:
    """The human report: header, per-slice table with deltas, latency, gate verdict, failed cases."""
    run = out.run
    lines = [f"eval run {run.id} · {run.bundle_ref} · {run.subset}, {run.n_cases} cases",
             f"golden {run.golden_label} · sha256 {run.golden_sha256[:12]}"]
    if out.resumed:
        lines.append(f"resumed: {out.resumed} cases were already done")
    lines += slice_lines(out)
    lines += latency_lines(run)
    if out.gate is None:
        lines.append(f"incomplete: {run.n_done}/{run.n_cases} cases done; run the same command again to resume")
    else:
        g = out.gate
        if g.baseline:
            lines.append(f"baseline: run {g.baseline['run_id']} {g.baseline['bundle']} ({g.baseline['subset']})")
        lines.append(f"gate: {'PASS' if g.passed else 'FAIL'}")
        lines += [f"  - {r}" for r in g.reasons]
        lines += [f"  note: {n}" for n in g.notes]
        if g.deltas.get("regressed"):
            lines.append("  regressed vs baseline: " + ", ".join(g.deltas["regressed"]))
    failed = [r for r in out.results if not r.passed]
    if failed:
        lines.append(f"failed cases ({len(failed)}):")
        lines += [_clip(f"  {r.case_id:<9}{r.slice:<14}{'; '.join(r.reasons)}", width) for r in failed]
    return "\n".join(lines)


def matrix(outs: list[EvalOutcome], width: int = 80) -> str:
    """Several bundles side by side on one golden set: slices × bundles, then each verdict and why."""
    refs = [o.run.bundle_ref for o in outs]
    col = max(12, min(20, max(len(r) for r in refs) + 1))
    lines = [f"candidates on golden {outs[0].run.golden_label} ({outs[0].run.subset})",
             f"{'':<15}" + "".join(f"{r[:col - 1]:>{col}}" for r in refs)]
    slices = [s["slice"] for s in outs[0].run.slices or []]
    for name in slices:
        cells = []
        for o in outs:
            s = next((x for x in o.run.slices or [] if x["slice"] == name), None)
            cells.append(f"{s['quality']:>{col}.3f}" if s else f"{'—':>{col}}")
        lines.append(f"{name:<15}" + "".join(cells))
    rows = [("quality", lambda r: f"{r.quality or 0:.3f}", lambda b: b.get("quality")),
            ("p95 TTFT ms", lambda r: "n/a" if r.p95_ttft_ms is None else f"{r.p95_ttft_ms:.0f}",
             lambda b: b.get("p95_ttft_ms")),
            ("min tok/s", lambda r: _tps(r.min_tps), lambda b: b.get("min_decode_tps", b.get("sustained_floor_tps")))]
    for label, val, bar in rows:
        lines.append(f"{label:<15}" + "".join(f"{val(o.run):>{col}}" for o in outs))
        lines.append(f"{'  bar':<15}" + "".join(f"{_bar(bar(o.run.bars)):>{col}}" for o in outs))
    for o in outs:
        if o.gate is None:
            lines.append(_clip(f"{o.run.bundle_ref}: incomplete ({o.run.n_done}/{o.run.n_cases})", width))
        elif o.gate.passed:
            lines.append(f"{o.run.bundle_ref}: approved")
        else:
            lines.append(_clip(f"{o.run.bundle_ref}: rejected: " + "; ".join(o.gate.reasons), width))
    return "\n".join(lines)


def _bar(v) -> str:
    return "—" if v is None else f"{v:g}"


def outcome_json(out: EvalOutcome) -> dict:
    run = out.run
    return {
        "run_id": run.id, "status": run.status, "resumed_cases": out.resumed,
        "bundle": {"name": run.bundle_name, "version": run.bundle_version, "digest": run.bundle_digest,
                   "template_sha256": run.template_sha256, "runtime": run.runtime, "bars": run.bars},
        "golden": {"name": run.golden_name, "version": run.golden_version, "sha256": run.golden_sha256,
                   "path": run.golden_path, "subset": run.subset, "cases": run.n_cases},
        "edgetui_version": run.edgetui_version, "machine": run.machine,
        "started": run.started, "ended": run.ended,
        "quality": run.quality, "passed_cases": run.n_passed, "done_cases": run.n_done, "slices": run.slices,
        "latency": {"p50_ttft_ms": run.p50_ttft_ms, "p95_ttft_ms": run.p95_ttft_ms, "median_tps": run.median_tps,
                    "min_tps": run.min_tps},
        "wall_s": run.wall_s, "gen_s": run.gen_s, "load_s": run.load_s, "overhead_ratio": overhead_ratio(run),
        "gate": out.gate.to_dict() if out.gate else None,
        "results": [r.to_dict() for r in out.results],
    }


def junit(outs: list[EvalOutcome]) -> bytes:
    """JUnit XML: one testsuite per bundle run, one testcase per golden case."""
    root = ET.Element("testsuites", name="edgetui eval")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for o in outs:
        run = o.run
        errors = sum(1 for r in o.results if r.error)
        failures = sum(1 for r in o.results if not r.passed and not r.error)
        t = sum(r.total_ms for r in o.results) / 1000
        suite = ET.SubElement(root, "testsuite", name=f"{run.bundle_ref} on {run.golden_label} ({run.subset})",
                              tests=str(len(o.results)), failures=str(failures), errors=str(errors),
                              skipped="0", time=f"{t:.3f}", hostname=str(run.machine.get("host", "")),
                              timestamp=datetime.fromtimestamp(run.started, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        props = ET.SubElement(suite, "properties")
        gate = o.gate
        for k, v in [("run_id", run.id), ("bundle_digest", run.bundle_digest), ("golden_sha256", run.golden_sha256),
                     ("template_sha256", run.template_sha256), ("quality", run.quality),
                     ("p95_ttft_ms", run.p95_ttft_ms), ("min_tps", run.min_tps),
                     ("gate", "incomplete" if gate is None else ("pass" if gate.passed else "fail")),
                     ("gate_reasons", "; ".join(gate.reasons) if gate else "")]:
            ET.SubElement(props, "property", name=k, value=_x("" if v is None else str(v)))
        for r in o.results:
            tc = ET.SubElement(suite, "testcase", classname=f"{run.golden_label}.{r.slice}", name=r.case_id,
                               time=f"{r.total_ms / 1000:.3f}")
            if not r.passed:
                tag = "error" if r.error else "failure"
                el = ET.SubElement(tc, tag, message=_x("; ".join(r.reasons)), type=",".join(r.failed))
                el.text = _x(_case_text(r))
            out = ET.SubElement(tc, "system-out")
            out.text = _x(f"answer: {r.data.get('answer', '')}\ncitations: {', '.join(r.data.get('citations', []))}")
        for k in ("failures", "errors"):
            totals[k] += int(suite.get(k))
        totals["tests"] += len(o.results)
        totals["time"] += t
    for k, v in totals.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _case_text(r) -> str:
    d = r.data
    exp = d.get("expect", {})
    return "\n".join([*r.reasons, f"question: {d.get('question', '')}",
                      f"expected facts: {exp.get('facts')}; citations: {exp.get('citations')}; "
                      f"abstain: {exp.get('abstain')}",
                      f"answer: {d.get('answer', '')}", f"cited: {d.get('citations', [])}"])


def _x(s: str) -> str:
    return _XML_BAD.sub("\ufffd", s)
