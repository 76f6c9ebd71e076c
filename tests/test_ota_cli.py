"""`edgetui bundle …` as an operator runs it, on the real default bundle and the real runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgetui.config import Paths

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.model


def cli(home: Paths, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETUI_HOME": str(home.home)}
    return subprocess.run([sys.executable, "-m", "edgetui", "bundle", *args], capture_output=True, text=True,
                          env=env, timeout=900, cwd=REPO)


def ok_json(r: subprocess.CompletedProcess):
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """A data dir with the default bundle active and a signing key, plus a signed 1.1.0 archive."""
    from edgetui.session import ensure_default_bundle

    root = tmp_path_factory.mktemp("ota-cli")
    home = Paths(root / "home").ensure()
    ensure_default_bundle(home)
    key = ok_json(cli(home, "keygen", "--json"))
    built = ok_json(cli(home, "build", str(REPO / "bundles" / "field-policy"), "--out", str(root / "fp-1.1.0.tar"),
                        "--version", "1.1.0", "--json"))
    assert built["signed_by"] == key["key_id"] and len(built["tokenizer_sha256"]) == 64
    return root, home, key["key_id"]


def test_signed_bundle_installs_activates_rolls_back_and_both_verify(device):
    root, home, kid = device
    out = ok_json(cli(home, "install", str(root / "fp-1.1.0.tar"), "--activate", "--json"))
    assert out["ok"] and out["active"] == "field-policy@1.1.0"
    rows = {r["ref"]: r for r in ok_json(cli(home, "list", "--json"))}
    assert rows["field-policy@1.1.0"]["active"] and rows["field-policy@1.1.0"]["signer"] == kid
    assert ok_json(cli(home, "verify", "--active", "--json"))["ok"]
    back = ok_json(cli(home, "rollback", "--json"))
    assert back["active"] == "field-policy@1.0.0"
    for ref in ("field-policy@1.0.0", "field-policy@1.1.0"):
        assert ok_json(cli(home, "verify", ref, "--json"))["ok"]
    shown = ok_json(cli(home, "show", "--json"))
    assert shown["version"]["ref"] == "field-policy@1.0.0" and shown["manifest"]["runtime"]["model"]
    evs = [e["event"] for e in ok_json(cli(home, "history", "--json")) if e["event"] != "verify"]
    assert evs[:5] == ["rollback", "commit", "activate", "install", "install"]  # the last: first-run default
    again = ok_json(cli(home, "activate", "field-policy@1.1.0", "--json"))  # forward again: fingerprint re-checked
    assert again["active"] == "field-policy@1.1.0"


def test_the_first_run_bundle_is_signed_by_a_device_key_trusted_on_first_run(device):
    root, home, kid = device
    rows = {r["ref"]: r for r in ok_json(cli(home, "list", "--json"))}
    first = rows["field-policy@1.0.0"]
    assert first["signer"] and first["signer"] != kid and not first["unsigned"]  # the device key, made first
    assert ok_json(cli(home, "verify", "field-policy@1.0.0", "--json"))["signer"] == first["signer"]


def test_exit_codes_bad_input_2_refused_1(device, tmp_path):
    root, home, _ = device
    r = cli(home, "install", str(tmp_path / "missing.tar"))
    assert r.returncode == 2 and "not found" in r.stderr and r.stderr.count("\n") == 1
    assert cli(home, "activate", "not-a-ref").returncode == 2
    assert cli(home, "install", str(root / "fp-1.1.0.tar"), "--smoke").returncode == 2
    assert cli(home, "show", "field-policy@9.9.9").returncode == 2
    unsigned = tmp_path / "fp-1.2.0.tar"
    ok_json(cli(home, "build", str(REPO / "bundles" / "field-policy"), "--out", str(unsigned), "--version", "1.2.0",
                "--unsigned", "--json"))
    r = cli(home, "install", str(unsigned), "--json")
    assert r.returncode == 1 and "unsigned" in json.loads(r.stdout)["error"]
    assert ok_json(cli(home, "install", str(unsigned), "--allow-unsigned", "--json"))["ok"]
    hist = ok_json(cli(home, "history", "--ref", "field-policy@1.2.0", "--json"))
    assert any("--allow-unsigned" in e["reason"] for e in hist)


def test_a_tampered_archive_is_refused_and_a_damaged_store_fails_verify(device, tmp_path):
    _, home, _ = device
    bad = tmp_path / "fp-1.3.0.tar"
    ok_json(cli(home, "build", str(REPO / "bundles" / "field-policy"), "--out", str(bad), "--version", "1.3.0",
                "--json"))
    with tarfile.open(bad) as tar:
        m = tar.getmember("template.txt")
    with open(bad, "r+b") as f:
        f.seek(m.offset_data + 10)
        f.write(b"X")
    r = cli(home, "install", str(bad))
    assert r.returncode == 1 and "template.txt: sha256 does not match the manifest" in r.stderr
    assert not (home.store / "field-policy" / "1.3.0").exists()
    active = ok_json(cli(home, "show", "--json"))["version"]["ref"]
    model = home.store / "field-policy" / active.split("@")[1] / "model" / "model.gguf"
    with model.open("r+b") as f:
        f.seek(model.stat().st_size - 1)
        last = f.read(1)
        f.seek(model.stat().st_size - 1)
        f.write(bytes([last[0] ^ 1]))
    try:
        r = cli(home, "verify", "--active", "--json")
        assert r.returncode == 1 and json.loads(r.stdout)["problems"] == [
            "model/model.gguf: sha256 does not match the manifest"]
    finally:
        with model.open("r+b") as f:
            f.seek(model.stat().st_size - 1)
            f.write(last)


def test_revoked_key_is_refused_at_install(device, tmp_path):
    root, home, _ = device
    other = Paths(tmp_path / "other").ensure()
    kid = ok_json(cli(other, "keygen", "--json"))["key_id"]
    t = tmp_path / "fp-2.0.0.tar"
    ok_json(cli(other, "build", str(REPO / "bundles" / "field-policy"), "--out", str(t), "--version", "2.0.0",
                "--json"))
    r = cli(home, "install", str(t))
    assert r.returncode == 1 and "unknown key" in r.stderr
    ok_json(cli(home, "trust", str(other.keys / f"{kid}.pub"), "--json"))
    ok_json(cli(home, "revoke", kid, "--json"))
    r = cli(home, "install", str(t))
    assert r.returncode == 1 and "revoked key" in r.stderr
