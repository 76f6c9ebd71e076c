"""Policy corpus → sections with stable citation ids.

A policy is a Markdown file: `# POL-NN: Title`, a metadata block (`Owner`, `Effective`, `Revision`,
`Classification`), then numbered top-level sections `## N. Title`. A section's citation id is
`POL-NN#N` (document id and the number written in its heading), so re-indexing the same corpus, or a
corpus where other documents changed, gives the same ids. Sentences are split here too: the
quote-selection answer mode quotes them verbatim.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

DOC_HEADING = re.compile(r"^#\s+(?P<id>[A-Z]+-\d+)\s*:\s*(?P<title>.+?)\s*$")
SECTION_HEADING = re.compile(r"^##\s+(?P<num>\d+)\.\s*(?P<title>.+?)\s*$")
META_LINE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ]{0,30}):\s*(?P<value>.+?)\s*$")
# "P-201 to P-214", "VC-1 to VC-9": every asset number in between is named by the range.
CODE_RANGE = re.compile(r"\b([A-Z]{1,3})-(\d{1,4})\s+to\s+\1-(\d{1,4})\b")
CODE = re.compile(r"\b([A-Za-z]{1,4})-?(\d{1,5})\b")
_LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


class CorpusError(Exception):
    """A policy file the parser cannot read; the message names the file and the problem."""


@dataclass(frozen=True)
class Section:
    id: str  # POL-NN#S
    doc_id: str  # POL-NN
    number: int
    title: str
    text: str  # the body as written (list markers kept)
    doc_title: str
    classification: str  # internal | confidential
    revision: str
    sentences: tuple[str, ...] = field(default=(), repr=False)

    @property
    def confidential(self) -> bool:
        return self.classification == "confidential"

    @property
    def heading(self) -> str:
        return f"{self.doc_id} §{self.number} {self.title}"


def split_sentences(body: str) -> tuple[str, ...]:
    """Quotable units: a list item is one unit (its parts depend on each other: "Weep: … Log it …");
    prose splits after . ! ? before a capital."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            text = " ".join(para)
            out.extend(s.strip() for s in _SENTENCE_END.split(text) if s.strip())
            para.clear()

    for line in body.splitlines():
        if not line.strip():
            flush()
        elif _LIST_ITEM.match(line):
            flush()
            out.append(_LIST_ITEM.sub("", line).strip())
        else:
            para.append(line.strip())
    flush()
    return tuple(out)


def parse_policy(text: str, source: str = "<text>") -> list[Section]:
    """Parse one policy document into its top-level sections."""
    lines = text.splitlines()
    doc_id = doc_title = None
    meta: dict[str, str] = {}
    sections: list[tuple[int, str, list[str]]] = []
    for line in lines:
        if doc_id is None:
            m = DOC_HEADING.match(line)
            if m:
                doc_id, doc_title = m["id"], m["title"]
            continue
        m = SECTION_HEADING.match(line)
        if m:
            sections.append((int(m["num"]), m["title"], []))
            continue
        if line.startswith("## "):
            raise CorpusError(f"{source}: section heading {line!r} is not numbered ('## N. Title')")
        if not sections:
            mm = META_LINE.match(line)
            if mm:
                meta[mm["key"].strip().lower()] = mm["value"]
            continue
        sections[-1][2].append(line)
    if doc_id is None:
        raise CorpusError(f"{source}: no '# POL-NN: Title' heading")
    if not sections:
        raise CorpusError(f"{source}: no numbered sections ('## N. Title')")
    classification = meta.get("classification", "internal").strip().lower()
    if classification not in {"internal", "confidential"}:
        raise CorpusError(f"{source}: Classification {classification!r} must be internal or confidential")
    seen: set[int] = set()
    out = []
    for num, title, body in sections:
        if num in seen:
            raise CorpusError(f"{source}: section {num} appears twice")
        seen.add(num)
        body_text = "\n".join(body).strip()
        out.append(Section(
            id=f"{doc_id}#{num}", doc_id=doc_id, number=num, title=title, text=body_text,
            doc_title=doc_title, classification=classification, revision=meta.get("revision", ""),
            sentences=split_sentences(body_text),
        ))
    return out


def corpus_files(corpus_dir: Path) -> list[Path]:
    return sorted(p for p in Path(corpus_dir).glob("*.md") if p.is_file())


def load_corpus(corpus_dir: Path) -> list[Section]:
    """Every section of every `*.md` policy in the directory, in document then section order."""
    files = corpus_files(corpus_dir)
    if not files:
        raise CorpusError(f"{corpus_dir}: no policy documents (*.md)")
    out: list[Section] = []
    ids: set[str] = set()
    for f in files:
        for s in parse_policy(f.read_text(encoding="utf-8"), f.name):
            if s.id in ids:
                raise CorpusError(f"{f.name}: citation id {s.id} is already used by another document")
            ids.add(s.id)
            out.append(s)
    return out


def corpus_hash(corpus_dir: Path) -> str:
    """sha256 over the sorted (file name, content digest) pairs: the index is stale when this changes."""
    h = hashlib.sha256()
    for f in corpus_files(corpus_dir):
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def expand_ranges(text: str) -> list[str]:
    """Asset numbers named by ranges in the text ("P-201 to P-214" → p201 … p214), as `codes_in` writes them."""
    out = []
    for m in CODE_RANGE.finditer(text):
        prefix, a, b = m[1], m[2], m[3]
        lo, hi = int(a), int(b)
        if 0 < hi - lo <= 200:
            out.extend(f"{prefix.lower()}{n}" for n in range(lo, hi + 1))
    return out


def codes_in(text: str) -> list[str]:
    """Part and asset numbers written in the text (`P-201`, `SK-2240`, `B-02`) as joined tokens (`p201`,
    `sk2240`, `b2`: leading zeros dropped so `B-2` and `B-02` meet)."""
    return [f"{m[1].lower()}{int(m[2])}" for m in CODE.finditer(text)]
