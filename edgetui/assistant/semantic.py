"""Sentence vectors: every quotable sentence of the corpus embedded once, at bundle build.

The bundle keeps, under `assistant/`:
- `encoder.onnx` + `tokenizer.json`: the MiniLM sentence encoder (built from the package's safetensors by
  `encoder.write_model`), so a bundle answers with the encoder it was built with;
- `embeddings.npy`: float32 `[units + sections + aliases + near misses, 384]`, unit-norm rows: one per
  (section, sentence) in corpus order, then one per section (its document title, title and whole text: the
  context a single sentence lacks), then one per alias question, then one per near-miss question;
- `embeddings.json`: the encoder id, dimension, row count and a sha256 over the embedded texts.

All of it is listed and hashed in the manifest. `SentenceVectors.open` refuses a matrix that is missing,
truncated, of another shape or from another encoder, or that does not match the corpus it sits beside,
with one line naming the file and the fix (rebuild the bundle); `check_bundle` is what verify and
activation call.

Aliases (`aliases/*.jsonl` beside the corpus, copied from the recipe): questions written by the project, in
the words technicians use, each naming the sentence that answers it. MiniLM was trained on question pairs
and matches a question to a question better than to a statement, so a sentence is also scored by its
aliases (`alias_cosines`). They are written from the corpus only, never from a golden set.

Near misses (`near_misses/*.jsonl`, rows `{"section", "question"}`): questions that sit right beside a
section's topic but that no policy answers (a figure it never gives, a vendor or asset it never names, a
step it never describes), written from the corpus by someone who saw no golden or dev question. The
answerability model reads how much closer a question is to its nearest near miss than to its best
sentence or alias (`near_miss_cosines`): the nearest-neighbour evidence that "sounds like the policy" is
not "answered by the policy", which cosine alone cannot tell.

A unit is embedded as `"<section title>: <sentence>"`: the title carries the context a bare sentence
lacks ("the limit is 8 hours" is about notification only through its title).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetui.assistant.corpus import Section, load_corpus
from edgetui.assistant.encoder import DIM, ENCODER_ID, Encoder, EncoderError, write_model

log = logging.getLogger(__name__)

DIR = "assistant"
MATRIX = f"{DIR}/embeddings.npy"
META = f"{DIR}/embeddings.json"
ONNX = f"{DIR}/encoder.onnx"
TOKENIZER = f"{DIR}/tokenizer.json"
TEXT_FORMAT = "title: sentence"
ALIASES = "aliases"
NEAR_MISSES = "near_misses"
RECENT = 64  # texts whose vectors SentenceVectors keeps


class EmbeddingsError(Exception):
    """The bundle's sentence vectors cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Unit:
    """One quotable sentence and the section it belongs to."""

    section: Section
    sentence: str


def units_of(sections: list[Section]) -> list[Unit]:
    return [Unit(s, sent) for s in sections for sent in s.sentences]


def unit_text(u: Unit) -> str:
    """What the encoder embeds for a sentence (`TEXT_FORMAT`)."""
    return f"{u.section.title}: {u.sentence}"


def section_text(s: Section) -> str:
    return f"{s.doc_title}. {s.title}: {' '.join(s.sentences)}"


def sections_of(units: list[Unit]) -> list[Section]:
    return list({u.section.id: u.section for u in units}.values())


def load_aliases(root: Path, units: list[Unit]) -> list[tuple[int, str]]:
    """(unit index, question) for every alias row under `root/aliases/`. A row whose sentence the corpus no
    longer has is left out (the corpus was edited after the aliases were written: a warning names it, and
    the bundle answers as if the row were not there); a line that is not an alias row is refused."""
    index = {(u.section.id, u.sentence): i for i, u in enumerate(units)}
    out, stale = [], []
    for f in sorted((Path(root) / ALIASES).glob("*.jsonl")):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key, question = (row["section"], row["sentence"]), str(row["question"]).strip()
            except (ValueError, KeyError, TypeError) as e:
                raise EmbeddingsError(f"{ALIASES}/{f.name}:{n}: not an alias row ({e}): fix or delete the line") from e
            if key in index:
                out.append((index[key], question))
            else:
                stale.append(f"{f.name}:{n}")
    if stale:
        log.warning("%d alias rows name sentences the corpus does not have (%s): left out", len(stale),
                    ", ".join(stale[:5]))
    return out


