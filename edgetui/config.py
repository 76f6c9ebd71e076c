"""Paths and settings: the one place that reads environment variables.

The data dir is `$EDGETUI_HOME`, else `$XDG_DATA_HOME/edgetui`, else `~/.local/share/edgetui`.
Settings live in `settings.toml` there; missing keys take the dataclass defaults.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout; an installed wheel has no checkout


def shipped_dir(name: str) -> Path:
    """A data directory the product ships (`bundles`, `golden_sets`), wherever edgetui runs from.

    The checkout keeps them at its top level; a wheel carries them as package data `edgetui/data/<name>`
    (the package-dir mapping in pyproject.toml), found with importlib.resources. An editable install and a
    checkout on sys.path have no `edgetui/data/` and read the checkout's directory."""
    packaged = importlib.resources.files("edgetui").joinpath("data", name)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return REPO_ROOT / name


class ConfigError(Exception):
    """A data dir or settings file that cannot be used; the message says how to fix it."""


def data_dir() -> Path:
    """The data directory (not created here)."""
    if home := os.environ.get("EDGETUI_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "edgetui"


def sysfs_root() -> Path:
    """Root for hardware sensors; tests point it at fixture trees with `EDGETUI_SYSFS_ROOT`."""
    return Path(os.environ.get("EDGETUI_SYSFS_ROOT", "/"))


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def db(self) -> Path:
        return self.home / "edgetui.db"

    @property
    def store(self) -> Path:
        return self.home / "store"

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    @property
    def settings(self) -> Path:
        return self.home / "settings.toml"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    def ensure(self) -> Paths:
        """Create the data dir, or raise ConfigError naming the directory and the fix."""
        try:
            for d in (self.home, self.store, self.keys, self.exports):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.home / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise ConfigError(
                f"data dir {self.home} is not writable ({e.strerror}): "
                "fix its permissions or set EDGETUI_HOME to a writable directory"
            ) from e
        return self


def paths() -> Paths:
    return Paths(data_dir())


@dataclass(frozen=True)
class Settings:
    """User settings; every field has a default so an empty file is valid."""

    default_bundle: str = "field-policy"
    sample_hz: float = 2.0
    keep_versions: int = 2
    history_limit: int = 200
    theme: str = "textual-dark"
    extra: dict = field(default_factory=dict)


def load_settings(p: Paths | None = None) -> Settings:
    path = (p or paths()).settings
    if not path.exists():
        return Settings()
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"settings file {path} is not valid TOML ({e}): fix or delete it") from e
    known = {f.name for f in fields(Settings)} - {"extra"}
    kwargs = {k: v for k, v in raw.items() if k in known}
    extra = {k: v for k, v in raw.items() if k not in known}
    return Settings(**kwargs, extra=extra)
