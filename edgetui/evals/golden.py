"""Golden sets: versioned JSONL files of cases, each line validated, with a manifest beside them.

A golden set is `<dir>/<version>.jsonl` plus `<version>.manifest.json` (`name`, `version`, `sha256` of
the JSONL bytes, the corpus it targets, the fixed `smoke` subset). With a manifest the file's sha256
must match it; a bare JSONL is versioned by its own sha256. Every error names the file, the line and
the field, so `edgetui eval` can exit 2 with one useful line.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgetui.config import shipped_dir

GOLDEN_ROOT = shipped_dir("golden_sets")  # the checkout's golden_sets/, or the wheel's package data
SLICES = ("canonical", "paraphrase", "messy", "multi_section", "abstain", "confidential", "injection", "revision")
CITATION_RE = re.compile(r"^[A-Z]+-\d+#\d+$")
CASE_KEYS = {"id", "slice", "question", "expect", "notes"}
EXPECT_KEYS = {"facts", "citations", "abstain", "confidential", "forbid"}
SMOKE_SIZE = 12


class GoldenError(Exception):
    """A golden set that cannot be used; the message names the file, line and field."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path + (f":{line}" if line else "")
        super().__init__(f"{where}: {'field ' + field + ': ' if field else ''}{message}")


@dataclass(frozen=True)
class GoldenCase:
    id: str
    slice: str
    question: str
    facts: tuple[tuple[str, ...], ...]  # each fact: its acceptable spellings (one must appear)
    citations: tuple[str, ...]
    abstain: bool
    confidential: bool | None = None  # None: the case does not check the marker
    forbid: tuple[str, ...] = ()
    notes: str | None = None
    line: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GoldenSet:
    name: str
    version: str
    sha256: str
    path: str
    cases: tuple[GoldenCase, ...]
    smoke_ids: tuple[str, ...]
    corpus: dict = field(default_factory=dict)
    manifest_path: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def case(self, case_id: str) -> GoldenCase:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)

    def subset(self, smoke: bool) -> tuple[GoldenCase, ...]:
        if not smoke:
            return self.cases
        wanted = set(self.smoke_ids)
        return tuple(c for c in self.cases if c.id in wanted)

    def slices(self) -> list[str]:
        present = {c.slice for c in self.cases}
        return [s for s in SLICES if s in present]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_path_for(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".manifest.json")


def default_golden_path(bundle_name: str, root: Path | None = None) -> Path:
    """The newest golden set for a bundle name: `golden_sets/<name>/v<N>.jsonl` with the highest N."""
    d = (root or GOLDEN_ROOT) / bundle_name
    found = sorted(d.glob("v*.jsonl"), key=lambda p: _version_number(p.stem))
    if not found:
        raise GoldenError(d, f"no golden set for bundle {bundle_name!r}: pass --golden PATH")
    return found[-1]


def available_golden_sets(root: Path | None = None) -> list[Path]:
    return sorted((root or GOLDEN_ROOT).glob("*/*.jsonl"))


def _version_number(stem: str) -> int:
    m = re.match(r"v(\d+)$", stem)
    return int(m.group(1)) if m else -1


def load_golden(path: Path | str) -> GoldenSet:
    """Read and validate a golden set (and its manifest when one sits beside it)."""
    path = Path(path)
    if not path.is_file():
        raise GoldenError(path, "no such file: pass an existing golden-set JSONL")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GoldenError(path, f"not UTF-8 ({e.reason} at byte {e.start})") from e
    cases: list[GoldenCase] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        case = parse_case(raw, path, n)
        if case.id in seen:
            raise GoldenError(path, f"duplicate id {case.id!r} (first on line {seen[case.id]})", n, "id")
        seen[case.id] = n
        cases.append(case)
    if not cases:
        raise GoldenError(path, "no cases")
    mpath = manifest_path_for(path)
    if mpath.is_file():
        m = _load_manifest(mpath, path, digest, seen)
        name, version = m["name"], str(m["version"])
        smoke, corpus = tuple(m.get("smoke") or default_smoke(cases)), dict(m.get("corpus") or {})
    else:
        name, version = path.parent.name or path.stem, f"sha256:{digest[:12]}"
        smoke, corpus, mpath = default_smoke(cases), {}, None
    return GoldenSet(name, version, digest, str(path), tuple(cases), smoke, corpus,
                     str(mpath) if mpath else None)


