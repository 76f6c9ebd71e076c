"""The on-disk store: one directory per installed version, the active one named by a pointer file.

Layout under `<data dir>/store/`:

- `<name>/<version>/`: manifest.json + payload, moved in by one rename of a fully verified staging
  directory, so a version directory is always complete;
- `ACTIVE`: JSON pointer `{"name", "version"}`;
- `STATE`: per-version status (good, bad, trial, ...), the anti-rollback floor, the last good
  version and an activation in progress;
- `.lock` (flock held by whoever changes the store), `.staging-*` and `.trash-*` (left by a crash,
  removed by the next operation).

`ACTIVE` and `STATE` are each replaced by write-temp → fsync → rename → fsync(dir): a crash at any
instant leaves the old or the new file, never a torn one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edgetui.engine.state_cache import invalidate
from edgetui.ota.bundle import Bundle
from edgetui.ota.errors import BadInput, Busy
from edgetui.ota.manifest import is_name, is_version, version_key
from edgetui.ota.steps import step

POINTER = "ACTIVE"
STATE = "STATE"
STATE_SCHEMA = "edgetui.store-state/1"


class StoreError(BadInput):
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
    step(f"{path.name}: temp written")
    os.replace(tmp, path)
    step(f"{path.name}: renamed")
    fsync_dir(path.parent)
    step(f"{path.name}: dir synced")


def _mtime_iso(p: Path) -> str:
    return datetime.fromtimestamp(p.stat().st_mtime, UTC).isoformat(timespec="seconds")


def split_ref(ref: str) -> tuple[str, str]:
    """`NAME@VERSION` → (name, version), or BadInput naming the problem."""
    name, sep, version = ref.partition("@")
    if not sep or not is_name(name) or not is_version(version):
        raise BadInput(f"{ref!r} is not NAME@VERSION (e.g. field-policy@1.0.0): see `edgetui bundle list`")
    return name, version


def prune_plan(refs: list[str], active: str | None, protected: set, keep: int) -> list[str]:
    """Which versions to remove: per name, the active one plus `keep` others stay; the oldest go first,
    never a protected one (the last good version, a trial's previous version). `refs` sorted by version."""
    by_name: dict[str, list[str]] = {}
    for r in refs:
        if r != active:
            by_name.setdefault(split_ref(r)[0], []).append(r)
    out = []
    for others in by_name.values():
        excess = len(others) - keep
        for r in others:
            if excess <= 0:
                break
            if r not in protected:
                out.append(r)
                excess -= 1
    return out


@dataclass
class State:
    """What the store knows beyond the directories: see the module docstring."""

    versions: dict[str, dict] = field(default_factory=dict)  # ref -> status, installed_at, signer, smoke, ...
    floor: dict[str, str] = field(default_factory=dict)  # name -> highest committed version
    last_good: str | None = None
    trial: dict | None = None  # {"ref", "previous", "since"} while an activation is not committed
    activations: list[str] = field(default_factory=list)  # refs in activation order, newest last

    @classmethod
    def from_dict(cls, d: dict) -> State:
        return cls(versions=dict(d.get("versions", {})), floor=dict(d.get("floor", {})),
                   last_good=d.get("last_good"), trial=d.get("trial"), activations=list(d.get("activations", [])))

    def to_dict(self) -> dict:
        return {"schema": STATE_SCHEMA, **asdict(self)}

    def entry(self, ref: str) -> dict:
        return self.versions.setdefault(ref, {})

    def status(self, ref: str) -> str:
        return self.versions.get(ref, {}).get("status", "installed")

    def raise_floor(self, name: str, version: str) -> None:
        cur = self.floor.get(name)
        if cur is None or version_key(version) > version_key(cur):
            self.floor[name] = version

    def activated(self, ref: str) -> None:
        self.activations = [r for r in self.activations if r != ref][-49:] + [ref]

    def rollback_target(self, active: str | None, installed: set[str]) -> str | None:
        """Where a rollback goes: the most recently activated other installed version that is neither bad
        nor rolled back, else the newest such older version of the active bundle."""
        usable = {r for r in installed if r != active and self.status(r) not in ("bad", "rolled-back")}
        for r in reversed(self.activations):
            if r in usable:
                return r
        if active:
            name, version = split_ref(active)
            older = [r for r in usable
                     if split_ref(r)[0] == name and version_key(split_ref(r)[1]) < version_key(version)]
            if older:
                return max(older, key=lambda r: version_key(split_ref(r)[1]))
        return None


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
        return sorted(out, key=lambda b: (b.name, version_key(b.version)))

    def refs(self) -> list[str]:
        return [b.ref for b in self.installed()]

    def is_installed(self, ref: str) -> bool:
        return (self.version_dir(*split_ref(ref)) / "manifest.json").is_file()

    def get(self, name: str, version: str) -> Bundle:
        d = self.version_dir(name, version)
        if not (d / "manifest.json").is_file():
            raise StoreError(f"{name}@{version} is not installed: see `edgetui bundle list`")
        return Bundle.open(d)

    def get_ref(self, ref: str) -> Bundle:
        return self.get(*split_ref(ref))

    def active_ref(self) -> tuple[str, str] | None:
        p = self.root / POINTER
        if not p.is_file():
            return None
        try:
            d = json.loads(p.read_text())
            return d["name"], d["version"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None

    def active_ref_str(self) -> str | None:
        ref = self.active_ref()
        return f"{ref[0]}@{ref[1]}" if ref else None

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
        invalidate(self.root.parent)  # KV states of the previous bundle's prompts (the data dir's kv-cache/)

    # -- state -----------------------------------------------------------------------------
    def state(self) -> State:
        """The saved state, with the active version counted good when nothing says otherwise
        (a store built on first run has a pointer and no STATE yet)."""
        p = self.root / STATE
        st = State()
        if p.is_file():
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                st = State.from_dict(json.loads(p.read_text()))
        active = self.active_ref_str()
        if active and active not in st.versions and (st.trial or {}).get("ref") != active \
                and self.is_installed(active):
            # built on this device (first run) and activated without the OTA path: trusted as local
            b = self.get(*split_ref(active))
            st.entry(active).update(status="good", unsigned=not b.manifest.signature, origin="built on this device",
                                    installed_at=_mtime_iso(b.root / "manifest.json"), size=b.manifest.total_size)
            st.raise_floor(*split_ref(active))
            st.last_good = st.last_good or active
            if active not in st.activations:
                st.activations.append(active)
        return st

    def save_state(self, st: State) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / STATE, json.dumps(st.to_dict(), indent=1, sort_keys=True).encode())

    # -- locking and scratch directories -----------------------------------------------------
    @contextlib.contextmanager
    def lock(self, wait_s: float = 10.0) -> Iterator[None]:
        """Exclusive lock for changing the store (released by the kernel if the holder dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Busy("another bundle operation is running on this store: "
                                   "wait for it to finish and try again") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def new_staging(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))

    def leftovers(self) -> list[Path]:
        return sorted(p for p in self.root.glob(".*") if p.name.startswith((".staging-", ".trash-", ".ACTIVE.tmp",
                                                                           ".STATE.tmp")))

    def cleanup(self) -> None:
        """Remove what a crashed operation left behind (call with the lock held)."""
        for p in self.leftovers():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def move_in(self, staging: Path, name: str, version: str) -> Path:
        """Rename a complete staging directory to its version directory (atomic)."""
        target = self.version_dir(name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        step("staging: before rename")
        os.rename(staging, target)
        step("staging: renamed")
        fsync_dir(target.parent)
        step("staging: dir synced")
        return target

    def remove_version(self, name: str, version: str) -> None:
        """Delete a version: one rename out of sight (atomic), then the slow part."""
        d = self.version_dir(name, version)
        trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
        os.rename(d, trash / "v")
        fsync_dir(d.parent)
        step("remove: renamed")
        shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            d.parent.rmdir()  # only when no other version of that name is left

    def disk_usage(self, refs: list[str]) -> int:
        total = 0
        for ref in refs:
            with contextlib.suppress(StoreError, OSError):
                total += self.get_ref(ref).manifest.total_size
        return total
