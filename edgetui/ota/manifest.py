"""The bundle manifest: closed list of payload files with sha256 and size, canonical JSON.

The canonical form (sorted keys, no whitespace, UTF-8, `signature` removed) is what gets hashed and
signed, so re-serialising a manifest never changes its identity. Parsing is strict: a manifest with
an unknown schema or field, a path that could leave the bundle, a malformed digest or a duplicate
entry is refused with the field named, because anything we let through would change the bytes a
signature covers or the files an install writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgetui.ota.errors import Refused

SCHEMA = "edgetui.bundle/1"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_FILE_BYTES = 1 << 40
CHUNK = 1 << 20
MANIFEST_NAME = "manifest.json"

Progress = Callable[[int], None]  # called with the number of bytes just processed

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("name", "version", "created", "runtime", "files")
_OPTIONAL = ("tokenizer_sha256", "prompt_template", "bars", "provenance", "signature", "schema", "extra")


class ManifestError(Refused):
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

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

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

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, d: dict, source: str = MANIFEST_NAME) -> Manifest:
        return _parse_dict(d, source)

    @classmethod
    def parse(cls, data: bytes, source: str = MANIFEST_NAME) -> Manifest:
        """Strictly parse manifest bytes (the size limit is checked before decoding)."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{source} is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit: "
                                "refuse this bundle")
        try:
            d = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                           parse_constant=_no_constants)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise ManifestError(f"{source} is not valid JSON ({e}): rebuild the bundle") from e
        return _parse_dict(d, source)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.parse(read_manifest_file(path), str(path))

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())


def read_manifest_file(path: Path) -> bytes:
    """The bytes of a manifest.json on disk: a regular file (not a link) within the size limit."""
    where = f"{path.parent}: {path.name}"
    try:
        st = path.lstat()
    except FileNotFoundError as e:
        raise ManifestError(f"{where} not found: a bundle needs {MANIFEST_NAME} at its root") from e
    if not stat.S_ISREG(st.st_mode):
        raise ManifestError(f"{where} is not a regular file: refuse this bundle")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where} is {st.st_size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit: "
                            "refuse this bundle")
    return path.read_bytes()


# -- parsing ---------------------------------------------------------------------------------------

def _no_duplicate_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _no_constants(name):
    raise ValueError(f"{name} is not allowed")


