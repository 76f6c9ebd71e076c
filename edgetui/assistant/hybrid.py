"""Hybrid retrieval: BM25 over sections (FTS5) fused with MiniLM cosine over sentences.

Each quotable sentence gets one score:

    cosine(question, "title: sentence")
      + alias * max(0, best cosine(question, an alias question of the sentence) - that cosine)
      + sec   * cosine(question, the whole section)              context a single sentence lacks
      + lex   * bm25(section) / (bm25(section) + bm25_half)      lexical evidence, saturating
      + code  * [the sentence names an asset or part the question names, ranges included]
      + range * [a value the question states lies inside an interval the sentence states]

BM25 keeps what it does well (part numbers, ranges, rare words); the encoder carries synonyms, slang and
rewordings. A section scores as its best sentence, and citations are the sections of the quoted sentences.
Whether the policies answer at all is a small logistic model over the evidence (`answerable`: the best
fused score, its cosine parts, lexical evidence, the share of question words no policy uses, capitalised
names no policy uses, the intent classifier's off-topic probability, and how much nearer the question is
to a near-miss question — one the policies do not answer — than to its best sentence), fitted on the dev set; the
assistant abstains when its probability is below `abstain_below`. Every weight and threshold lives in
`Tuning`: its defaults are fitted on the project's own dev set by `bench/fit_assistant.py` (never on the
public golden set), and a bundle may carry its own values under `[runtime.assistant]` in its recipe,
since they depend on the corpus.
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass, fields

import numpy as np

from edgetui.assistant.corpus import Section, codes_in, expand_ranges
from edgetui.assistant.index import STOPWORDS, Retriever, clauses
from edgetui.assistant.qtype import asked, states, type_missing
from edgetui.assistant.quotes import terms
from edgetui.assistant.ranges import holds_any, intervals, ladder, values
from edgetui.assistant.semantic import SentenceVectors, Unit


@dataclass(frozen=True)
class Tuning:
    """Fitted on golden_sets/field-policy/dev.jsonl by bench/fit_assistant.py (see bench/RESULTS.md)."""

    alias: float = 1.0  # how far a sentence's best alias question lifts its cosine (0: off, 1: the max of both)
    sec: float = 0.2  # weight of the whole section's cosine in a sentence's score
    rng: float = 0.1  # a value of the question inside an interval the sentence states
    olap: float = 0.0  # IDF-weighted share of the question's words (stemmed) that the sentence itself uses
    lex: float = 0.4  # weight of the section's saturated BM25 in a sentence's score
    bm25_half: float = 6.0  # the BM25 score at which lexical evidence is half its weight
    code: float = 0.0  # a sentence naming an asset or part code of the question
    typ_within: float = 9.0  # a sentence of the best section stating the kind of value asked ("how fast" → a
    # duration) is quoted within this of the best, when no quote so far states one
    abstain_below: float = 0.74  # the assistant abstains when p_answerable is below this
    cos_floor: float = 0.0  # ... or when the best sentence's own cosine is below this
    sibling_within: float = 9.0  # the next sentence of the best section is quoted within this of the best
    siblings: float = 2  # ... up to this many of them (a whole short section: the rule and its conditions)
    second_within: float = 0.2  # the best sentence of the runner-up section is quoted within this of the best
    joined_within: float = 0.06  # the same, for a question joining two asks ("and", "also", "+", two "?")
    part_min: float = 0.7  # a question part's best sentence in another section is quoted from this score
    part_ctx: float = 0.5  # a part's score mixes in the whole question's at this weight ("how many of them")
    part_asks: float = 1.0  # 1: only a part that asks (a question word, or it opens with a verb) gets its own quote
    part_stay: float = 0.0  # ... unless a sentence of a section already quoted scores within this of it
    instruction_min: float = 0.8  # a segment with p(instructions) above this is dropped from the question
    small_talk_min: float = 0.7  # a question with p(small_talk) above this gets the greeting
    off_topic_min: float = 0.8  # a question with p(off_topic) above this abstains before retrieval
    # logistic weights over FEATURES, then the bias; empty: abstain on the best fused score alone
    answerable: tuple[float, ...] = (1.0759, 1.5005, 0.4871, 0.9942, -0.1382, -0.596, -1.3939, -1.1694, -2.6002,
                                     -1.1404)

    @classmethod
    def from_runtime(cls, runtime: dict) -> Tuning:
        given = dict(runtime.get("assistant", {}) or {})
        known = {f.name for f in fields(cls)}
        vals = {k: (tuple(float(x) for x in v) if isinstance(v, list | tuple) else float(v))
                for k, v in given.items() if k in known}
        return cls(**vals)

    def p_answerable(self, features: dict[str, float]) -> float:
        """Probability that the policies answer the question; the best fused score itself when unfitted."""
        if not self.answerable:
            return features["fused"]
        z = self.answerable[-1] + sum(w * features[f] for w, f in zip(self.answerable[:-1], FEATURES, strict=False))
        return 1.0 / (1.0 + math.exp(-z))


FEATURES = ("fused", "cos", "sec_cos", "lex", "unknown", "named", "off_topic", "type_missing", "near_miss")


@dataclass(frozen=True)
class Scored:
    """A sentence and its fused score for one question; `section` is where its citation points."""

    unit: Unit
    score: float

    @property
    def section(self) -> Section:
        return self.unit.section


@dataclass(frozen=True)
class Evidence:
    """What retrieval found for one question."""

    ranked: list[tuple[Section, float]]  # sections by their best sentence, best first
    units: list[Scored]  # every sentence, best first
    quotes: list[Scored]  # the governing sentences chosen for the answer
    unknown_codes: tuple[str, ...]  # asset/part numbers of a family the corpus numbers, that it never names
    ms: float
    features: dict[str, float]  # what `Tuning.p_answerable` reads (off_topic is filled in by the pipeline)

    @property
    def best(self) -> float:
        return self.units[0].score if self.units else 0.0


_JOINED = re.compile(r"\b(?:and|also|plus)\b|[&+;]|\?.*\?", re.IGNORECASE)
_ASKS = re.compile(r"^\W*(?:what|which|how|when|where|who|whom|why|is|are|am|can|could|do|does|did|should|must|"
                   r"may|might|will|would|have|has|any|tell|give|list|name|show)\b|\b(?:what|which|how|when|where|who|"
                   r"whom|why)\b", re.IGNORECASE)
_CODE_HINT = re.compile(r"\b([a-z]{1,3})(?:-(\d{1,5})|(\d{2,5}))\b")


class HybridRetriever:
    def __init__(self, lexical: Retriever, vectors: SentenceVectors, tuning: Tuning):
        self.lexical = lexical
        self.vectors = vectors
        self.t = tuning
        self.unit_codes = [frozenset(codes_in(u.sentence) + expand_ranges(u.sentence)) for u in vectors.units]
        self.known_codes = frozenset().union(*self.unit_codes) | frozenset(lexical.codes)
        self.prefixes = frozenset(re.match(r"[a-z]+", c)[0] for c in self.known_codes if re.match(r"[a-z]+\d", c))
        self.section_of = [u.section.id for u in vectors.units]
        # a question's query plan (typo repair included) is read by BM25 and by the unknown-word share
        self._plan = functools.lru_cache(maxsize=256)(lexical.plan)
        sec_index = {s.id: i for i, s in enumerate(vectors.sections)}
        self.unit_section = np.array([sec_index[i] for i in self.section_of])
        self.unit_intervals = [intervals(u.sentence) for u in vectors.units]
        by_section: dict[str, list[int]] = {}
        for i, sid in enumerate(self.section_of):
            by_section.setdefault(sid, []).append(i)
        for idx in by_section.values():  # a section's ladder of levels bounds each step too
            for i, steps in zip(idx, ladder([vectors.units[i].sentence for i in idx]), strict=True):
                self.unit_intervals[i] += steps
        self.unit_terms = [terms(u.sentence) for u in vectors.units]
        self.unit_index = {(u.section.id, u.sentence): i for i, u in enumerate(vectors.units)}
        df: dict[str, int] = {}
        for ts in self.unit_terms:
            for t in ts:
                df[t] = df.get(t, 0) + 1
        n = max(len(self.unit_terms), 1)
        self.idf = {t: math.log(1 + n / c) for t, c in df.items()}
        self.idf_unknown = math.log(1 + n)

    def _bm25(self, text: str) -> dict[str, float]:
        return self.lexical.section_scores(self._plan(text))

    def unit_scores(self, text: str, vector: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The fused score of every sentence for one question (or question part), and its parts."""
        cos = self.vectors.cosines(vector)[0]
        if self.t.alias:
            cos = cos + self.t.alias * np.maximum(0.0, self.vectors.alias_cosines(vector)[0] - cos)
        sec = self.vectors.section_cosines(vector)[0][self.unit_section]
        bm = self._bm25(text)
        lex = np.array([bm.get(s, 0.0) for s in self.section_of])
        lex = lex / (lex + self.t.bm25_half)
        q_codes = set(codes_in(text.lower()))
        code = np.array([bool(q_codes & c) for c in self.unit_codes], dtype=float) if q_codes else np.zeros(len(cos))
        vals = values(text)
        rng = (np.array([holds_any(iv, vals) for iv in self.unit_intervals], dtype=float) if vals
               else np.zeros(len(cos)))
        olap = self.overlap(text) if self.t.olap else np.zeros(len(cos))
        total = cos + self.t.sec * sec + self.t.lex * lex + self.t.code * code + self.t.rng * rng + self.t.olap * olap
        return total, {"cos": cos, "sec_cos": sec, "lex": lex}

    def overlap(self, text: str) -> np.ndarray:
        """Per sentence: the IDF-weighted share of the question's terms it contains (words no sentence uses
        count in the denominator: a question about something else is not covered)."""
        q = terms(text)
        weights = {t: self.idf.get(t, self.idf_unknown) for t in q}
        total = sum(weights.values())
        if not total:
            return np.zeros(len(self.unit_terms))
        return np.array([sum(weights[t] for t in q & ts) / total for ts in self.unit_terms])

    def unknown_names(self, text: str) -> tuple[str, ...]:
        """Capitalised words inside the question that no policy uses ("Halloran", "Lindon"): a vendor, a site
        or a product the documents never name. All-caps words (shouting, acronyms) and first words are left out."""
        out = []
        for m in re.finditer(r"(?<![.!?:]\s)(?<!^)\b([A-Z][a-z]{2,})\b", text.strip()):
            w = m[1].lower()
            if w not in STOPWORDS and not self.lexical.uses(w):
                out.append(m[1])
        return tuple(dict.fromkeys(out))

    def unknown_share(self, text: str) -> float:
        """Share of the question's content words that no policy uses, even after typo repair."""
        plan = self._plan(text)
        words = [g[0] for g in plan.terms if not g[0].isdigit() and len(g[0]) > 2 and g[0] not in STOPWORDS]
        unknown = [w for w in plan.unknown if not w.isdigit() and len(w) > 2]
        return len(unknown) / len(words) if words else 0.0

    def unknown_codes(self, text: str) -> tuple[str, ...]:
        """Numbers like P-407 or SK-9100: a family the corpus numbers (P-, SK-) but a number it never names."""
        out = []
        for m in _CODE_HINT.finditer(text.lower()):
            code = f"{m[1]}{int(m[2] or m[3])}"
            if m[1] in self.prefixes and code not in self.known_codes:
                out.append(m[0].upper())
        return tuple(dict.fromkeys(out))

    def search(self, question: str, k: int = 3) -> Evidence:
        t0 = time.perf_counter()
        parts = clauses(question)
        texts = [question] + (parts if len(parts) >= 2 else [])
        vecs = self.vectors.embed(texts)
        scores, comp = self.unit_scores(question, vecs[:1])
        order = np.argsort(-scores, kind="stable")
        units = [Scored(self.vectors.units[i], float(scores[i])) for i in order]
        quotes = self._choose(units, joined=bool(_JOINED.search(question)) or len(parts) >= 2, question=question)
        for text, vec in zip(texts[1:], vecs[1:], strict=True):
            if self.t.part_asks and not _ASKS.search(text):
                continue  # a statement ("Blower B-03 reads 6 mm/s") is context for the asks, not an ask
            part = self.unit_scores(text, vec[None, :])[0]
            self._add_part(quotes, (part + self.t.part_ctx * scores) / (1.0 + self.t.part_ctx), text)
        ranked = self._rank_sections(units, quotes, k)
        top = int(order[0])
        near = float(self.vectors.near_miss_cosines(vecs[:1])[0]) if len(self.vectors.near_matrix) else None
        features = {"fused": float(scores[top]), "cos": float(comp["cos"][top]),
                    "sec_cos": float(comp["sec_cos"][top]), "lex": float(comp["lex"][top]),
                    "unknown": self.unknown_share(question), "named": float(len(self.unknown_names(question))),
                    "off_topic": 0.0, "type_missing": type_missing(question, [q.unit.sentence for q in quotes]),
                    # a bundle without near-miss questions reads 0: refit its `answerable` weights
                    "near_miss": 0.0 if near is None else near - float(comp["cos"][top])}
        return Evidence(ranked, units, quotes, self.unknown_codes(question), (time.perf_counter() - t0) * 1000,
                        features)

    def names_the_case(self, unit: Unit, question: str) -> bool:
        """Does the sentence name the question's asset (P-305 inside "P-301 to P-306") or bound its reading
        (5.2 inside "Zone C, 4.5 to 7.1 mm/s")? Such a sentence governs over its siblings."""
        i = self.unit_index[(unit.section.id, unit.sentence)]
        q_codes = set(codes_in(question.lower()))
        return bool(q_codes & self.unit_codes[i]) or holds_any(self.unit_intervals[i], values(question))

    def _choose(self, units: list[Scored], joined: bool = False, question: str = "") -> list[Scored]:
        """The best sentence; up to two more of its section when they score close (a rule often spans
        sentences: "For a pump below 50 kW, the limit is 8 hours"); and the runner-up section's best sentence
        when it scores close too (two sections that both govern, "see also"). Within the best section a
        sentence naming the question's asset or bounding its reading comes first ("ranges decide")."""
        if not units:
            return []
        best = units[0]
        same = [u for u in units[1:] if u.section.id == best.section.id]
        out = [best] + [u for u in same[:int(self.t.siblings)] if u.score >= best.score - self.t.sibling_within]
        if question and not self.names_the_case(best.unit, question):
            named = next((u for u in same if self.names_the_case(u.unit, question)), None)
            if named is not None:
                out = [named] + [u for u in out if u is not named]
        kinds = asked(question)
        if kinds and not any(states(k, q.unit.sentence) for q in out for k in kinds):
            typed = next((u for u in same if u not in out and any(states(k, u.unit.sentence) for k in kinds)), None)
            if typed is not None and typed.score >= best.score - self.t.typ_within:
                out.append(typed)
        other = next((u for u in units if u.section.id != best.section.id), None)
        within = max(self.t.second_within, self.t.joined_within) if joined else self.t.second_within
        if other is not None and other.score >= best.score - within:
            out.append(other)
        return out

    def _add_part(self, quotes: list[Scored], scores: np.ndarray, text: str) -> None:
        """For one part of a multi-part question: its best sentence, when no quote so far is it. A sentence of
        a section already quoted that scores within `part_stay` of that best is taken instead: two asks about
        one subject ("how many people, and what ticket must one hold") usually share its section, and a
        third section cited for a near tie costs the answer its citation precision. A sentence of the same
        section that states the kind of value the part asks for ("how many" → a number) goes first when the
        best does not. At most three sections are cited."""
        order = np.argsort(-scores, kind="stable")
        i = int(order[0])
        quoted = {self.unit_index[(q.section.id, q.unit.sentence)] for q in quotes}
        secs = {int(self.unit_section[j]) for j in quoted}
        if self.unit_section[i] not in secs:
            stay = next((int(j) for j in order[1:24] if self.unit_section[j] in secs), None)
            if stay is not None and scores[stay] >= scores[i] - self.t.part_stay:
                i = stay
        kinds = asked(text)
        if kinds and not any(states(k, self.vectors.units[i].sentence) for k in kinds):
            typed = next((int(j) for j in order[1:12] if self.unit_section[j] == self.unit_section[i]
                          and scores[j] >= scores[i] - self.t.typ_within
                          and any(states(k, self.vectors.units[j].sentence) for k in kinds)), None)
            i = i if typed is None else typed
        u = self.vectors.units[i]
        new_section = int(self.unit_section[i]) not in secs
        if scores[i] >= self.t.part_min and i not in quoted and len(quotes) < 5 and (len(secs) < 3 or not new_section):
            quotes.append(Scored(u, float(scores[i])))

    @staticmethod
    def _rank_sections(units: list[Scored], quotes: list[Scored], k: int) -> list[tuple[Section, float]]:
        best: dict[str, tuple[Section, float]] = {}
        for u in units:
            best.setdefault(u.section.id, (u.section, u.score))
        quoted = [q.section.id for q in quotes]
        order = list(dict.fromkeys(quoted + list(best)))
        return [best[i] for i in order[:max(k, len(set(quoted)))]]
