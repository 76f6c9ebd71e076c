"""Where an install reads a bundle from: a directory or a tar archive, checked against the manifest.

Both sources refuse, before a byte of payload is copied, anything the closed manifest does not
allow: a member that is not a regular file (symlink, hard link, device, fifo), a path that is
absolute or climbs out with `..`, a duplicate, an extra or a missing file, a size other than the
declared one. `write_tar` makes the archives `edgetui bundle build` and `sign` hand out:
manifest.json first, then the payload in manifest order, owner and times normalised.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from edgetui.ota.errors import BadInput
from edgetui.ota.manifest import (
    CHUNK,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    check_relpath,
    read_manifest_file,
    walk_files,
)


class Source(Protocol):
    label: str

    def manifest_bytes(self) -> bytes: ...

    def check_members(self, manifest: Manifest) -> None: ...

    def payload(self, manifest: Manifest) -> Iterator[tuple[str, BinaryIO]]: ...

    def close(self) -> None: ...


def open_source(path: Path) -> Source:
    """A directory or a tar archive (plain or compressed); BadInput when it is neither."""
    if path.is_dir():
        return DirSource(path)
    if not path.exists():
        raise BadInput(f"{path} not found: give a bundle archive (.tar) or directory")
    if not path.is_file() or not tarfile.is_tarfile(path):
        raise BadInput(f"{path} is not a bundle: give a tar archive or a directory with {MANIFEST_NAME}")
    return TarSource(path)


def _size_problem(label: str, rel: str, actual: int, declared: int) -> ManifestError:
    if actual > declared:
        return ManifestError(f"{label}: {rel}: payload longer than declared ({actual} bytes, manifest says "
                             f"{declared}): refuse this bundle")
    return ManifestError(f"{label}: {rel}: size {actual} != manifest {declared}")


class DirSource:
    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)

    def manifest_bytes(self) -> bytes:
        return read_manifest_file(self.root / MANIFEST_NAME)

    def check_members(self, manifest: Manifest) -> None:
        present, problems = walk_files(self.root)
        if problems:
            raise ManifestError(f"{self.label}: {problems[0]}")
        listed = {f.path: f for f in manifest.files}
        for rel in sorted(present):
            if rel != MANIFEST_NAME and rel not in listed:
                raise ManifestError(f"{self.label}: {rel}: not listed in the manifest (extra file)")
        for f in manifest.files:
            if f.path not in present:
                raise ManifestError(f"{self.label}: {f.path}: missing (listed in the manifest)")
            if present[f.path].st_size != f.size:
                raise _size_problem(self.label, f.path, present[f.path].st_size, f.size)

    def payload(self, manifest: Manifest) -> Iterator[tuple[str, BinaryIO]]:
        for f in manifest.files:
            fd = os.open(self.root / f.path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb", buffering=0) as fh:
                yield f.path, fh

    def close(self) -> None:
        pass


def _member_kind(m: tarfile.TarInfo) -> str | None:
    """What is wrong with a member's type, None for a plain file or directory."""
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hard link"
    if m.ischr() or m.isblk():
        return "device"
    if m.isfifo():
        return "fifo"
    if m.issparse():
        return "sparse file"
    if not (m.isreg() or m.isdir()):
        return f"unsupported member type {m.type!r}"
    return None


class TarSource:
    def __init__(self, path: Path):
        self.path = path
        self.label = str(path)
        try:
            self.tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by close()
            self.members = self.tar.getmembers()  # headers only (plain tar: seeks over the data)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ManifestError(f"{self.label}: not a readable tar archive ({e})") from e
        self.by_name: dict[str, tarfile.TarInfo] = {}
        self._problem: ManifestError | None = None
        for m in self.members:
            name = _norm(m.name)
            if name in ("", ".") and m.isdir():
                continue
            try:
                if name != MANIFEST_NAME:
                    check_relpath(name, f"{self.label}: member")
            except ManifestError as e:
                self._problem = self._problem or e
                continue
            kind = _member_kind(m)
            if kind and not self._problem:
                self._problem = ManifestError(f"{self.label}: {name}: {kind} (not allowed in a bundle archive)")
            if name in self.by_name and not self._problem:
                self._problem = ManifestError(f"{self.label}: {name}: duplicate entry in the archive")
            self.by_name[name] = m

    def manifest_bytes(self) -> bytes:
        m = self.by_name.get(MANIFEST_NAME)
        if m is None or not m.isreg():
            raise ManifestError(f"{self.label}: {MANIFEST_NAME} not found at the archive root")
        if m.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.label}: {MANIFEST_NAME} is {m.size} bytes, over the "
                                f"{MAX_MANIFEST_BYTES}-byte limit: refuse this bundle")
        return self.tar.extractfile(m).read(MAX_MANIFEST_BYTES + 1)

    def check_members(self, manifest: Manifest) -> None:
        if self._problem:
            raise self._problem
        listed = {f.path: f for f in manifest.files}
        dirs = {d for p in listed for d in _parents(p)}
        for name, m in self.by_name.items():
            if m.isdir():
                if name.rstrip("/") not in dirs:
                    raise ManifestError(f"{self.label}: {name}: directory not in the manifest (extra entry)")
            elif name != MANIFEST_NAME and name not in listed:
                raise ManifestError(f"{self.label}: {name}: not listed in the manifest (extra file)")
        for f in manifest.files:
            m = self.by_name.get(f.path)
            if m is None or not m.isreg():
                raise ManifestError(f"{self.label}: {f.path}: missing from the archive (listed in the manifest)")
            if m.size != f.size:
                raise _size_problem(self.label, f.path, m.size, f.size)

    def payload(self, manifest: Manifest) -> Iterator[tuple[str, BinaryIO]]:
        listed = {f.path for f in manifest.files}
        for m in self.members:  # archive order: a plain tar is read front to back once
            name = _norm(m.name)
            if name in listed and m.isreg():
                yield name, self.tar.extractfile(m)

    def close(self) -> None:
        self.tar.close()


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _parents(p: str) -> Iterator[str]:
    while "/" in p:
        p = p.rsplit("/", 1)[0]
        yield p


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, mtime, 0o644, 0, 0, "", ""
    return ti


def write_tar(out: Path, manifest: Manifest, payload_root: Path | None = None,
              source: Source | None = None, mtime: int = 0) -> None:
    """Write a bundle archive at `out` (via a temp file and rename): manifest.json, then the payload
    read from `payload_root` (a directory) or `source` (another archive)."""
    data = manifest.to_bytes()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(MANIFEST_NAME, len(data), mtime), io.BytesIO(data))
            if source is not None:
                for rel, fh in source.payload(manifest):
                    tar.addfile(_info(rel, manifest.file(rel).size, mtime), fh)
            else:
                for f in manifest.files:
                    with (payload_root / f.path).open("rb") as fh:
                        tar.addfile(_info(f.path, f.size, mtime), fh)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def payload_problem(src, m: Manifest) -> str | None:
    """The first payload file whose bytes do not hash to the manifest's sha256, as one line; None when all do."""
    for rel, fh in src.payload(m):
        h = hashlib.sha256()
        while chunk := fh.read(CHUNK):
            h.update(chunk)
        if h.hexdigest() != m.file(rel).sha256:
            return f"{rel}: sha256 does not match the manifest"
    return None
