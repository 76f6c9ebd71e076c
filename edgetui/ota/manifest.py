"""The bundle manifest: closed list of payload files with sha256 and size, canonical JSON.

The canonical form (sorted keys, no whitespace, UTF-8, `signature` removed) is what gets hashed and
signed, so re-serialising a manifest never changes its identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = "edgetui.bundle/1"
MAX_MANIFEST_BYTES = 64 * 1024
CHUNK = 1 << 20


class ManifestError(Exception):
    """A manifest or bundle that fails validation; the message names the file or field."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    created: str
    runtime: dict
    files: tuple[FileEntry, ...]
    tokenizer_sha256: str = ""
    prompt_template: str = ""  # path of the template file inside the bundle
    bars: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    signature: dict | None = None
    schema: str = SCHEMA
    extra: dict = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["files"] = [asdict(f) for f in self.files]
        return d

    def canonical_bytes(self) -> bytes:
        d = self.to_dict()
        d.pop("signature", None)
        return canonical_json(d)

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def file(self, path: str) -> FileEntry:
        for f in self.files:
            if f.path == path:
                return f
        raise ManifestError(f"manifest has no file {path!r}")

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        try:
            files = tuple(FileEntry(str(f["path"]), str(f["sha256"]), int(f["size"])) for f in d["files"])
            known = {k: d[k] for k in ("tokenizer_sha256", "prompt_template", "bars", "provenance",
                                       "signature", "schema", "extra") if k in d}
            return cls(name=str(d["name"]), version=str(d["version"]), created=str(d["created"]),
                       runtime=dict(d["runtime"]), files=files, **known)
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"manifest field missing or malformed: {e}") from e

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path} is over {MAX_MANIFEST_BYTES} bytes: refuse this bundle")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ManifestError(f"{path} is not valid JSON ({e}): rebuild the bundle") from e

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def entry_for(root: Path, rel: str) -> FileEntry:
    p = root / rel
    return FileEntry(rel, sha256_file(p), p.stat().st_size)


def verify_files(root: Path, manifest: Manifest) -> list[str]:
    """Problems with the payload on disk (empty when it verifies): each names the file."""
    problems = []
    listed = set()
    for f in manifest.files:
        listed.add(f.path)
        p = root / f.path
        if not p.is_file():
            problems.append(f"{f.path}: missing")
        elif p.stat().st_size != f.size:
            problems.append(f"{f.path}: size {p.stat().st_size} != manifest {f.size}")
        elif sha256_file(p) != f.sha256:
            problems.append(f"{f.path}: sha256 does not match the manifest")
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel != "manifest.json" and rel not in listed:
            problems.append(f"{rel}: not listed in the manifest")
    return problems
