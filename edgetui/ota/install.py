"""The checks an install makes before and while it copies a bundle into staging.

Everything cheap is checked before the first payload byte moves: manifest, signature,
`min_edgetui`, anti-rollback, the archive's members against the closed manifest, free disk. Then
`stage` stream-verifies each file while copying it (sha256 and size, stopping as soon as a file
runs past its declared size), fsyncs it, and writes manifest.json last.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from edgetui import __version__
from edgetui.ota.archive import Source
from edgetui.ota.errors import Refused
from edgetui.ota.manifest import CHUNK, MANIFEST_NAME, FileEntry, Manifest, ManifestError, version_key
from edgetui.ota.steps import step
from edgetui.ota.store import State, fsync_dir

DISK_MARGIN = 16 << 20  # room for the manifest, directories and the database beside the payload
Writer = Callable[[BinaryIO, bytes], object]
ByteProgress = Callable[[int], None]


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def check_min_edgetui(m: Manifest) -> None:
    mini = m.runtime.get("min_edgetui")
    if mini and version_key(mini) > version_key(__version__):
        raise Refused(f"{m.ref}: manifest.json field 'runtime.min_edgetui' is {mini}, newer than this "
                      f"edgetui {__version__}: upgrade edgetui first")


def check_not_downgrade(m: Manifest, st: State) -> None:
    floor = st.floor.get(m.name)
    if floor and version_key(m.version) <= version_key(floor):
        raise Refused(f"{m.ref}: manifest.json field 'version' is not newer than the committed {m.name}@{floor} "
                      "(anti-rollback: a downgrade): to go back use `edgetui bundle rollback`")


def check_disk(m: Manifest, free: int, root: Path, kept_bytes: int, kept: int) -> None:
    need = m.total_size + DISK_MARGIN
    if free < need:
        raise Refused(f"{m.ref}: not enough disk space in {root}: the staged copy needs {mib(need)}, "
                      f"{mib(free)} free (the active and {kept} kept versions already use {mib(kept_bytes)}): "
                      "free some space or run `edgetui bundle prune`")


def check_fingerprint(m: Manifest, actual: str) -> None:
    if actual != m.tokenizer_sha256:
        raise Refused(f"{m.ref}: tokenizer fingerprint mismatch: manifest.json field 'tokenizer_sha256' is "
                      f"{m.tokenizer_sha256[:12] or '(empty)'}…, this runtime gives {actual[:12]}…: the model or "
                      "runtime tokenizes differently from the build; rebuild the bundle")


def copy_verified(src: BinaryIO, dst: Path, entry: FileEntry, label: str, write: Writer,
                  progress: ByteProgress | None = None) -> None:
    """Copy one payload file, hashing as it goes; refuse the moment it passes its declared size."""
    h = hashlib.sha256()
    n = 0
    with open(dst, "xb") as out:
        while True:
            chunk = src.read(min(CHUNK, entry.size - n + 1))  # at most one byte past the declared size
            if not chunk:
                break
            n += len(chunk)
            if n > entry.size:
                raise ManifestError(f"{label}: {entry.path}: payload longer than declared (more than "
                                    f"{entry.size} bytes): stopped copying, refuse this bundle")
            h.update(chunk)
            write(out, chunk)
            if progress:
                progress(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if n != entry.size:
        raise ManifestError(f"{label}: {entry.path}: size {n} != manifest {entry.size} (truncated)")
    if h.hexdigest() != entry.sha256:
        raise ManifestError(f"{label}: {entry.path}: sha256 does not match the manifest (corrupted or tampered)")


def stage(src: Source, m: Manifest, staging: Path, write: Writer, progress: ByteProgress | None = None) -> None:
    """Copy and verify every payload file into `staging`, then write manifest.json (last)."""
    done = set()
    for rel, fh in src.payload(m):
        if rel in done:
            raise ManifestError(f"{src.label}: {rel}: duplicate entry in the archive")
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        copy_verified(fh, dst, m.file(rel), src.label, write, progress)
        done.add(rel)
        step(f"staged {rel}")
    missing = [f.path for f in m.files if f.path not in done]
    if missing:
        raise ManifestError(f"{src.label}: {missing[0]}: missing from the bundle (listed in the manifest)")
    with open(staging / MANIFEST_NAME, "xb") as out:
        write(out, m.to_bytes())
        out.flush()
        os.fsync(out.fileno())
    for d in sorted({(staging / f.path).parent for f in m.files} | {staging}, key=lambda p: -len(p.parts)):
        fsync_dir(d)
    step(f"staged {MANIFEST_NAME}")