def load_near_misses(root: Path) -> list[str]:
    """The near-miss questions under `root/near_misses/` (none when the folder is absent); a line that is
    not a near-miss row is refused."""
    out = []
    for f in sorted((Path(root) / NEAR_MISSES).glob("*.jsonl")):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                question = json.loads(line)["question"]
            except (ValueError, KeyError, TypeError) as e:
                raise EmbeddingsError(f"{NEAR_MISSES}/{f.name}:{n}: not a near-miss row ({e}): fix or delete "
                                      "the line") from e
            if not isinstance(question, str) or not question.strip():
                raise EmbeddingsError(f"{NEAR_MISSES}/{f.name}:{n}: the question is empty: fix or delete the line")
            out.append(question.strip())
    return out


def units_sha256(units: list[Unit], aliases: list[tuple[int, str]] = (), near: list[str] = ()) -> str:
    h = hashlib.sha256()
    for u in units:
        h.update(u.section.id.encode() + b"\0" + unit_text(u).encode() + b"\n")
    for s in sections_of(units):
        h.update(s.id.encode() + b"\0" + section_text(s).encode() + b"\n")
    for i, q in aliases:
        h.update(f"{i}\0{q}\n".encode())
    for q in near:
        h.update(f"near\0{q}\n".encode())
    return h.hexdigest()


