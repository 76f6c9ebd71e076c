"""The retrieval index: SQLite FTS5 over the corpus sections, BM25 ranking.

Built at bundle build time (`build_index`, called by the recipe) and stored in the bundle as
`index.sqlite`, with the corpus hash and the index format version in its `meta` table. `Retriever.open`
uses the bundle's file read-only when both still match and otherwise rebuilds the index in memory (a
bundle directory is verified by sha256, so it is never written after the build).

What technicians type is handled at query time, never by special cases:
- part and asset numbers: `P-201`, `p201`, `SK2240` become one joined token (`p201`) matched in a
  `codes` column that also lists every number a range names ("P-201 to P-214" → p207);
- all caps and accents: unicode61 folds them; plurals and tenses: the porter stemmer;
- shorthand: a small maintenance lexicon (`vib` → vibration, `o2` → oxygen, `genset` → generator);
- typos: a word the corpus does not contain is replaced by vocabulary words one or two edits away
  (optimal string alignment distance, through rapidfuzz),
  and a short unknown word also matches as a prefix (`ack` → acknowledge).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import OSA

from edgetui.assistant.corpus import Section, codes_in, corpus_hash, expand_ranges, load_corpus

INDEX_VERSION = "3"
TOKENIZER = "porter unicode61 remove_diacritics 2"
# column weights for bm25(): title, document title, body, codes
WEIGHTS = (3.0, 0.5, 1.0, 6.0)

_WORD = re.compile(r"[a-z0-9]+")

_STOPWORDS_TEXT = """
a about above after again against all am an and any anyone are aren as at be because been before being below
between both but by can cannot could did didn do does doesn doing don down during each else ever few for from
further get gets getting got had has have having he her here hers him his how i if in into is isn it its itself
just let me many might mine more most much must my myself need needs no nor not now of off on once only or other our
ours out over own please same shall she should so some somebody someone something still such than that the
their them then there these they this those through to too under until up upon us very was we were what whats
when where which while who whom why will with within would you your yours yourself ok okay hi hello thanks
tell know say said want wanted gonna
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Field shorthand → what the policies call it (alternatives; a phrase matches as a phrase). General
# maintenance vocabulary, not tuned to any question.
LEXICON: dict[str, tuple[str, ...]] = {
    "vib": ("vibration",), "vibs": ("vibration",), "vibe": ("vibration",),
    "temp": ("temperature",), "temps": ("temperature",),
    "deg": ("temperature",), "degc": ("temperature",), "degrees": ("degrees", "temperature"),
    "ack": ("acknowledge",), "acked": ("acknowledge",),
    "genset": ("generator",), "gen": ("generator",), "genny": ("generator",),
    "o2": ("oxygen",), "h2s": ("hydrogen sulphide",), "co": ("carbon monoxide",),
    "lel": ("lower explosive limit",), "cl2": ("chlorine",), "chlor": ("chlorine",),
    "rm": ("room",), "bldg": ("building",),
    "p1": ("priority 1",), "p2": ("priority 2",), "p3": ("priority 3",),
    "sev": ("severity",), "sev1": ("severity 1",), "sev2": ("severity 2",), "sev3": ("severity 3",),
    "ppe": ("protective equipment",), "loto": ("lockout", "lock"), "padlock": ("lock",), "padlocks": ("lock",),
    "hr": ("hour",), "hrs": ("hours",), "min": ("minutes",), "mins": ("minutes",), "wk": ("weekly",),
    "maint": ("maintenance",), "mtce": ("maintenance",), "elec": ("electrical",), "eng": ("engineer",),
    "supv": ("supervisor",), "req": ("request",), "wo": ("work order",),
    "qty": ("quantity", "stock"), "spares": ("spare",), "mgr": ("manager",),
    "weld": ("welding", "hot work"), "welding": ("welding", "hot work"), "welder": ("welding", "hot work"),
    "grind": ("grinding", "hot work"), "grinding": ("grinding", "hot work"), "cutting": ("cutting", "hot work"),
    "leaking": ("leak",), "leaky": ("leak",), "dripping": ("drip",), "scba": ("scba", "respirator"),
    "amp": ("current",), "amps": ("current",),
}


@dataclass(frozen=True)
class Hit:
    section: Section
    score: float  # -bm25: higher is better

    @property
    def id(self) -> str:
        return self.section.id


@dataclass(frozen=True)
class QueryPlan:
    """What the retriever made of a question (shown in debugging output and used by the gate)."""

    codes: tuple[str, ...]
    terms: tuple[tuple[str, ...], ...]  # one group per question word: the word and its replacements
    unknown: tuple[str, ...]  # content words with no match in the corpus even after correction
    fts: str  # the FTS5 MATCH expression

    @property
    def known_terms(self) -> int:
        return len(self.terms) - len(self.unknown)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _sections_rows(sections: list[Section]):
    for s in sections:
        codes = " ".join(dict.fromkeys(codes_in(s.title + " " + s.text) + expand_ranges(s.text)))
        yield s, codes


SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sections (
  rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL, number INTEGER NOT NULL,
  title TEXT NOT NULL, doc_title TEXT NOT NULL, classification TEXT NOT NULL, revision TEXT NOT NULL,
  text TEXT NOT NULL, sentences TEXT NOT NULL
);
CREATE VIRTUAL TABLE sections_fts USING fts5(title, doc, body, codes, tokenize='{TOKENIZER}');
CREATE TABLE vocab (term TEXT PRIMARY KEY, df INTEGER NOT NULL);
"""


def _fill(conn: sqlite3.Connection, sections: list[Section], chash: str) -> None:
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("corpus_sha256", chash), ("index_version", INDEX_VERSION),
                                                       ("tokenizer", TOKENIZER), ("sections", str(len(sections)))])
    df: dict[str, int] = {}
    for n, (s, codes) in enumerate(_sections_rows(sections), start=1):
        conn.execute("INSERT INTO sections VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (n, s.id, s.doc_id, s.number, s.title, s.doc_title, s.classification, s.revision, s.text,
                      json.dumps(list(s.sentences))))
        conn.execute("INSERT INTO sections_fts (rowid, title, doc, body, codes) VALUES (?,?,?,?,?)",
                     (n, s.title, s.doc_title, s.text, codes))
        for w in set(_WORD.findall(_norm(f"{s.title} {s.doc_title} {s.text}"))):
            df[w] = df.get(w, 0) + 1
    conn.executemany("INSERT INTO vocab VALUES (?, ?)", sorted(df.items()))


def build_index(corpus_dir: Path, out_path: Path) -> None:
    """Parse the corpus and write a fresh index file at `out_path` (replaced atomically)."""
    corpus_dir, out_path = Path(corpus_dir), Path(out_path)
    sections = load_corpus(corpus_dir)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(str(tmp))
    try:
        with conn:
            _fill(conn, sections, corpus_hash(corpus_dir))
        conn.execute("VACUUM")
    finally:
        conn.close()
    tmp.replace(out_path)


def index_is_current(index_path: Path, corpus_dir: Path) -> bool:
    """True when the index file exists, opens, and was built from this corpus by this index version."""
    if not Path(index_path).is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{index_path}?mode=ro&immutable=1", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False
    return meta.get("index_version") == INDEX_VERSION and meta.get("corpus_sha256") == corpus_hash(corpus_dir)


class Retriever:
    """Top-k sections for a question, BM25 over an FTS5 index, with the query repairs described above."""

    def __init__(self, conn: sqlite3.Connection, source: str):
        self.conn = conn
        self.source = source  # "bundle" (the bundle's index file) or "rebuilt" (in memory)
        rows = conn.execute(
            "SELECT rowid, id, doc_id, number, title, doc_title, classification, revision, text, sentences "
            "FROM sections ORDER BY rowid").fetchall()
        self.by_rowid: dict[int, Section] = {}
        for r in rows:
            self.by_rowid[r[0]] = Section(id=r[1], doc_id=r[2], number=r[3], title=r[4], doc_title=r[5],
                                          classification=r[6], revision=r[7], text=r[8],
                                          sentences=tuple(json.loads(r[9])))
        self.sections: dict[str, Section] = {s.id: s for s in self.by_rowid.values()}
        self.vocab: dict[str, int] = dict(conn.execute("SELECT term, df FROM vocab").fetchall())
        self.codes: set[str] = set()
        for (c,) in conn.execute("SELECT codes FROM sections_fts"):
            self.codes.update(c.split())
        self.meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._match_cache: dict[str, bool] = {}
        self._spellable = [w for w in self.vocab if len(w) >= 4 and not w.isdigit()]  # typo-correction targets

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, index_path: Path | None, corpus_dir: Path) -> Retriever:
        """The bundle's index when it matches the corpus, else an in-memory rebuild from the corpus."""
        if index_path is not None and index_is_current(Path(index_path), Path(corpus_dir)):
            conn = sqlite3.connect(f"file:{index_path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            return cls(conn, "bundle")
        return cls.in_memory(corpus_dir)

    @classmethod
    def in_memory(cls, corpus_dir: Path) -> Retriever:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        with conn:
            _fill(conn, load_corpus(Path(corpus_dir)), corpus_hash(Path(corpus_dir)))
        return cls(conn, "rebuilt")

    @property
    def corpus_sha256(self) -> str:
        return self.meta.get("corpus_sha256", "")

    def close(self) -> None:
        self.conn.close()

    # -- query repair --------------------------------------------------------------------------
    def _matches(self, term: str) -> bool:
        """Does the stemmed term occur in the index? (asks FTS5, so porter decides)."""
        if term not in self._match_cache:
            try:
                n = self.conn.execute("SELECT 1 FROM sections_fts WHERE sections_fts MATCH ? LIMIT 1",
                                      (f'{{title doc body}} : "{term}"',)).fetchone()
            except sqlite3.OperationalError:
                n = None
            self._match_cache[term] = n is not None
        return self._match_cache[term]

    def _corrections(self, word: str) -> tuple[str, ...]:
        """Vocabulary words for an unknown word: one edit away (two for 8+ letters), then prefixes.
        Words under five letters are too often real words ("gone" is not a typo of "zone")."""
        if len(word) >= 5:
            limit = 2 if len(word) >= 8 else 1
            near = process.extract(word, self._spellable, scorer=OSA.distance, score_cutoff=limit, limit=None)
            if near:  # (word, distance, position): nearest first, then the commoner word
                return tuple(w for w, _, _ in sorted(near, key=lambda m: (m[1], -self.vocab[m[0]], m[0]))[:3])
        if len(word) >= 3 and not word.isdigit():
            pre = [w for w in self.vocab if w.startswith(word) and len(w) > len(word)]
            if pre:
                return tuple(sorted(pre, key=lambda w: (-self.vocab[w], w))[:3])
        return ()

    def plan(self, question: str) -> QueryPlan:
        text = _norm(question)
        codes = tuple(dict.fromkeys(c for c in codes_in(text) if c in self.codes))
        code_words = set()
        for m in re.finditer(r"\b([a-z]{1,4})-?(\d{1,5})\b", text):
            if f"{m[1]}{int(m[2])}" in codes:
                code_words.update({m[1], m[2], m[0]})
        groups: list[tuple[str, ...]] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for w in _WORD.findall(text):
            if w in STOPWORDS or w in seen or w in code_words or (len(w) == 1 and not w.isdigit()):
                continue
            seen.add(w)
            if w in LEXICON:
                group = tuple(dict.fromkeys((w, *LEXICON[w])))
            elif w in self.vocab or self._matches(w):
                group = (w,)
            elif w.isdigit() or len(w) < 3:
                group = (w,)
                unknown.append(w)
            else:
                corr = self._corrections(w)
                group = (w, *corr)
                if not corr:
                    unknown.append(w)
            groups.append(group)
        parts = [f'codes : "{c}"' for c in codes]
        for g in groups:
            alts = " OR ".join(f'"{t}"' for t in g)
            parts.append(f"({alts})" if len(g) > 1 else alts)
        return QueryPlan(codes, tuple(groups), tuple(unknown), " OR ".join(parts))

    # -- search ----------------------------------------------------------------------------------
    def _rank(self, fts: str) -> list[tuple[int, float]]:
        """Every matching section as (rowid, -bm25), best first."""
        if not fts:
            return []
        w = ", ".join(str(x) for x in WEIGHTS)
        try:
            rows = self.conn.execute(
                f"SELECT rowid, bm25(sections_fts, {w}) AS r FROM sections_fts WHERE sections_fts MATCH ? "
                "ORDER BY r", (fts,)).fetchall()
        except sqlite3.OperationalError:
            return []
        return [(rowid, round(-r, 4)) for rowid, r in rows]

    def section_scores(self, plan: QueryPlan) -> dict[str, float]:
        """Every section the plan matches, citation id -> -bm25 (higher is better)."""
        return {self.by_rowid[rowid].id: score for rowid, score in self._rank(plan.fts)}

    def uses(self, word: str) -> bool:
        """Does the corpus use this word as written (no typo repair): vocabulary or porter stem?"""
        return word in self.vocab or self._matches(word)

    def search(self, question: str, k: int = 3) -> tuple[list[Hit], QueryPlan, float]:
        """Top-k hits (best first), the query plan, and the time taken in ms.

        A question with several parts ("who signs the permit, and which kit …") also ranks each part on
        its own; the best section of each part is kept in the top k after the overall best.
        """
        t = time.perf_counter()
        plan = self.plan(question)
        ranked = self._rank(plan.fts)
        scores = dict(ranked)
        order = [rowid for rowid, _ in ranked]
        parts = clauses(question)
        if len(parts) >= 2 and order:
            picks = [order[0]]
            for part in parts:
                p = self.plan(part)
                if p.known_terms >= 2 and (r := self._rank(p.fts)) and r[0][0] in scores:
                    picks.append(r[0][0])
            order = list(dict.fromkeys(picks[:k] + order))
        hits = [Hit(self.by_rowid[rowid], scores[rowid]) for rowid in order[:k]]
        return hits, plan, (time.perf_counter() - t) * 1000


_CLAUSE_SPLIT = re.compile(
    r"[?;!]+|\.\s+|,?\s+(?:and also|and then|and|also|plus|or|but|then|&|\+)\s+(?=(?:what|which|how|when|where|who|"
    r"why|is|are|can|could|do|does|should|must|may|will|would|at|in|i)\b)", re.IGNORECASE)


def clauses(question: str) -> list[str]:
    """The parts of a multi-part question; a part with fewer than two words joins the one before it."""
    out: list[str] = []
    for piece in _CLAUSE_SPLIT.split(question):
        piece = piece.strip(" ,.")
        if not piece:
            continue
        if out and len(piece.split()) < 2:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out
