"""The foundation's CLI as a user runs it: generate, doctor, bad input, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgetui.config import Paths

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.model


def run_cli(home: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETUI_HOME": str(home), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "edgetui", *args], capture_output=True, text=True,
                          env=env, timeout=240, cwd=REPO)


def test_generate_json_prints_text_and_stats(bundle_home):
    r = run_cli(bundle_home.home, "generate", "The pump seal", "--json", "--max-tokens", "12")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"] and out["bundle"] == "field-policy@1.0.0"
    assert out["stats"]["decode_tps"] > 0 and out["stats"]["ttft_ms"] > 0


def test_generate_works_with_the_network_blocked(bundle_home):
    offline = str(REPO / "tests" / "support" / "offline")
    r = run_cli(bundle_home.home, "generate", "Hello", "--max-tokens", "6",
                env_extra={"PYTHONPATH": offline + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert r.returncode == 0, r.stderr
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9))"],
                           env={**os.environ, "PYTHONPATH": offline}, capture_output=True, text=True)
    assert "tried to use the network" in probe.stderr  # the blocker really is active in children


def test_first_run_builds_and_activates_the_default_bundle(home: Paths):
    r = run_cli(home.home, "generate", "Hi", "--max-tokens", "2")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((home.store / "field-policy" / "1.0.0" / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= {"model/model.gguf", "template.txt",
                                                      "corpus/POL-02-pump-seal-leaks.md"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])
    assert json.loads((home.store / "ACTIVE").read_text()) == {"name": "field-policy", "version": "1.0.0"}


def test_doctor_healthy_then_fails_on_truncated_model(home: Paths):
    r = run_cli(home.home, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "crash probe" in r.stdout and "[FAIL]" not in r.stdout
    model = home.store / "field-policy" / "1.0.0" / "model" / "model.gguf"
    with model.open("r+b") as f:
        f.truncate(1_000_000)
    r = run_cli(home.home, "doctor")
    assert r.returncode == 1
    fail = [line for line in r.stdout.splitlines() if line.startswith("[FAIL]")]
    assert fail and "model/model.gguf" in fail[0] and "fix:" in fail[0]
    assert json.loads((home.store / "ACTIVE").read_text())["version"] == "1.0.0"  # untouched


def test_corrupt_model_is_a_one_line_error_exit_2(home: Paths):
    assert run_cli(home.home, "generate", "Hi", "--max-tokens", "2").returncode == 0
    model = home.store / "field-policy" / "1.0.0" / "model" / "model.gguf"
    model.write_bytes(b"not a model at all" * 100)
    r = run_cli(home.home, "generate", "Hi")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "model.gguf" in lines[0]


def test_prompt_longer_than_context_exit_2(bundle_home):
    r = run_cli(bundle_home.home, "generate", "pump " * 4000)
    assert r.returncode == 2 and "context" in r.stderr


def test_unwritable_data_dir_exit_2(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a path below a file instead
        (tmp_path / "file").write_text("x")
        ro = tmp_path / "file" / "home"
    r = run_cli(ro, "generate", "Hi")
    assert r.returncode == 2 and "EDGETUI_HOME" in r.stderr
