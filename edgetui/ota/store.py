"""The on-disk store: one directory per installed version, the active one named by a pointer file.

Layout under `<data dir>/store/`: `<name>/<version>/` (manifest.json + payload) and `ACTIVE`, a JSON
pointer replaced by write-temp → fsync → rename → fsync(dir), so a crash at any instant leaves
either the old or the new pointer, never a torn one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgetui.ota.bundle import Bundle

POINTER = "ACTIVE"


class StoreError(Exception):
    """The store has no usable active bundle, or a requested version is not installed."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass(frozen=True)
class Store:
    root: Path

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def installed(self) -> list[Bundle]:
        out = []
        for m in sorted(self.root.glob("*/*/manifest.json")):
            try:
                out.append(Bundle.open(m.parent))
            except Exception:  # a broken directory is reported by verify, not here
                continue
        return out

    def get(self, name: str, version: str) -> Bundle:
        d = self.version_dir(name, version)
        if not (d / "manifest.json").is_file():
            raise StoreError(f"{name}@{version} is not installed: see `edgetui bundle list`")
        return Bundle.open(d)

    def active_ref(self) -> tuple[str, str] | None:
        p = self.root / POINTER
        if not p.is_file():
            return None
        try:
            d = json.loads(p.read_text())
            return d["name"], d["version"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None

    def active(self) -> Bundle:
        ref = self.active_ref()
        if ref is None:
            raise StoreError(f"no active bundle in {self.root}: run `edgetui doctor` or `make run` to build one")
        return self.get(*ref)

    def set_active(self, name: str, version: str) -> None:
        """Point ACTIVE at an installed version (atomic rename)."""
        self.get(name, version)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / POINTER, json.dumps({"name": name, "version": version}).encode())
