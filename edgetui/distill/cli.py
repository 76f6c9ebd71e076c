"""CLI commands of the distill part: `edgetui distill capture|train|export|package|run --config FILE`.

Torch is an optional extra: nothing here imports it (or any module that does) until a command runs,
so `edgetui --help` works without it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from edgetui.cli_errors import fail

distill_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Distil a teacher bundle into a smaller student bundle (needs the train extra).")
CONFIG = typer.Option(..., "--config", "-c", help="Distillation config (TOML), e.g. configs/distill-demo.toml.")
RESUME = typer.Option(False, "--resume", help="Continue training from the last checkpoint.")
EVAL = typer.Option(True, "--eval/--no-eval", help="Install the bundle (not activated) and run the golden set.")
FORMAT = typer.Option(None, "--format", help="Export to bundle: f16, q8_0, q4_1 or onnx (default: the config's).")


def _errors() -> tuple[type[Exception], ...]:
    from edgetui.config import ConfigError
    from edgetui.distill.capture import CaptureError
    from edgetui.distill.config import DistillConfigError
    from edgetui.ota.manifest import ManifestError
    from edgetui.ota.recipe import RecipeError

    errs: list[type[Exception]] = [ConfigError, CaptureError, DistillConfigError, ManifestError, RecipeError]
    try:
        from edgetui.ota.errors import OtaError

        errs.append(OtaError)
    except ImportError:
        pass
    try:
        from edgetui.distill.gguf_io import GGUFError
        from edgetui.distill.train import TrainError

        errs += [GGUFError, TrainError]
    except ImportError:
        pass
    return tuple(errs)


def _load(config: Path):
    try:
        import torch  # noqa: F401
    except ImportError:
        fail("torch is not installed: pip install -e '.[train]' (torch==2.13.0 is the CPU wheel)")
    from edgetui.distill.config import DistillConfigError, load_config

    try:
        return load_config(config)
    except DistillConfigError as e:
        fail(str(e))


def _capture_progress():
    t0 = time.monotonic()

    def show(done: int, total: int, tokens: int) -> None:
        el = time.monotonic() - t0
        eta = el / max(done, 1) * (total - done) / 60
        sys.stderr.write(f"\rcapture {done}/{total} prompts | {tokens} teacher tokens | "
                         f"{tokens / max(el, 1e-6):.1f} tok/s | ETA {eta:.1f} min ")
        sys.stderr.flush()
        if done == total:
            sys.stderr.write("\n")

    return show


def _step(name: str, fn, *a, **kw):
    t0 = time.monotonic()
    typer.echo(f"== {name}", err=True)
    try:
        out = fn(*a, **kw)
    except _errors() as e:
        fail(f"{name}: {e}")
    typer.echo(f"== {name} done in {time.monotonic() - t0:.0f} s", err=True)
    return out


@distill_app.command("capture")
def capture_cmd(config: Path = CONFIG) -> None:
    """Teacher answers the generated prompts; keep its top-k log-probs per token (resumable)."""
    from edgetui.distill import pipeline

    cfg = _load(config)
    m = _step("capture", pipeline.capture, cfg, _capture_progress())
    typer.echo(json.dumps({k: v for k, v in m.items() if k != "shards"}, indent=2))


@distill_app.command("train")
def train_cmd(config: Path = CONFIG, resume: bool = RESUME) -> None:
    """Train the student on the capture (progress bar with loss parts, tokens/s, ETA)."""
    from edgetui.distill import pipeline

    cfg = _load(config)
    s = _step("train", pipeline.train, cfg, resume=resume)
    typer.echo(json.dumps({k: s[k] for k in ("steps", "tokens", "tokens_per_s", "val_loss_start", "val_loss")
                           if k in s}, indent=2))


@distill_app.command("export")
def export_cmd(config: Path = CONFIG) -> None:
    """Export the trained student: GGUF f16 / Q8_0 for llama.cpp, ONNX (KV cache) for onnxruntime."""
    from edgetui.distill import pipeline

    cfg = _load(config)
    paths = _step("export", pipeline.export, cfg)
    typer.echo(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))


@distill_app.command("package")
def package_cmd(config: Path = CONFIG, fmt: str = FORMAT, evaluate: bool = EVAL) -> None:
    """Build a signed bundle with provenance; then install it (not activated) and evaluate it."""
    from edgetui.distill import pipeline

    cfg = _load(config)
    out, info = _step("package", pipeline.package, cfg, fmt)
    if evaluate and cfg.eval.enabled:
        info["eval"] = _summary(_step("eval", pipeline.install_and_eval, cfg, out))
    typer.echo(json.dumps(info, indent=2, default=str))


@distill_app.command("run")
def run_cmd(config: Path = CONFIG, resume: bool = RESUME, evaluate: bool = EVAL) -> None:
    """capture → train → export → package → eval, in one go (each step resumes where it can)."""
    from edgetui.distill import pipeline

    cfg = _load(config)
    report: dict = {"config": str(cfg.path), "out": str(cfg.out_dir)}
    cap = _step("capture", pipeline.capture, cfg, _capture_progress())
    report["capture"] = {k: cap[k] for k in ("sequences", "generated_tokens", "bytes_per_token")}
    s = _step("train", pipeline.train, cfg, resume=resume)
    report["train"] = {k: s.get(k) for k in ("steps", "tokens", "tokens_per_s", "val_loss_start", "val_loss")}
    report["export"] = {k: str(v) for k, v in _step("export", pipeline.export, cfg).items()}
    out, info = _step("package", pipeline.package, cfg)
    report["package"] = info
    if evaluate and cfg.eval.enabled:
        report["eval"] = _summary(_step("eval", pipeline.install_and_eval, cfg, out))
    (cfg.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    typer.echo(json.dumps(report, indent=2, default=str))


@distill_app.command("intent")
def intent_cmd(config: Path = CONFIG) -> None:
    """Train the intent gate classifier (policy / escalation / small talk / out of scope), export ONNX."""
    from edgetui.distill import pipeline

    cfg = _load(config)
    typer.echo(json.dumps(_step("intent", pipeline.intent, cfg), indent=2))


def _summary(ev: dict) -> dict:
    e = ev.get("eval")
    if not isinstance(e, dict):
        return ev
    return {"ref": ev["ref"], "quality": e.get("quality"), "slices": e.get("slices"), "latency": e.get("latency"),
            "gate": (e.get("gate") or {}).get("passed")}


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.add_typer(distill_app, name="distill")