def _parse_dict(d, source: str) -> Manifest:
    def bad(fld: str, problem: str) -> ManifestError:
        return ManifestError(f"{source}: field {fld!r} {problem}")

    if not isinstance(d, dict):
        raise ManifestError(f"{source}: field missing or malformed: the manifest must be a JSON object")
    schema = d.get("schema", None)
    if schema is not None and schema != SCHEMA:
        raise bad("schema", f"is {schema!r}, an unknown schema (this edgetui reads {SCHEMA}): upgrade edgetui")
    for k in _REQUIRED + ("schema",):
        if k not in d:
            raise ManifestError(f"{source}: field missing or malformed: {k!r} is required")
    unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise bad(unknown[0], "is unknown (put custom data under 'extra'): refuse this bundle")
    for k in ("name", "version", "created", "tokenizer_sha256", "prompt_template"):
        if k in d and not isinstance(d[k], str):
            raise bad(k, "missing or malformed: must be a string")
    for k in ("runtime", "bars", "provenance", "extra"):
        if k in d and not isinstance(d[k], dict):
            raise bad(k, "missing or malformed: must be an object")
    if not _NAME.match(d["name"]):
        raise bad("name", f"{d['name']!r} is malformed: letters, digits, '.', '_', '-'")
    if not _SEMVER.match(d["version"]):
        raise bad("version", f"{d['version']!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    mini = d["runtime"].get("min_edgetui")
    if mini is not None and not (isinstance(mini, str) and _SEMVER.match(mini)):
        raise bad("runtime.min_edgetui", f"{mini!r} is not a semantic version")
    tok = d.get("tokenizer_sha256", "")
    if tok and not _SHA256.match(tok):
        raise bad("tokenizer_sha256", "is a malformed digest (64 lowercase hex digits)")
    files = _parse_files(d["files"], source)
    listed = {f.path for f in files}
    model = d["runtime"].get("model")
    if model is not None and model not in listed:
        raise bad("runtime.model", f"names {model!r}, which is not a listed file")
    tpl = d.get("prompt_template", "")
    if tpl and tpl not in listed:
        raise bad("prompt_template", f"names {tpl!r}, which is not a listed file")
    sig = d.get("signature")
    if sig is not None and not isinstance(sig, dict):  # its fields are checked with the signature
        raise bad("signature", "is malformed: must be an object or null")
    kw = {k: d[k] for k in _OPTIONAL if k in d}
    return Manifest(name=d["name"], version=d["version"], created=d["created"], runtime=dict(d["runtime"]),
                    files=files, **kw)


def _parse_files(raw, source: str) -> tuple[FileEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise ManifestError(f"{source}: field 'files' missing or malformed: a non-empty list is required")
    out: list[FileEntry] = []
    seen: dict[str, FileEntry] = {}
    folded: dict[str, str] = {}
    for i, f in enumerate(raw):
        where = f"{source}: files[{i}]"
        if not isinstance(f, dict) or set(f) != {"path", "sha256", "size"}:
            raise ManifestError(f"{where} is malformed: exactly path, sha256 and size are allowed")
        path, digest, size = f["path"], f["sha256"], f["size"]
        if not isinstance(path, str):
            raise ManifestError(f"{where}.path is malformed: must be a string")
        check_relpath(path, where + ".path")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ManifestError(f"{where}.sha256 for {path!r} is a malformed digest (64 lowercase hex digits)")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_BYTES:
            raise ManifestError(f"{where}.size for {path!r} is malformed: a non-negative integer")
        entry = FileEntry(path, digest, size)
        if path in seen:
            kind = "duplicate" if seen[path] == entry else "conflicting"
            raise ManifestError(f"{where}: {kind} entry for {path!r}")
        if path.casefold() in folded:
            raise ManifestError(f"{where}: conflicting entries {folded[path.casefold()]!r} and {path!r} "
                                "(same name ignoring case)")
        seen[path] = entry
        folded[path.casefold()] = path
        out.append(entry)
    for p in seen:  # a path cannot be both a file and a directory
        parent = posixpath.dirname(p)
        while parent:
            if parent in seen:
                raise ManifestError(f"{source}: conflicting entries {parent!r} and {p!r} "
                                    "(a file cannot also be a directory)")
            parent = posixpath.dirname(parent)
    return tuple(out)


def check_relpath(path: str, where: str) -> None:
    """Refuse any path that is not a plain relative POSIX path inside the bundle."""
    if not path or len(path) > 1024:
        raise ManifestError(f"{where} {path!r} is empty or too long")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"{where} {path!r} is an absolute path: refuse this bundle")
    if "\\" in path or any(ord(c) < 32 for c in path):
        raise ManifestError(f"{where} {path!r} contains a backslash or control character")
    parts = path.split("/")
    if ".." in parts:
        raise ManifestError(f"{where} {path!r} escapes the bundle ('..'): refuse this bundle")
    if "" in parts or "." in parts:
        raise ManifestError(f"{where} {path!r} is not in canonical form (no './', '//' or trailing '/')")
    if path == MANIFEST_NAME:
        raise ManifestError(f"{where}: {MANIFEST_NAME} cannot be listed as a payload file")


def version_key(v: str) -> tuple:
    """Semantic-version precedence as a sortable tuple (a pre-release sorts before its release)."""
    m = _SEMVER.match(v)
    if not m:
        raise ManifestError(f"version {v!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    pre = m.group(4)
    pre_key = (1,) if pre is None else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), pre_key


def is_version(v: str) -> bool:
    return bool(_SEMVER.match(v))


def is_name(n: str) -> bool:
    return bool(_NAME.match(n))


# -- files -----------------------------------------------------------------------------------------

def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            if progress:
                progress(n)
    return h.hexdigest()


def entry_for(root: Path, rel: str) -> FileEntry:
    p = root / rel
    return FileEntry(rel, sha256_file(p), p.stat().st_size)


def walk_files(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """(regular files by relative path, problems with anything else) without following links."""
    files, problems = {}, []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel}: symlink (not allowed in a bundle)")
            elif stat.S_ISREG(st.st_mode):
                files[rel] = st
            elif not stat.S_ISDIR(st.st_mode):
                problems.append(f"{rel}: not a regular file (device, socket or fifo)")
    return files, problems


def verify_files(root: Path, manifest: Manifest, progress: Progress | None = None,
                 hash_files: bool = True) -> list[str]:
    """Problems with the payload on disk (empty when it verifies): each names the file.

    With `hash_files=False` only presence, type and size are checked (a stat per file).
    """
    present, problems = walk_files(root)
    listed = set()
    for f in manifest.files:
        listed.add(f.path)
        st = present.get(f.path)
        if st is None:
            if not any(p.startswith(f.path + ":") for p in problems):
                problems.append(f"{f.path}: missing")
        elif st.st_size != f.size:
            problems.append(f"{f.path}: size {st.st_size} != manifest {f.size}")
        elif hash_files and sha256_file(root / f.path, progress) != f.sha256:
            problems.append(f"{f.path}: sha256 does not match the manifest")
    for rel in sorted(present):
        if rel != MANIFEST_NAME and rel not in listed:
            problems.append(f"{rel}: not listed in the manifest")
    return problems