def parse_case(raw: str, path: Path, n: int) -> GoldenCase:
    """One JSONL line to a case, or GoldenError naming line `n` and the field at fault."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise GoldenError(path, f"not valid JSON ({e.msg} at column {e.colno})", n) from e
    if not isinstance(obj, dict):
        raise GoldenError(path, "a case must be a JSON object", n)
    if extra := sorted(set(obj) - CASE_KEYS):
        raise GoldenError(path, f"unknown field (allowed: {', '.join(sorted(CASE_KEYS))})", n, extra[0])
    case_id = _str(obj, "id", path, n)
    slice_ = _str(obj, "slice", path, n)
    if slice_ not in SLICES:
        raise GoldenError(path, f"unknown slice {slice_!r} (one of {', '.join(SLICES)})", n, "slice")
    question = _str(obj, "question", path, n)
    exp = obj.get("expect")
    if not isinstance(exp, dict):
        raise GoldenError(path, "required object is missing", n, "expect")
    if extra := sorted(set(exp) - EXPECT_KEYS):
        raise GoldenError(path, f"unknown field (allowed: {', '.join(sorted(EXPECT_KEYS))})", n,
                          f"expect.{extra[0]}")
    facts = _facts(exp.get("facts"), path, n)
    citations = _str_list(exp.get("citations"), "expect.citations", path, n, required=True)
    for i, c in enumerate(citations):
        if not CITATION_RE.match(c):
            raise GoldenError(path, f"{c!r} is not a citation id like POL-02#4", n, f"expect.citations[{i}]")
    abstain = exp.get("abstain")
    if not isinstance(abstain, bool):
        raise GoldenError(path, "must be true or false", n, "expect.abstain")
    if abstain and (facts or citations):
        raise GoldenError(path, "an abstain case expects no facts and no citations", n, "expect.abstain")
    if not abstain and not citations:
        raise GoldenError(path, "an answerable case names at least one governing section", n, "expect.citations")
    conf = exp.get("confidential")
    if conf is not None and not isinstance(conf, bool):
        raise GoldenError(path, "must be true or false when present", n, "expect.confidential")
    forbid = _str_list(exp.get("forbid"), "expect.forbid", path, n, required=False)
    notes = obj.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise GoldenError(path, "must be a string when present", n, "notes")
    return GoldenCase(case_id, slice_, question, facts, citations, abstain, conf, forbid, notes, n)


def _str(obj: dict, key: str, path: Path, n: int) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        raise GoldenError(path, "required non-empty string", n, key)
    return v


def _str_list(v, name: str, path: Path, n: int, required: bool) -> tuple[str, ...]:
    if v is None and not required:
        return ()
    if not isinstance(v, list):
        raise GoldenError(path, "must be a list of strings", n, name)
    for i, s in enumerate(v):
        if not isinstance(s, str) or not s.strip():
            raise GoldenError(path, "must be a non-empty string", n, f"{name}[{i}]")
    return tuple(v)


def _facts(v, path: Path, n: int) -> tuple[tuple[str, ...], ...]:
    if not isinstance(v, list):
        raise GoldenError(path, "must be a list (of strings or lists of acceptable spellings)", n, "expect.facts")
    out = []
    for i, f in enumerate(v):
        spellings = [f] if isinstance(f, str) else f
        if not isinstance(spellings, list) or not spellings or not all(
                isinstance(s, str) and s.strip() for s in spellings):
            raise GoldenError(path, "must be a non-empty string or a non-empty list of them", n,
                              f"expect.facts[{i}]")
        out.append(tuple(spellings))
    return tuple(out)


def _load_manifest(mpath: Path, path: Path, digest: str, ids: dict[str, int]) -> dict:
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GoldenError(mpath, f"not valid JSON ({e})") from e
    if not isinstance(m, dict):
        raise GoldenError(mpath, "must be a JSON object")
    for key in ("name", "version", "sha256"):
        if not isinstance(m.get(key), str) or not m[key]:
            raise GoldenError(mpath, "required non-empty string", field=key)
    if m["sha256"] != digest:
        raise GoldenError(path, f"sha256 {digest[:12]}… does not match its manifest {mpath.name} "
                          f"({m['sha256'][:12]}…): restore the file, or publish it as a new version",
                          field="sha256")
    if "cases" in m and m["cases"] != len(ids):
        raise GoldenError(mpath, f"says {m['cases']} cases, the file has {len(ids)}", field="cases")
    smoke = m.get("smoke")
    if smoke is not None:
        if not isinstance(smoke, list) or not smoke:
            raise GoldenError(mpath, "must be a non-empty list of case ids", field="smoke")
        for i, sid in enumerate(smoke):
            if sid not in ids:
                raise GoldenError(mpath, f"{sid!r} is not a case in {path.name}", field=f"smoke[{i}]")
    return m


def default_smoke(cases: list[GoldenCase] | tuple[GoldenCase, ...], size: int = SMOKE_SIZE) -> tuple[str, ...]:
    """A fixed subset for a set without a manifest: round-robin over slices in file order."""
    by_slice: dict[str, list[str]] = {}
    for c in cases:
        by_slice.setdefault(c.slice, []).append(c.id)
    picked: list[str] = []
    rank = 0
    while len(picked) < min(size, len(cases)):
        for ids in by_slice.values():
            if rank < len(ids) and len(picked) < size:
                picked.append(ids[rank])
        rank += 1
    order = {c.id: i for i, c in enumerate(cases)}
    return tuple(sorted(picked, key=order.__getitem__))
