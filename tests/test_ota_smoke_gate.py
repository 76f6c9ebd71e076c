"""The acceptance path on the real model and the real smoke gate: a signed bundle built from
bundles/field-policy installs, passes its smoke eval and becomes active; rollback returns to the
previous version and both verify; a deliberately broken bundle fails the gate and is rolled back
automatically with the reason recorded.

The broken bundle is an update that lost most of its corpus (only POL-01 and POL-12 shipped), a
packaging fault the smoke gate exists for. A template that tells the model to always abstain is *not*
broken enough: in the production `quote` mode the governing sentences are quoted from retrieval and a
model abstention is overruled when the top section covers the question, so such a bundle scored like
the good one on the smoke subset (measured here) — the gate judges answers, not templates.

Recipes are `tests/recipes.py` copies without the latency bars (see there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from recipes import quality_only_recipe

from edgetui.config import Paths
from edgetui.ota.build import build_archive
from edgetui.ota.history import events
from edgetui.ota.keys import Keyring
from edgetui.ota.manager import Ota
from edgetui.ota.report import verify, versions
from edgetui.session import ensure_default_bundle

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.model, pytest.mark.slow]



@pytest.fixture(scope="module")
def device(tmp_path_factory):
    root = tmp_path_factory.mktemp("ota-gate")
    home = Paths(root / "home").ensure()
    ensure_default_bundle(home)
    Keyring(home.keys).keygen()
    return root, home


@pytest.mark.timeout(1500)
def test_signed_bundle_installs_passes_its_smoke_eval_activates_and_rolls_back(device):
    root, home = device
    tar = root / "fp-1.1.0.tar"
    build_archive(home, quality_only_recipe(root, "recipe"), tar, root / "build", version="1.1.0")
    out = Ota(home).install(tar, activate=True, smoke=True)
    assert out.ok, out.message
    row = {r.ref: r for r in versions(Ota(home))}["field-policy@1.1.0"]
    assert row.active and row.status == "good" and row.smoke["passed"] and row.smoke["run_id"]
    back = Ota(home).rollback()
    assert back.ok and back.active == "field-policy@1.0.0"
    assert verify(Ota(home), "field-policy@1.0.0").ok and verify(Ota(home), "field-policy@1.1.0").ok


@pytest.mark.timeout(1500)
def test_a_bundle_that_lost_most_of_its_corpus_fails_its_smoke_gate_and_is_rolled_back(device):
    root, home = device
    recipe = quality_only_recipe(root, "broken-recipe", keep_docs=("POL-01", "POL-12"))
    tar = root / "fp-1.2.0-broken.tar"
    build_archive(home, recipe, tar, root / "build2", version="1.2.0")
    before = Ota(home).store.active_ref_str()
    env = {**os.environ, "EDGETUI_HOME": str(home.home)}
    r = subprocess.run([sys.executable, "-m", "edgetui", "bundle", "install", str(tar), "--activate", "--smoke",
                        "--json"], capture_output=True, text=True, env=env, cwd=REPO, timeout=1400)
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["active"] == before and "failed its smoke gate" in out["message"]
    ota = Ota(home)
    assert ota.store.active_ref_str() == before and verify(ota).ok
    st = ota.store.state()
    assert st.status("field-policy@1.2.0") == "bad" and "quality" in st.versions["field-policy@1.2.0"]["reason"]
    ev = next(e for e in events(home) if e.event == "auto-rollback")
    assert ev.from_ref == "field-policy@1.2.0" and ev.reason
