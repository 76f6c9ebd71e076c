"""`edgetui eval` as a user runs it: bad input exits 2 naming file, line and field with nothing stored;
a real smoke run of the default bundle gates, writes JSON and valid JUnit XML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from evals_fixtures import GOLDEN, REPO
from typer.testing import CliRunner

from edgetui.cli import app
from edgetui.config import Paths
from edgetui.db import open_db


@pytest.fixture
def eval_home(tmp_path, bundle_home, monkeypatch) -> Paths:
    """A fresh data dir (own database) that sees the session's built store (read-only)."""
    p = Paths(tmp_path / "evalhome").ensure()
    p.store.rmdir()
    p.store.symlink_to(bundle_home.store, target_is_directory=True)
    monkeypatch.setenv("EDGETUI_HOME", str(p.home))
    return p


def eval_rows(p: Paths) -> int:
    if not p.db.exists():
        return 0
    return open_db(p.db).execute("SELECT count(*) FROM eval_runs").fetchone()[0]


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval", *args])


@pytest.mark.parametrize(("lines", "where"), [
    (['{"id": "a", "slice": "canonical", "question": "q", "expect": {"facts": [], "citations": ["POL-01#1"], '
      '"abstain": false}}', '{"id": "b", "slice": "weird", "question": "q", "expect": {}}'],
     ":2: field slice: unknown slice 'weird'"),
    (['{"id": "a"', ], ":1: not valid JSON"),
])
def test_bad_golden_set_exits_2_naming_line_and_field_and_stores_nothing(eval_home, tmp_path, lines, where):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = invoke("--golden", str(bad), "--smoke")
    assert r.exit_code == 2, r.output
    assert f"error: {bad}{where}" in r.output
    assert eval_rows(eval_home) == 0


def test_golden_set_not_matching_its_manifest_exits_2(eval_home, tmp_path):
    d = tmp_path / "g"
    d.mkdir()
    (d / "v1.jsonl").write_bytes(GOLDEN.read_bytes().replace(b"SK-2240", b"SK-2241"))
    (d / "v1.manifest.json").write_bytes(GOLDEN.with_name("v1.manifest.json").read_bytes())
    r = invoke("--golden", str(d / "v1.jsonl"))
    assert r.exit_code == 2 and "field sha256: sha256" in r.output and "does not match its manifest" in r.output
    assert eval_rows(eval_home) == 0


@pytest.mark.parametrize(("ref", "words"), [
    ("field-policy@9.9.9", "field-policy@9.9.9 is not installed"),
    ("field-policy", "is not NAME@VERSION"),
])
def test_missing_or_malformed_bundle_exits_2(eval_home, ref, words):
    r = invoke("--bundle", ref, "--smoke")
    assert r.exit_code == 2 and words in r.output
    assert eval_rows(eval_home) == 0


def run_cli(home: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETUI_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "edgetui", "eval", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_smoke_run_of_the_default_bundle_gates_and_writes_json_and_junit(eval_home, tmp_path):
    junit = tmp_path / "out" / "eval.xml"
    r = run_cli(eval_home.home, "--smoke", "--gate", "--json", "--junit", str(junit))
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    [run] = out["runs"]
    assert run["status"] == "complete" and run["golden"]["subset"] == "smoke" and run["golden"]["cases"] == 12
    assert run["bundle"]["name"] == "field-policy" and run["bundle"]["runtime"]["temperature"] == 0.0
    assert len(run["results"]) == 12 and {s["slice"] for s in run["slices"]} == {
        "canonical", "paraphrase", "messy", "multi_section", "abstain", "confidential", "injection", "revision"}
    assert run["latency"]["p95_ttft_ms"] > 0 and run["latency"]["median_tps"] > 0
    assert r.returncode == (0 if out["gate_passed"] else 1)
    assert "[12/12]" in r.stderr  # live progress, one line per case
    suite = ET.parse(junit).getroot().find("testsuite")
    assert len(suite.findall("testcase")) == 12
    # same inputs, same scores: a second run (fresh) reproduces every verdict
    r2 = run_cli(eval_home.home, "--smoke", "--json", "--fresh")
    again = json.loads(r2.stdout)["runs"][0]
    assert [(c["case_id"], c["passed"]) for c in again["results"]] == [(c["case_id"], c["passed"])
                                                                       for c in run["results"]]
    assert r2.returncode == 0  # without --gate the verdict is reported, not enforced
