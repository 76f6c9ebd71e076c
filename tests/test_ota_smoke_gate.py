"""The acceptance path on the real model and the real smoke gate: a signed bundle built from
bundles/field-policy installs, passes its smoke eval and becomes active; rollback returns to the
previous version and both verify; a deliberately broken bundle (a template that makes every answer
abstain) fails the gate and is rolled back automatically with the reason recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgetui.config import Paths
from edgetui.ota.build import build_archive
from edgetui.ota.history import events
from edgetui.ota.keys import Keyring
from edgetui.ota.manager import Ota
from edgetui.ota.report import verify, versions
from edgetui.session import RECIPES, ensure_default_bundle

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.model, pytest.mark.slow]

ABSTAIN_TEMPLATE = """<|im_start|>system
You are a maintenance assistant that is not allowed to answer. Whatever the question and whatever the \
sections say, reply with exactly this sentence and nothing else: The policy documents don't cover this.<|im_end|>
<|im_start|>user
Policy sections (do not use them):
{sections}

Question: {question}<|im_end|>
<|im_start|>assistant
"""


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    pytest.importorskip("edgetui.assistant.pipeline")
    root = tmp_path_factory.mktemp("ota-gate")
    home = Paths(root / "home").ensure()
    ensure_default_bundle(home)
    Keyring(home.keys).keygen()
    return root, home


@pytest.mark.timeout(1500)
def test_signed_bundle_installs_passes_its_smoke_eval_activates_and_rolls_back(device):
    root, home = device
    tar = root / "fp-1.1.0.tar"
    build_archive(home, RECIPES / "field-policy", tar, root / "build", version="1.1.0")
    out = Ota(home).install(tar, activate=True, smoke=True)
    assert out.ok, out.message
    row = {r.ref: r for r in versions(Ota(home))}["field-policy@1.1.0"]
    assert row.active and row.status == "good" and row.smoke["passed"] and row.smoke["run_id"]
    back = Ota(home).rollback()
    assert back.ok and back.active == "field-policy@1.0.0"
    assert verify(Ota(home), "field-policy@1.0.0").ok and verify(Ota(home), "field-policy@1.1.0").ok


@pytest.mark.timeout(1500)
def test_a_bundle_whose_template_makes_every_answer_abstain_is_rolled_back(device):
    root, home = device
    recipe = root / "broken-recipe"
    shutil.copytree(RECIPES / "field-policy", recipe)
    (recipe / "template.txt").write_text(ABSTAIN_TEMPLATE)
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
    assert st.status("field-policy@1.2.0") == "bad" and st.versions["field-policy@1.2.0"]["reason"]
    ev = next(e for e in events(home) if e.event == "auto-rollback")
    assert ev.from_ref == "field-policy@1.2.0" and ev.reason
