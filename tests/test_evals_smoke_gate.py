"""`smoke_gate`, the call the OTA installer makes after installing a bundle, on the real model: a missing
baseline is run first, two bundles with the same model, template and corpus score the same case by case
(determinism at temperature 0 with a fixed seed), and a run past its time budget is a failed gate."""

from __future__ import annotations

import pytest
from recipes import quality_only_recipe

from edgetui.config import Paths
from edgetui.db import open_db
from edgetui.evals.runs import RunStore
from edgetui.evals.smoke_gate import smoke_gate
from edgetui.ota.bundle import Bundle
from edgetui.ota.recipe import build

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """A data dir with field-policy 1.0.0 and 1.0.1 installed (same model, template and corpus)."""
    p = Paths(tmp_path_factory.mktemp("smokehome")).ensure()
    out = []
    recipe = quality_only_recipe(p.home, "recipe")  # latency bars off: see tests/recipes.py
    for v in ("1.0.0", "1.0.1"):
        d = p.store / "field-policy" / v
        build(recipe, d, version=v)
        out.append(Bundle.open(d))
    return p, out[0], out[1]


@pytest.mark.timeout(900)
def test_missing_baseline_is_run_first_and_identical_bundles_score_identically(two_versions):
    p, old, new = two_versions
    res = smoke_gate(new, p, baseline_bundle=old, timeout_s=600)
    store = RunStore(open_db(p=p))
    cand = store.run(res.run_id)
    assert cand.bundle_ref == "field-policy@1.0.1" and cand.status == "complete" and cand.subset == "smoke"
    assert res.baseline is not None and res.baseline["bundle"] == "field-policy@1.0.0"
    base = store.run(res.baseline["run_id"])
    assert [(r.case_id, r.passed, r.data["answer"]) for r in store.results(base.id)] == \
        [(r.case_id, r.passed, r.data["answer"]) for r in store.results(cand.id)]
    assert res.deltas["overall"]["delta"] == 0.0 and not any(c.name.startswith("drop:") and not c.ok
                                                            for c in res.checks)
    assert res.passed == (not res.reasons)
    assert res.passed == all(c.ok for c in res.checks)


@pytest.mark.timeout(300)
def test_a_smoke_run_past_its_time_budget_fails_the_gate_and_keeps_what_it_did(two_versions):
    p, old, new = two_versions
    res = smoke_gate(new, p, baseline_bundle=None, timeout_s=0.5)
    assert not res.passed and res.reasons[0].startswith(f"smoke run {res.run_id} did not finish within 0.5 s")
    run = RunStore(open_db(p=p)).run(res.run_id)
    assert run.status == "interrupted" and run.n_done < run.n_cases
