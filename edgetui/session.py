"""The running product: data dir, database, the active bundle and its engine.

Shared by the CLI and the TUI so both faces see the same state. First use builds the default
bundle from `bundles/<default>/` into the store and activates it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgetui.config import REPO_ROOT, Paths, load_settings, paths
from edgetui.ota.bundle import Bundle
from edgetui.ota.errors import Refused
from edgetui.ota.keys import Keyring
from edgetui.ota.manifest import Manifest
from edgetui.ota.recipe import build, load_recipe
from edgetui.ota.store import Store, StoreError

RECIPES = REPO_ROOT / "bundles"


def store(p: Paths | None = None) -> Store:
    return Store((p or paths()).ensure().store)


def ensure_default_bundle(p: Paths | None = None) -> Bundle:
    """Return the active bundle, building and activating the default recipe when there is none."""
    p = (p or paths()).ensure()
    st = Store(p.store)
    if st.active_ref() is not None:
        return st.active()
    name = load_settings(p).default_bundle
    recipe_dir = RECIPES / name
    version = load_recipe(recipe_dir)["version"]
    target = st.version_dir(name, version)
    if not (target / "manifest.json").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=p.store))
        try:
            try:
                m = build(recipe_dir, staging / "b")
            except Refused as e:  # the store stays as it was: nothing active, nothing half-built
                raise StoreError(f"the default bundle could not be built: {e}") from e
            sign_with_device_key(p, m).save(staging / "b" / "manifest.json")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            (staging / "b").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    st.set_active(name, version)
    _record_default_install(p, name, version)
    return st.active()


def sign_with_device_key(p: Paths, m: Manifest) -> Manifest:
    """The first-run bundle signed like every other installed bundle (POL-15 §5: bundles are installed only
    when signed and verified): by this device's key, created and trusted on first use."""
    keys = Keyring(p.keys)
    kid = keys.private_keys()[-1] if keys.private_keys() else keys.keygen(trust=True)
    return keys.sign(m, kid)


def _record_default_install(p: Paths, name: str, version: str) -> None:
    """Let the OTA history know about the first-run install when that part is present."""
    try:
        from edgetui.ota.history import record
    except ImportError:
        return
    record(p, "install", f"{name}@{version}", "default bundle built on first run")


def active_bundle(p: Paths | None = None) -> Bundle:
    from edgetui.ota.manager import recover_if_interrupted

    recover_if_interrupted((p or paths()).ensure())  # an activation a crash left uncommitted is undone
    try:
        return store(p).active()
    except StoreError:
        return ensure_default_bundle(p)


def engine_log(p: Paths | None = None) -> Path:
    return (p or paths()).ensure().home / "engine.log"