def build(bundle_dir: Path) -> tuple[Encoder, list[str]]:
    """Write the encoder and the sentence matrix of `bundle_dir/corpus` into the bundle; return the encoder
    and the alias questions (the intent classifier is trained with both next)."""
    root = Path(bundle_dir)
    (root / DIR).mkdir(exist_ok=True)
    info = write_model(root / DIR)
    enc = Encoder.open(root / ONNX, root / TOKENIZER)
    units = units_of(load_corpus(root / "corpus"))
    aliases = load_aliases(root, units)
    near = load_near_misses(root)
    texts = ([unit_text(u) for u in units] + [section_text(s) for s in sections_of(units)] + [q for _, q in aliases]
             + near)
    matrix = enc.embed(texts).astype(np.float32)
    with open(root / MATRIX, "wb") as f:
        np.save(f, matrix, allow_pickle=False)
    meta = {"encoder": ENCODER_ID, "dim": DIM, "count": len(texts), "text_format": TEXT_FORMAT,
            "units_sha256": units_sha256(units, aliases, near), "near_misses": len(near),
            "source": info.get("source", "")}
    (root / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return enc, [q for _, q in aliases]


def has_vectors(bundle_dir: Path) -> bool:
    return (Path(bundle_dir) / META).exists() or (Path(bundle_dir) / MATRIX).exists()


class SentenceVectors:
    """The corpus's unit, section, alias and near-miss vectors and the encoder that made them; scoring a
    question is one encoder call and four small matrix products (178 sentences, 83 sections, 1,424 aliases,
    575 near misses here)."""

    def __init__(self, units: list[Unit], matrix: np.ndarray, encoder: Encoder, alias_units: list[int] = (),
                 near_misses: int = 0):
        self.units = units
        self.sections = sections_of(units)
        n, m = len(units), len(units) + len(self.sections)
        a = m + len(alias_units)
        self.matrix = matrix[:n]
        self.section_matrix = matrix[n:m]
        self.alias_matrix = matrix[m:a]
        self.near_matrix = matrix[a:a + near_misses]
        self.alias_unit = np.asarray(alias_units, dtype=np.int64)
        # aliases grouped by sentence once, so a question's best alias per sentence is one reduceat
        self._alias_order = np.argsort(self.alias_unit, kind="stable")
        grouped = self.alias_unit[self._alias_order]
        self._alias_starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if len(grouped) else grouped
        self._alias_targets = grouped[self._alias_starts] if len(grouped) else grouped
        self.encoder = encoder
        self._recent: dict[str, np.ndarray] = {}  # insertion-ordered: the oldest goes first

    @classmethod
    def open(cls, bundle_dir: Path, sections: list[Section]) -> SentenceVectors:
        root = Path(bundle_dir)
        units = units_of(sections)
        matrix, alias_units, near = _load_matrix(root, units)
        for rel in (ONNX, TOKENIZER):
            if not (root / rel).is_file():
                raise EmbeddingsError(f"{rel} is missing from the bundle: rebuild it (edgetui bundle build)")
        try:
            enc = Encoder.open(root / ONNX, root / TOKENIZER)
        except EncoderError as e:
            raise EmbeddingsError(f"{ONNX}: {e}") from e
        return cls(units, matrix, enc, alias_units, near)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of the texts. The last few texts' vectors are kept: the intent gate and retrieval
        embed the same question (and its parts), and the encoder is most of a question's cost."""
        if not texts:
            return np.zeros((0, DIM), np.float32)
        missing = [t for t in dict.fromkeys(texts) if t not in self._recent]
        fresh = dict(zip(missing, self.encoder.embed(missing), strict=True)) if missing else {}
        out = np.stack([fresh[t] if t in fresh else self._recent[t] for t in texts])
        self._recent.update(fresh)  # kept after the lookup: a call with more than RECENT texts still answers
        while len(self._recent) > RECENT:
            self._recent.pop(next(iter(self._recent)))
        return out

    def cosines(self, vectors: np.ndarray) -> np.ndarray:
        """[len(vectors), units] cosine similarities (rows are unit-norm)."""
        return _dot(vectors, self.matrix)

    def alias_cosines(self, vectors: np.ndarray) -> np.ndarray:
        """[len(vectors), units]: per sentence, the best cosine of its aliases (-1 where it has none)."""
        v = np.atleast_2d(vectors)
        out = np.full((len(v), len(self.units)), -1.0, dtype=np.float32)
        if len(self.alias_unit):
            c = _dot(v, self.alias_matrix)[:, self._alias_order]
            out[:, self._alias_targets] = np.maximum.reduceat(c, self._alias_starts, axis=1)
        return out

    def near_miss_cosines(self, vectors: np.ndarray) -> np.ndarray:
        """[len(vectors)]: the best cosine of a near-miss question (-1 when the bundle has none)."""
        v = np.atleast_2d(vectors)
        return _dot(v, self.near_matrix).max(axis=1) if len(self.near_matrix) else np.full(len(v), -1.0)

    def section_cosines(self, vectors: np.ndarray) -> np.ndarray:
        """[len(vectors), sections] cosine similarities, sections in corpus order."""
        return _dot(vectors, self.section_matrix)


def _dot(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[len(vectors), len(matrix)] dot products, outside BLAS. A few hundred microseconds either way, but a
    BLAS product this size (1,424 alias rows) starts OpenBLAS's worker threads, which then spin on the
    2 cores and slowed the next encoder call 2.5× (retrieval p95 4.5 → 24 ms); einsum runs in this thread."""
    return np.einsum("td,nd->tn", np.atleast_2d(vectors), matrix)


def _load_matrix(root: Path, units: list[Unit]) -> tuple[np.ndarray, list[int], int]:
    meta_p, mat_p = root / META, root / MATRIX
    if not meta_p.is_file() or not mat_p.is_file():
        missing = META if not meta_p.is_file() else MATRIX
        raise EmbeddingsError(f"{missing} is missing from the bundle: rebuild it (edgetui bundle build)")
    try:
        meta = json.loads(meta_p.read_text())
    except (OSError, ValueError) as e:
        raise EmbeddingsError(f"{META} is not valid JSON ({e}): rebuild the bundle") from e
    if meta.get("encoder") != ENCODER_ID or meta.get("dim") != DIM:
        raise EmbeddingsError(f"{META}: built by encoder {meta.get('encoder')!r} (dim {meta.get('dim')}), this "
                              f"edgetui uses {ENCODER_ID!r} (dim {DIM}): rebuild the bundle")
    try:
        aliases = load_aliases(root, units)
        near = load_near_misses(root)
    except (OSError, EmbeddingsError) as e:
        raise EmbeddingsError(f"{e}: rebuild the bundle") from e
    rows = len(units) + len(sections_of(units)) + len(aliases) + len(near)
    if meta.get("count") != rows or meta.get("units_sha256") != units_sha256(units, aliases, near):
        raise EmbeddingsError(f"{META}: the vectors were made from another corpus than the bundle's: rebuild it")
    try:
        matrix = np.load(mat_p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise EmbeddingsError(f"{MATRIX} is truncated or not a .npy file ({e}): rebuild the bundle") from e
    if matrix.dtype != np.float32 or matrix.shape != (rows, DIM):
        raise EmbeddingsError(f"{MATRIX} has shape {matrix.shape} {matrix.dtype}, expected ({rows}, {DIM}) "
                              "float32: rebuild the bundle")
    if not np.all(np.isfinite(matrix)):
        raise EmbeddingsError(f"{MATRIX} holds non-finite values: rebuild the bundle")
    return matrix, [i for i, _ in aliases], len(near)


def check_bundle(bundle_dir: Path) -> str | None:
    """One line saying why the bundle's sentence vectors are unusable, or None (also when it has no corpus:
    a bundle without policies needs no vectors)."""
    root = Path(bundle_dir)
    if not (root / "corpus").is_dir():
        return None
    try:
        sections = load_corpus(root / "corpus")
    except Exception:  # the corpus itself is checked elsewhere; no vectors can match a broken one
        return None
    if not has_vectors(root):
        return f"{META} is missing from the bundle: rebuild it (edgetui bundle build)"
    try:
        _load_matrix(root, units_of(sections))
    except EmbeddingsError as e:
        return str(e)
    return None
