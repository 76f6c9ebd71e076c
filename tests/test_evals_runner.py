"""The runner on stand-in answers and a real database: stored rows, latency statistics, resume after an
interruption, baseline selection and the gate (bars, and a synthetic regression that must fail it)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from evals_fixtures import OracleAsk, golden, target

from edgetui.db import open_db
from edgetui.evals.gate import Bars, select_baseline
from edgetui.evals.runner import load_outcome, run_eval
from edgetui.evals.runs import RunStore
from edgetui.evals.stats import percentile


@pytest.fixture
def db(home):
    return open_db(p=home)


def test_percentile_is_linear_interpolated():
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(1, 21), 95) == pytest.approx(19.05)


def test_oracle_smoke_run_is_stored_with_everything_that_makes_it_comparable(db):
    g = golden()
    out = run_eval(db, g, target(), OracleAsk(g), smoke=True)
    run = out.run
    assert run.status == "complete" and run.n_done == run.n_passed == len(g.smoke_ids) and run.quality == 1.0
    assert (run.bundle_ref, run.bundle_digest, run.template_sha256) == ("field-policy@1.0.0", "digest-field-policy-"
                                                                        "1.0.0", "tmpl-sha")
    assert (run.golden_version, run.golden_sha256, run.subset) == ("v1", g.sha256, "smoke")
    assert run.runtime == {"temperature": 0.0, "seed": 0} and run.bars["quality"] == 0.5
    assert run.edgetui_version and {"host", "cpu", "cores", "python"} <= set(run.machine)
    assert [s["slice"] for s in run.slices] == g.slices()
    assert run.p95_ttft_ms is not None and run.median_tps == 50.0 and run.min_tps == 50.0
    assert run.gen_s == pytest.approx(sum(r.gen_ms for r in out.results) / 1000)
    assert out.gate.passed and out.gate.notes == ["no baseline run on this golden set: compared with the bars only"]
    r = out.results[0]
    assert r.data["question"] and r.data["expect"]["citations"] == list(g.case(r.case_id).citations)


def test_abstentions_without_generation_are_left_out_of_latency(db):
    g = golden()

    def ask(q, cancel=None):
        a = OracleAsk(g)(q)
        if a.abstained:  # the intent gate refused before the engine ran
            return a.__class__(**{**a.__dict__, "stats": {"gate_ms": 1.0}})
        return a

    out = run_eval(db, g, target(), ask, smoke=True)
    gens = [r for r in out.results if r.ttft_ms is not None]
    assert len(gens) == len(out.results) - sum(g.case(r.case_id).abstain for r in out.results)


def test_results_and_completed_runs_are_never_changed_after_the_fact(db):
    g = golden()
    out = run_eval(db, g, target(), OracleAsk(g), smoke=True)
    with pytest.raises(Exception, match="never changed"):
        db.execute("UPDATE eval_results SET passed=0 WHERE run_id=?", [out.run.id])
    with pytest.raises(Exception, match="never changed"):
        db.execute("UPDATE eval_runs SET quality=0.1 WHERE id=?", [out.run.id])


def test_interrupted_run_resumes_without_redoing_finished_cases(db):
    g = golden()
    first = OracleAsk(g, stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        run_eval(db, g, target(), first, smoke=True)
    store = RunStore(db)
    [run] = store.runs()
    assert run.status == "interrupted" and run.n_done == 4
    second = OracleAsk(g)
    out = run_eval(db, g, target(), second, smoke=True)
    assert out.run.id == run.id and out.resumed == 4
    assert len(second.calls) == len(g.smoke_ids) - 4
    assert not set(second.calls) & set(first.calls[:4])
    assert out.run.status == "complete" and out.run.n_done == len(g.smoke_ids) and out.run.quality == 1.0
    assert [r.case_id for r in out.results] == list(g.smoke_ids)


def test_cancel_keeps_finished_cases_and_drops_the_half_answered_one(db):
    g = golden()
    cancel = threading.Event()
    out = run_eval(db, g, target(), OracleAsk(g, cancel_after=3), smoke=True, cancel=cancel)
    assert out.gate is None and out.run.status == "interrupted" and out.run.n_done == 2
    out = run_eval(db, g, target(), OracleAsk(g), smoke=True)
    assert out.resumed == 2 and out.run.status == "complete"


def test_a_different_bundle_or_fresh_flag_starts_a_new_run(db):
    g = golden()
    with pytest.raises(KeyboardInterrupt):
        run_eval(db, g, target(), OracleAsk(g, stop_after=3), smoke=True)
    other = run_eval(db, g, target("1.1.0"), OracleAsk(g), smoke=True)
    assert other.resumed == 0
    fresh = run_eval(db, g, target(), OracleAsk(g), smoke=True, fresh=True)
    assert fresh.resumed == 0 and fresh.run.id not in (1, other.run.id)


def test_engine_error_on_a_case_is_a_failed_result_with_the_error_named(db):
    from edgetui.engine.base import EngineCrashed

    g = golden()
    oracle = OracleAsk(g)

    def ask(q, cancel=None):
        if q == g.case("can-010").question:
            raise EngineCrashed("engine process killed by SIGSEGV; the next request starts a fresh one")
        return oracle(q)

    out = run_eval(db, g, target(), ask, smoke=True)
    bad = next(r for r in out.results if r.case_id == "can-010")
    assert not bad.passed and bad.failed == ("error",) and "SIGSEGV" in bad.error
    assert out.run.status == "complete" and out.run.n_passed == len(g.smoke_ids) - 1


def test_same_inputs_give_the_same_scores(db):
    g = golden()
    a = run_eval(db, g, target(), OracleAsk(g, wrong={"can-001", "abs-007"}), smoke=True)
    b = run_eval(db, g, target(), OracleAsk(g, wrong={"can-001", "abs-007"}), smoke=True, fresh=True)
    assert [(r.case_id, r.passed, r.reasons) for r in a.results] == [(r.case_id, r.passed, r.reasons)
                                                                     for r in b.results]


# -- gate ---------------------------------------------------------------------------------------
def test_bars_read_from_the_bundle_with_defaults():
    b = Bars.of({"quality": 0.5, "p95_ttft_ms": 2000, "sustained_floor_tps": 30})
    assert (b.quality, b.p95_ttft_ms, b.min_decode_tps, b.max_quality_drop) == (0.5, 2000.0, 30.0, 0.02)
    assert Bars.of({"min_decode_tps": 12, "sustained_floor_tps": 30, "max_quality_drop": 0.05}).min_decode_tps == 12
    assert Bars.of(None) == Bars()


def test_gate_fails_on_each_bar_with_the_reason_in_words(db):
    g = golden()
    slow = run_eval(db, g, target(bars={"quality": 0.95, "p95_ttft_ms": 300, "min_decode_tps": 60}),
                    OracleAsk(g, wrong={"can-001"}), smoke=True)
    reasons = slow.gate.reasons
    assert not slow.gate.passed and len(reasons) == 3
    assert reasons[0].startswith("quality 0.917 < bar 0.950")
    assert "p95 TTFT" in reasons[1] and "> bar 300 ms" in reasons[1]
    assert reasons[2] == "min decode 50.0 tok/s < bar 60.0"
    assert slow.run.passed is False


def test_synthetic_regression_vs_the_baseline_fails_the_gate_overall_and_per_slice(db):
    g = golden()
    base = run_eval(db, g, target("1.0.0"), OracleAsk(g))  # full set, passes
    assert base.gate.passed
    # the new version still clears the 0.5 quality bar but loses two canonical cases
    cand = run_eval(db, g, target("1.1.0"), OracleAsk(g, wrong={"can-001", "can-010"}), smoke=True,
                    default_ref="field-policy@1.0.0")
    gate = cand.gate
    assert cand.baseline.id == base.run.id and gate.baseline["bundle"] == "field-policy@1.0.0"
    assert not gate.passed
    assert gate.deltas["overall"]["cases"] == len(g.smoke_ids)  # compared on the cases both ran
    assert gate.deltas["slices"]["canonical"] == {"candidate": 0.0, "baseline": 1.0, "delta": -1.0, "cases": 2}
    assert gate.deltas["regressed"] == ["can-001", "can-010"]
    assert any(r.startswith("overall quality 0.833 vs baseline 1.000") for r in gate.reasons)
    assert any(r.startswith("canonical quality 0.000") for r in gate.reasons)
    assert not any(r.startswith("quality ") for r in gate.reasons)  # the bar itself still holds


def test_no_regression_passes_and_a_failed_run_is_never_a_baseline(db):
    g = golden()
    run_eval(db, g, target("1.0.0"), OracleAsk(g), smoke=True)
    bad = run_eval(db, g, target("1.1.0", bars={"quality": 0.99}), OracleAsk(g, wrong={"can-001"}), smoke=True)
    assert not bad.gate.passed
    good = run_eval(db, g, target("1.2.0"), OracleAsk(g), smoke=True)
    assert good.gate.passed and good.baseline.bundle_ref == "field-policy@1.0.0"  # not the failed 1.1.0
    assert good.gate.deltas["overall"]["delta"] == 0.0


def test_baseline_is_the_named_bundle_and_only_on_the_same_golden_version(db, tmp_path):
    from edgetui.evals.golden import load_golden

    g = golden()
    run_eval(db, g, target("0.9.0"), OracleAsk(g), smoke=True)
    v2 = tmp_path / "v2.jsonl"
    v2.write_bytes(Path(g.path).read_bytes() + b"\n")  # same cases, new bytes: a new version
    g2 = load_golden(v2)
    assert g2.sha256 != g.sha256
    out = run_eval(db, g2, target("1.0.0"), OracleAsk(g2), smoke=True, baseline_ref="field-policy@0.9.0")
    assert out.baseline is None and "no passing run of field-policy@0.9.0" in out.gate.notes[0]
    store = RunStore(db)
    assert select_baseline(store, out.run, "field-policy@0.9.0") is None


def test_stored_run_reloads_as_the_same_outcome(db):
    g = golden()
    out = run_eval(db, g, target(), OracleAsk(g, wrong={"mes-002"}), smoke=True)
    again = load_outcome(RunStore(db), out.run.id)
    assert again.gate == out.gate and again.results == out.results and again.run == out.run


def test_runs_record_their_scorer_version_and_baselines_match_it(db):
    from edgetui.evals.scoring import SCORER_VERSION

    g = golden()
    old = run_eval(db, g, target("0.9.0"), OracleAsk(g), smoke=True)
    assert old.run.scorer_version == SCORER_VERSION == 2
    # a run scored before the lead check existed (version 1) is never the baseline of a version-2 run
    db.execute("DROP TRIGGER IF EXISTS eval_runs_frozen")
    db.execute("UPDATE eval_runs SET scorer_version = 1 WHERE id = ?", [old.run.id])
    new = run_eval(db, g, target("1.0.0"), OracleAsk(g), smoke=True, default_ref="field-policy@0.9.0")
    assert new.baseline is None and RunStore(db).runs()[0].scorer_version in (1, 2)
    assert {r.scorer_version for r in RunStore(db).runs()} == {1, 2}
