"""The steps `edgetui distill` chains: capture → train → export → package → eval.

Each step reads what the previous one left under the run's output directory, so any step can be
re-run alone. Everything a long step needs is checked before it starts (teacher, template and
tokenizer identity, architecture of a checkpoint, disk), and fails with one line naming the fix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from edgetui.config import REPO_ROOT, paths
from edgetui.distill.config import DistillConfig, DistillConfigError


@dataclass(frozen=True)
class TeacherInfo:
    ref: str  # bundle recipe name, or the GGUF path
    gguf: Path
    template: str
    corpus: Path
    license: str
    sha256: str
    runtime: dict
    bars: dict


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve_teacher(cfg: DistillConfig) -> TeacherInfo:
    from edgetui.distill.capture import sha256_path
    from edgetui.ota.recipe import RecipeError, load_recipe, locate_model

    t = cfg.teacher
    if t.bundle:
        recipe_dir = REPO_ROOT / "bundles" / t.bundle
        try:
            r = load_recipe(recipe_dir)
            gguf = locate_model(r["model"], recipe_dir)
        except (RecipeError, KeyError) as e:
            raise DistillConfigError(f"[teacher] bundle {t.bundle!r}: {e}") from e
        template = (recipe_dir / r["prompt"]["template"]).read_text(encoding="utf-8")
        corpus = recipe_dir / r.get("corpus", {}).get("dir", "corpus")
        return TeacherInfo(f"{r['name']}@{r['version']}", gguf, template, corpus,
                           t.license or r["model"].get("license", "unknown"), sha256_path(gguf),
                           dict(r.get("runtime", {})), dict(r.get("bars", {})))
    gguf, tpl, corpus = cfg.resolve(t.gguf), cfg.resolve(t.template), cfg.resolve(t.corpus)
    for p in (gguf, tpl, corpus):
        if not p.exists():
            raise DistillConfigError(f"[teacher] {p} does not exist: fix the path in {cfg.path}")
    return TeacherInfo(str(gguf), gguf, tpl.read_text(encoding="utf-8"), corpus, t.license or "unknown",
                       sha256_path(gguf), {"engine": "llama", "chat_format": "chatml", "n_ctx": 2048}, {})


# -- capture ------------------------------------------------------------------------------------
def capture(cfg: DistillConfig, progress=None) -> dict:
    from edgetui.distill import prompts
    from edgetui.distill.capture import CaptureJob, run_capture
    from edgetui.distill.gguf_io import read_teacher

    t = resolve_teacher(cfg)
    c = cfg.capture
    golden = cfg.resolve(c.golden) if c.golden else None
    plist, refused = prompts.generate(t.corpus, t.template, golden, limit=c.prompts, seed=c.seed,
                                      k_sections=c.k_sections)
    meta = {"teacher": t.ref, "teacher_sha256": t.sha256, "template_sha256": _sha(t.template.encode()),
            "tokenizer_sha256": read_teacher(t.gguf).tokenizer_hash(), "prompts_refused_by_golden_guard": refused,
            "prompt_kinds": _count(p.kind for p in plist), "grammar": any(p.grammar for p in plist)}
    job = CaptureJob.of(str(t.gguf), str(cfg.capture_dir), c)
    return run_capture(job, [p.to_dict() for p in plist], meta, progress)


def _count(items) -> dict:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def capture_manifest(cfg: DistillConfig, t: TeacherInfo, teacher_tok_hash: str) -> dict:
    """The capture's manifest, after checking it was made by this teacher, template and tokenizer."""
    p = cfg.capture_dir / "manifest.json"
    if not p.is_file():
        raise DistillConfigError(f"no finished capture in {cfg.capture_dir}: run `edgetui distill capture` first")
    m = json.loads(p.read_text())
    if m.get("template_sha256") != _sha(t.template.encode()):
        raise DistillConfigError(f"capture in {cfg.capture_dir} was made with another prompt template than "
                                 f"{t.ref}'s: capture again into a new [run] out")
    if m.get("teacher_sha256") != t.sha256:
        raise DistillConfigError(f"capture in {cfg.capture_dir} was made by another teacher model: capture again")
    if m.get("tokenizer_sha256") != teacher_tok_hash:
        raise DistillConfigError("capture tokenizer differs from the teacher's: the student must share the "
                                 "teacher's vocabulary; capture again")
    return m


