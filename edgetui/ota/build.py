"""Make bundle archives: build one from a recipe, sign an existing one (directory or tar)."""

from __future__ import annotations

from pathlib import Path

from edgetui.config import Paths
from edgetui.ota.archive import DirSource, open_source, payload_problem, write_tar
from edgetui.ota.errors import BadInput
from edgetui.ota.keys import Keyring
from edgetui.ota.manifest import MANIFEST_NAME, Manifest, ManifestError
from edgetui.ota.recipe import build
from edgetui.ota.store import atomic_write


def build_archive(paths: Paths, recipe_dir: Path, out: Path, tmp: Path, version: str | None = None,
                  key: str | None = None, sign: bool = True, fingerprint=None) -> Manifest:
    """Build `recipe_dir` into a tar at `out`, signed with `key` (or the newest key when there is one)."""
    if not recipe_dir.is_dir():
        raise BadInput(f"{recipe_dir} is not a recipe directory (it needs a bundle.toml)")
    if out.exists() and out.is_dir():
        raise BadInput(f"--out {out} is a directory: give a file name such as bundle.tar")
    m = build(recipe_dir, tmp / "bundle", version, fingerprint=fingerprint)
    keys = Keyring(paths.keys)
    if sign and (key or keys.private_keys()):
        m = keys.sign(m, key)
    write_tar(out, m, payload_root=tmp / "bundle")
    return m


def sign_bundle(paths: Paths, file: Path, key: str | None = None, out: Path | None = None) -> Manifest:
    """Sign a bundle after checking its payload against its manifest (we only vouch for what we read)."""
    src = open_source(file)
    try:
        m = Manifest.parse(src.manifest_bytes(), f"{src.label}: {MANIFEST_NAME}")
        src.check_members(m)
        problem = payload_problem(src, m)
        if problem:
            raise ManifestError(f"{src.label}: {problem}: refusing to sign it")
        signed = Keyring(paths.keys).sign(m, key)
        if isinstance(src, DirSource) and out is None:
            atomic_write(file / MANIFEST_NAME, signed.to_bytes())
        elif isinstance(src, DirSource):
            write_tar(out, signed, payload_root=file)
        else:
            write_tar(out or file, signed, source=src)
    finally:
        src.close()
    return signed
