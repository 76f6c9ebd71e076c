"""The wheel is the product outside the checkout: it carries the default recipe (bundles/field-policy with
its corpus), the golden sets, the migrations, the styles and every module; unpacked on its own and run from
/tmp with an empty data dir, `edgetui doctor` builds the default bundle from that package data and passes.

The wheel is built offline (`--no-index`, `--no-build-isolation`: setuptools from the venv) from a copy of
the working tree, because setuptools builds in the source tree (build/, *.egg-info) and the checkout is
shared. The unpacked wheel goes first on PYTHONPATH and `-P` keeps the working directory off sys.path; the
probe asserts that what runs is the unpacked copy, not the checkout (or the venv's editable install).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCES = shutil.ignore_patterns(".venv", ".cache", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", "snapshot_report.html")
RECIPE = "edgetui/data/bundles/field-policy"
GOLDEN = "edgetui/data/golden_sets/field-policy"

# Where the code, the recipes and the golden sets come from (one JSON line on stderr), then the CLI itself.
PROBE = """
import json, sys
import edgetui, edgetui.session, edgetui.evals.golden as golden
print(json.dumps({"edgetui": edgetui.__file__, "recipes": str(edgetui.session.RECIPES),
                  "golden": str(golden.default_golden_path("field-policy"))}), file=sys.stderr, flush=True)
sys.argv = ["edgetui", *sys.argv[1:]]
from edgetui.cli import main
main()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCES, symlinks=True)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                        "-w", str(tmp / "dist"), "."], cwd=src, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    [whl] = (tmp / "dist").glob("edgetui-*.whl")
    return whl


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(d)
    return d


def edgetui_from(unpacked: Path, home: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the CLI from the unpacked wheel in /tmp with `home` as the only data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGETUI_") and k != "PYTHONPATH"}
    env.update(EDGETUI_HOME=str(home), PYTHONPATH=str(unpacked))
    r = subprocess.run([sys.executable, "-P", "-c", PROBE, *args], cwd="/tmp", env=env, capture_output=True,
                       text=True, timeout=timeout)
    line = next((ln for ln in r.stderr.splitlines() if ln.startswith("{")), None)
    assert line is not None, f"the probe did not run (exit {r.returncode}):\n{r.stderr[-4000:]}"
    where = json.loads(line)
    for what, path in where.items():  # the code and its data come from the unpacked wheel, not the checkout
        assert Path(path).resolve().is_relative_to(unpacked.resolve()), f"{what} came from {path}"
    return r, where


def test_the_wheel_carries_the_recipe_the_golden_sets_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipe = REPO / "bundles" / "field-policy"
    assert f"{RECIPE}/bundle.toml" in names and f"{RECIPE}/template.txt" in names
    corpus = sorted(f.name for f in (recipe / "corpus").glob("*.md"))
    assert len(corpus) >= 16
    assert sorted(n.rpartition("/")[2] for n in names if n.startswith(f"{RECIPE}/corpus/")) == corpus
    shipped = {f"{RECIPE}/{f.relative_to(recipe).as_posix()}" for f in recipe.rglob("*") if f.is_file()}
    assert shipped <= names, f"recipe files missing from the wheel: {sorted(shipped - names)}"
    for v in ("v1", "dev"):
        assert {f"{GOLDEN}/{v}.jsonl", f"{GOLDEN}/{v}.manifest.json"} <= names
    modules = {f.relative_to(REPO).as_posix() for pkg in ("edgetui", "screens") for f in (REPO / pkg).rglob("*.py")
               if "__pycache__" not in f.parts}
    missing = sorted(modules - names)
    assert not missing, f"modules missing from the wheel (add their package to pyproject's packages): {missing}"
    assert {f"edgetui/migrations/{f.name}" for f in (REPO / "edgetui" / "migrations").glob("*.sql")} <= names
    assert {f"screens/{f.name}" for f in (REPO / "screens").glob("*.tcss")} <= names
    assert not any(n.startswith(("tests/", "bench/", "bundles/", "golden_sets/")) for n in names)


def test_the_unpacked_wheel_runs_from_tmp_with_its_own_data_and_shell_completion(unpacked, tmp_path):
    r, where = edgetui_from(unpacked, tmp_path / "home", "--help", timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "--install-completion" in r.stdout and "doctor" in r.stdout
    assert Path(where["golden"]).name == "v1.jsonl"
    assert (Path(where["recipes"]) / "field-policy" / "bundle.toml").is_file()


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_doctor_from_the_unpacked_wheel_builds_the_default_bundle_from_package_data(unpacked, tmp_path):
    home = tmp_path / "home"
    r, _ = edgetui_from(unpacked, home, "doctor", timeout=840)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-4000:]}"
    assert "active bundle: field-policy@1.0.0 verifies" in r.stdout and "[ok  ] crash probe" in r.stdout
    assert (home / "store" / "field-policy" / "1.0.0" / "manifest.json").is_file()  # built on this first run
