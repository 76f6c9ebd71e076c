"""The distill pipeline end to end on CPU: a short real capture from the default model, a tiny
training run, exports, a signed bundle that installs and answers, and the bad inputs refused early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.train, pytest.mark.model, pytest.mark.slow]

from typer.testing import CliRunner  # noqa: E402

from edgetui.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = """
[run]
name = "tiny"
out = "{out}"

[teacher]
bundle = "field-policy"

[capture]
prompts = 4
max_tokens = 12
shard_size = 2
threads = 2

[student]
init = "random"
n_layers = 2
dim = 64
n_heads = 4
n_kv_heads = 2
ffn_dim = 128

[train]
max_steps = 3
batch_size = 2
warmup_steps = 1
val_every = 2
checkpoint_every = 2
threads = 2

[export]
formats = ["f16", "onnx"]

[package]
name = "tiny-student"
version = "0.0.1"
model = "f16"

[eval]
enabled = false
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One `edgetui distill run` on the tiny config, in its own data dir."""
    base = tmp_path_factory.mktemp("distill_run")
    home, out = base / "home", base / "out"
    cfg = base / "tiny.toml"
    cfg.write_text(TINY.format(out=out))
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETUI_HOME", str(home))
    result = CliRunner().invoke(app, ["distill", "run", "--config", str(cfg)])
    yield {"result": result, "cfg": cfg, "out": out, "home": home, "mp": mp}
    mp.undo()


def test_tiny_distill_run_completes_and_reports(tiny_run):
    r = tiny_run["result"]
    assert r.exit_code == 0, r.output
    report = json.loads((tiny_run["out"] / "report.json").read_text())
    assert report["capture"]["sequences"] == 4 and report["capture"]["generated_tokens"] > 0
    assert report["train"]["steps"] == 3 and report["train"]["tokens_per_s"] > 0
    assert Path(report["export"]["f16"]).is_file() and Path(report["export"]["onnx"]).is_file()
    assert report["package"]["signed_by"]


def test_capture_manifest_records_hashes_and_sizes(tiny_run):
    m = json.loads((tiny_run["out"] / "capture" / "manifest.json").read_text())
    assert m["k"] == 32 and m["teacher"] == "field-policy@1.0.0"
    assert len(m["teacher_sha256"]) == 64 and len(m["template_sha256"]) == 64
    assert m["bytes_per_token"] > 0 and m["prompt_tokens"] > m["generated_tokens"] > 0
    from edgetui.distill.capture import load_shards

    seqs = load_shards(tiny_run["out"] / "capture")
    for s in seqs:
        assert s["topk_ids"].shape[1] == 32 and len(s["tokens"]) == s["n_prompt"] + len(s["topk_ids"])
        lp = s["topk_logprobs"]
        assert (lp[:, :-1] >= lp[:, 1:]).all() and (lp <= 0).all()  # sorted log-probs
        if not m["grammar"]:  # greedy and unconstrained: the generated token is the teacher's top-1
            assert (s["tokens"][s["n_prompt"]:] == s["topk_ids"][:, 0]).all()


def test_capture_resumes_without_redoing_shards(tiny_run):
    from edgetui.distill import pipeline
    from edgetui.distill.config import load_config

    cfg = load_config(tiny_run["cfg"])
    shard = tiny_run["out"] / "capture" / "shard-00000.npz"
    before = shard.stat().st_mtime_ns
    (tiny_run["out"] / "capture" / "shard-00001.npz").unlink()
    m = pipeline.capture(cfg)
    assert m["sequences"] == 4 and shard.stat().st_mtime_ns == before


def test_student_bundle_installs_and_answers(tiny_run):
    from edgetui.config import paths
    from edgetui.ota.manager import Ota
    from edgetui.ota.manifest import Manifest

    report = json.loads((tiny_run["out"] / "report.json").read_text())
    bundle_dir = Path(report["package"]["bundle"])
    m = Manifest.load(bundle_dir / "manifest.json")
    assert m.runtime["engine"] == "llama" and m.signature
    assert m.provenance["teacher"] == "field-policy@1.0.0" and m.provenance["license"] == "Apache-2.0"
    assert len(m.provenance["capture_manifest_sha256"]) == 64
    out = Ota(paths()).install(bundle_dir, activate=True)
    assert out.ok, out.message
    r = CliRunner().invoke(app, ["generate", "What PPE is needed?", "--max-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output.strip().splitlines()[-1])
    assert got["bundle"] == "tiny-student@0.0.1" and got["stats"]["decode_tokens"] >= 1


def test_onnx_bundle_packages_with_its_tokenizer(tiny_run):
    from edgetui.distill import pipeline
    from edgetui.distill.config import load_config
    from edgetui.engine.base import GenParams
    from edgetui.ota.bundle import Bundle

    cfg = load_config(tiny_run["cfg"])
    out, info = pipeline.package(cfg, "onnx")
    b = Bundle.open(out)
    assert b.runtime["engine"] == "onnx" and not b.verify()
    assert (out / "model" / "tokenizer.json").is_file()
    eng = b.engine()
    try:
        text, stats = eng.complete(b.chat_prompt("hello"), GenParams(max_tokens=3))
        assert stats.decode_tokens >= 1
    finally:
        eng.close()


def _config_with(tmp_path, tiny_run, old: str, new: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(tiny_run["cfg"].read_text().replace(old, new))
    return p


def test_unknown_config_key_is_refused_in_one_line(tmp_path, tiny_run):
    bad = _config_with(tmp_path, tiny_run, "max_steps = 3", "max_stepz = 3")
    r = CliRunner().invoke(app, ["distill", "train", "--config", str(bad)])
    assert r.exit_code == 2 and "max_stepz" in r.output


def test_checkpoint_from_another_architecture_is_refused(tmp_path, tiny_run):
    bad = _config_with(tmp_path, tiny_run, "n_layers = 2", "n_layers = 3")
    r = CliRunner().invoke(app, ["distill", "train", "--config", str(bad), "--resume"])
    assert r.exit_code == 2 and "another architecture" in r.output


def test_capture_made_with_another_template_is_refused(tmp_path, tiny_run, model_path):
    tpl = tmp_path / "other.txt"
    tpl.write_text("{context}\n{question}")
    bad = _config_with(tmp_path, tiny_run, 'bundle = "field-policy"',
                       f'gguf = "{model_path}"\ntemplate = "{tpl}"\ncorpus = "{REPO}/bundles/field-policy/corpus"')
    r = CliRunner().invoke(app, ["distill", "train", "--config", str(bad)])
    assert r.exit_code == 2 and "another prompt template" in r.output


def test_too_little_disk_is_refused_before_capturing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from edgetui.distill.capture import CaptureError, CaptureJob, run_capture

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
    job = CaptureJob("unused.gguf", str(tmp_path / "cap"), max_tokens=96)
    prompts = [{"id": str(i), "prompt": "x"} for i in range(1000)]
    with pytest.raises(CaptureError, match="MB free"):
        run_capture(job, prompts, {"teacher_sha256": "t", "template_sha256": "p"})
    assert not (tmp_path / "cap" / "prompts.jsonl").exists()
