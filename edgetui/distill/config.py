"""The distillation config: one TOML file, sections [run] [teacher] [capture] [student] [loss]
[train] [export] [package] [eval]. Unknown keys and sections are refused (a typo must not silently
fall back to a default); paths are relative to the config file's directory unless absolute.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from edgetui.config import REPO_ROOT, paths


class DistillConfigError(Exception):
    """A config that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class RunSection:
    name: str = "distill"
    out: str = ""  # default: <data dir>/distill/<name>


@dataclass(frozen=True)
class TeacherSection:
    bundle: str = ""  # a recipe under bundles/ (e.g. "field-policy")
    gguf: str = ""  # or a GGUF file, with template and corpus
    template: str = ""
    corpus: str = ""
    license: str = ""


@dataclass(frozen=True, kw_only=True)
class CaptureSettings:
    """What the capture run itself needs: [capture] adds the prompt choice, `CaptureJob` the paths."""

    k: int = 32
    hidden: bool = False
    max_tokens: int = 96
    n_ctx: int = 2048
    threads: int = 2
    shard_size: int = 32


@dataclass(frozen=True)
class CaptureSection(CaptureSettings):
    prompts: int = 200
    seed: int = 0
    k_sections: int = 3
    golden: str = "golden_sets/field-policy/v1.jsonl"


@dataclass(frozen=True)
class StudentSection:
    init: str = "teacher"  # teacher (depth-pruned) | random
    n_layers: int = 15
    keep_layers: list[int] = field(default_factory=list)  # empty: first 40% + last 60% of the student's depth
    dim: int = 0  # random init only; 0 = the teacher's
    n_heads: int = 0
    n_kv_heads: int = 0
    ffn_dim: int = 0
    seed: int = 0


@dataclass(frozen=True)
class LossSection:
    alpha: float = 0.8
    temperature: float = 2.0
    beta: float = 0.2


@dataclass(frozen=True)
class TrainSection:
    """Also the trainer's own config (`edgetui.distill.train` takes it as is)."""

    epochs: float = 1.0
    batch_size: int = 4  # sequences per micro-batch, on each process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10  # linear warmup to lr, then cosine decay to lr * min_lr_ratio
    weight_decay: float = 0.01  # AdamW, on weight matrices only
    grad_clip: float = 1.0
    val_fraction: float = 0.05
    val_every: int = 50  # optimizer steps (and after the last one)
    checkpoint_every: int = 50  # optimizer steps (and after the last one)
    seed: int = 0
    dtype: str = "fp32"  # fp32 | bf16 (autocast)
    threads: int = 2  # 0: torch's default
    max_seq: int = 1024  # tokens per training sequence: longer ones are cut, a longer prompt skips it
    max_steps: int = 0  # 0: derived from epochs


@dataclass(frozen=True)
class ExportSection:
    formats: list[str] = field(default_factory=lambda: ["f16", "q8_0", "onnx"])


@dataclass(frozen=True)
class PackageSection:
    name: str = "field-policy-student"
    version: str = "0.1.0"
    model: str = "q8_0"  # which export the bundle runs: f16 | q8_0 | q4_1 | onnx
    sign: bool = True


@dataclass(frozen=True)
class EvalSection:
    enabled: bool = True
    limit: int = 0  # 0: the whole golden set


SECTIONS = {"run": RunSection, "teacher": TeacherSection, "capture": CaptureSection, "student": StudentSection,
            "loss": LossSection, "train": TrainSection, "export": ExportSection, "package": PackageSection,
            "eval": EvalSection}


@dataclass(frozen=True)
class DistillConfig:
    path: Path
    text: str
    run: RunSection
    teacher: TeacherSection
    capture: CaptureSection
    student: StudentSection
    loss: LossSection
    train: TrainSection
    export: ExportSection
    package: PackageSection
    eval: EvalSection

    def resolve(self, p: str) -> Path:
        """A path from the config: absolute, else relative to the config file, else to the repo."""
        q = Path(p).expanduser()
        if q.is_absolute():
            return q
        near = self.path.parent / q
        return near if near.exists() or not (REPO_ROOT / q).exists() else REPO_ROOT / q

    @property
    def out_dir(self) -> Path:
        return self.resolve(self.run.out) if self.run.out else paths().home / "distill" / self.run.name

    @property
    def capture_dir(self) -> Path:
        return self.out_dir / "capture"

    @property
    def train_dir(self) -> Path:
        return self.out_dir / "train"

    @property
    def export_dir(self) -> Path:
        return self.out_dir / "export"

    @property
    def bundle_dir(self) -> Path:
        return self.out_dir / "bundle"


def _section(name: str, cls, raw: dict):
    if not isinstance(raw, dict):
        raise DistillConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise DistillConfigError(f"unknown key(s) {unknown} in [{name}]: allowed {sorted(known)}")
    for k, v in raw.items():
        default = cls().__getattribute__(k)
        ok = (isinstance(v, type(default)) or (isinstance(default, float) and isinstance(v, int))) \
            and not (isinstance(v, bool) and not isinstance(default, bool))
        if not ok:
            raise DistillConfigError(f"[{name}] {k} = {v!r} should be a {type(default).__name__}")
    return cls(**raw)


def load_config(path: str | Path) -> DistillConfig:
    path = Path(path)
    if not path.is_file():
        raise DistillConfigError(f"config {path} not found: see configs/distill-demo.toml for an example")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DistillConfigError(f"{path} is not valid TOML: {e}") from e
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise DistillConfigError(f"unknown section(s) {unknown} in {path}: allowed {sorted(SECTIONS)}")
    parts = {name: _section(name, cls, raw.get(name, {})) for name, cls in SECTIONS.items()}
    cfg = DistillConfig(path=path.resolve(), text=text, **parts)
    _check(cfg)
    return cfg


def _check(c: DistillConfig) -> None:
    if bool(c.teacher.bundle) == bool(c.teacher.gguf):
        raise DistillConfigError("[teacher] needs exactly one of `bundle` (a recipe in bundles/) or `gguf` (a file)")
    if c.teacher.gguf and not (c.teacher.template and c.teacher.corpus):
        raise DistillConfigError("[teacher] gguf needs `template` and `corpus` too")
    if c.student.init not in ("teacher", "random"):
        raise DistillConfigError(f"[student] init = {c.student.init!r}: use 'teacher' or 'random'")
    bad = [f for f in c.export.formats if f not in ("f16", "q8_0", "q4_1", "onnx")]
    if bad:
        raise DistillConfigError(f"[export] formats {bad} unknown: use f16, q8_0, q4_1, onnx")
    if c.package.model not in c.export.formats:
        raise DistillConfigError(f"[package] model = {c.package.model!r} is not among [export] formats")
    if c.train.dtype not in ("fp32", "bf16"):
        raise DistillConfigError(f"[train] dtype = {c.train.dtype!r}: use fp32 or bf16")
    if not 1 <= c.capture.k <= 256:
        raise DistillConfigError(f"[capture] k = {c.capture.k}: use 1..256")