# -- train --------------------------------------------------------------------------------------
def build_student(cfg: DistillConfig, teacher):
    from edgetui.distill.gguf_io import default_keep_layers, student_from_teacher
    from edgetui.distill.model import Student, StudentConfig

    s = cfg.student
    if s.init == "teacher":
        keep = list(s.keep_layers) or default_keep_layers(teacher.config.n_layers, s.n_layers)
        return student_from_teacher(teacher, keep), keep
    tc = teacher.config
    sc = StudentConfig(vocab_size=tc.vocab_size, dim=s.dim or tc.dim, n_layers=s.n_layers,
                       n_heads=s.n_heads or tc.n_heads, n_kv_heads=s.n_kv_heads or tc.n_kv_heads,
                       ffn_dim=s.ffn_dim or tc.ffn_dim, rope_theta=tc.rope_theta, norm_eps=tc.norm_eps,
                       max_seq=tc.max_seq)
    if sc.dim % sc.n_heads or sc.n_heads % sc.n_kv_heads:
        raise DistillConfigError(f"[student] dim {sc.dim} / heads {sc.n_heads} / kv heads {sc.n_kv_heads} "
                                 "must divide evenly")
    return Student(sc).init_random(s.seed), []


def train(cfg: DistillConfig, resume: bool = False) -> dict:
    import torch

    from edgetui.distill.capture import load_shards
    from edgetui.distill.gguf_io import read_teacher
    from edgetui.distill.losses import LossWeights
    from edgetui.distill.train import train as train_loop

    t = resolve_teacher(cfg)
    teacher = read_teacher(t.gguf)
    cm = capture_manifest(cfg, t, teacher.tokenizer_hash())
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    model, keep = build_student(cfg, teacher)
    if model.config.vocab_size != teacher.config.vocab_size:
        raise DistillConfigError("student and teacher vocabularies differ: the student must use the teacher's")
    seqs = load_shards(cfg.capture_dir)
    beta = cfg.loss.beta if cm.get("hidden") else 0.0
    weights = LossWeights(cfg.loss.alpha, cfg.loss.temperature, beta)
    tc = cfg.train
    pad = int(teacher.tokenizer_fields.get("tokenizer.ggml.padding_token_id",
                                           teacher.tokenizer_fields.get("tokenizer.ggml.eos_token_id", (0,)))[0])
    print(f"student: {model.config.n_layers} layers (teacher blocks {keep or 'random init'}), "
          f"{model.n_params() / 1e6:.1f} M params; {len(seqs)} captured sequences", file=sys.stderr)
    summary = train_loop(model, seqs, cfg.train_dir, tc, weights, pad, resume=resume)
    summary.update(student_config=model.config.to_dict(), keep_layers=keep, loss_weights=asdict(weights),
                   teacher_params=teacher.config.n_layers)
    (cfg.train_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


# -- export -------------------------------------------------------------------------------------
def export(cfg: DistillConfig) -> dict[str, Path]:
    from edgetui.distill.export import export_all
    from edgetui.distill.gguf_io import read_teacher
    from edgetui.distill.train import CHECKPOINT, load_student_checkpoint

    ck = cfg.train_dir / CHECKPOINT
    if not ck.is_file():
        raise DistillConfigError(f"no checkpoint at {ck}: run `edgetui distill train` first")
    t = resolve_teacher(cfg)
    model = load_student_checkpoint(ck)
    return export_all(model, cfg.export_dir, read_teacher(t.gguf).tokenizer_fields, tuple(cfg.export.formats),
                      name=cfg.package.name)


# -- package ------------------------------------------------------------------------------------
def package(cfg: DistillConfig, model_format: str | None = None, version: str | None = None) -> tuple[Path, dict]:
    """Build a bundle directory for the student (provenance from teacher, capture and config) and sign it."""
    import tomllib

    from edgetui.ota.manifest import Manifest, entry_for, sha256_file
    from edgetui.ota.recipe import build

    fmt = model_format or cfg.package.model
    t = resolve_teacher(cfg)
    src = cfg.export_dir / "onnx" / "model.onnx" if fmt == "onnx" else cfg.export_dir / f"student-{fmt}.gguf"
    if not src.is_file():
        raise DistillConfigError(f"no {fmt} export at {src}: run `edgetui distill export` first")
    cap = cfg.capture_dir / "manifest.json"
    version = version or cfg.package.version
    name = cfg.package.name if fmt == cfg.package.model else f"{cfg.package.name}-{fmt.replace('_', '')}"
    out = cfg.bundle_dir / f"{name}-{version}"
    if out.exists():
        shutil.rmtree(out)
    runtime = {k: v for k, v in t.runtime.items() if k != "model"}
    runtime["engine"] = "onnx" if fmt == "onnx" else "llama"
    provenance = {"teacher": t.ref, "teacher_sha256": t.sha256, "license": t.license,
                  "capture_manifest_sha256": sha256_file(cap) if cap.is_file() else "",
                  "distill_config_sha256": _sha(cfg.text.encode()), "distill_config": tomllib.loads(cfg.text),
                  "student_format": fmt}
    recipe = {"name": name, "version": version, "model": {"path": str(src), "license": t.license},
              "prompt": {"template": "template.txt"}, "corpus": {"dir": str(t.corpus)}, "runtime": runtime,
              "bars": t.bars, "provenance": provenance}
    with tempfile.TemporaryDirectory(prefix="edgetui-distill-recipe-") as tmp:
        rdir = Path(tmp)
        (rdir / "template.txt").write_text(t.template, encoding="utf-8")
        (rdir / "bundle.toml").write_text(_toml(recipe), encoding="utf-8")
        fingerprint = None
        if fmt == "onnx":
            def fingerprint(bundle, _tok=src.with_name("tokenizer.json")):
                from edgetui.ota.fingerprint import compute

                shutil.copyfile(_tok, bundle.root / "model" / "tokenizer.json")
                return compute(bundle)
        m = build(rdir, out, version, fingerprint=fingerprint)
    if fmt == "onnx":  # list the tokenizer the ONNX runtime reads beside the model
        from dataclasses import replace

        files = tuple(entry_for(out, p.relative_to(out).as_posix()) for p in sorted(out.rglob("*"))
                      if p.is_file() and p.name != "manifest.json")
        m = replace(m, files=files)
        m.save(out / "manifest.json")
    signed_by = _sign(out, m) if cfg.package.sign else None
    m = Manifest.load(out / "manifest.json")
    model_bytes = sum(p.stat().st_size for p in (out / "model").iterdir())
    return out, {"bundle": str(out), "ref": m.ref, "signed_by": signed_by, "format": fmt,
                 "model_bytes": model_bytes, "manifest_sha256": sha256_file(out / "manifest.json")}


def _sign(out: Path, m) -> str:
    """Sign with the newest key in the data dir, creating (and trusting) one when there is none."""
    from edgetui.ota.keys import Keyring

    keys = Keyring(paths().ensure().keys)
    if not keys.private_keys():
        kid = keys.keygen(trust=True)
        print(f"created signing key {kid} (trusted on this device; hand out {keys.root / (kid + '.pub')})",
              file=sys.stderr)
    signed = keys.sign(m)
    signed.save(out / "manifest.json")
    return signed.signature["key_id"]


def _toml(d: dict, prefix: str = "") -> str:
    """Tiny TOML writer for the recipe (strings, numbers, bools, lists, nested tables)."""
    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = f"{prefix}{k}"
        out += f"\n[{name}]\n" + _toml(v, name + ".")
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


# -- intent gate --------------------------------------------------------------------------------
def intent(cfg: DistillConfig) -> dict:
    from edgetui.distill.intent import compare_with_rules, examples, train_intent

    t = resolve_teacher(cfg)
    golden = cfg.resolve(cfg.capture.golden) if cfg.capture.golden else None
    data = examples(t.corpus, t.template, golden, seed=cfg.capture.seed)
    out = cfg.out_dir / "intent" / "intent.onnx"
    report = train_intent(data, out, seed=cfg.train.seed)
    report.update(model=str(out), **compare_with_rules(out, data, golden, t.corpus))
    (out.parent / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


# -- eval ---------------------------------------------------------------------------------------
def install_and_eval(cfg: DistillConfig, bundle_dir: Path, smoke: bool = False) -> dict:
    """Install the bundle into the store (not activated) and run the golden set on it."""
    from edgetui.ota.manager import Ota
    from edgetui.ota.manifest import Manifest
    from edgetui.session import store

    p = paths().ensure()
    m = Manifest.load(bundle_dir / "manifest.json")
    out = Ota(p).install(bundle_dir, activate=False, allow_unsigned=not cfg.package.sign)
    if not out.ok:
        raise DistillConfigError(f"installing {m.ref} failed: {out.message}")
    import importlib.util

    if importlib.util.find_spec("edgetui.assistant.pipeline") is None:
        return {"ref": m.ref, "installed": True, "eval": "skipped: the assistant pipeline is not installed"}
    from edgetui.evals.runner import evaluate_bundle
    golden = cfg.resolve(cfg.capture.golden) if cfg.capture.golden else None
    outcome = evaluate_bundle(store(p).get(m.name, m.version), p, golden_path=golden, smoke=smoke, fresh=True)
    return {"ref": m.ref, "installed": True, "eval": eval_summary(outcome)}


def eval_summary(outcome) -> dict:
    from edgetui.evals import report

    return report.outcome_json(outcome)
