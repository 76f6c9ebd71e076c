"""Choosing the governing sentences to quote, and checking a lead against them.

A 135M model reads well enough to point at the answer (its lead line usually copies the right number)
but paraphrases numbers and units wrongly and picks sentences badly when asked to copy one. So the
sentence shown to the technician is chosen here: each sentence of the retrieved sections is scored by
the question's words (IDF-weighted, crude stemming), by the words and numbers of the model's lead, and
by its section's retrieval rank. The lead is kept only when every number and part number it states is
in the quoted sentences: a lead can never put a value on screen that the policy does not state.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgetui.assistant.corpus import Section, codes_in
from edgetui.assistant.index import LEXICON, STOPWORDS, clauses

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
# restatements a technician would not need spelled out; they never make a lead wrong
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "eight": "8",
                 "ten": "10", "twice": "2"}


def stem(word: str) -> str:
    """A crude English stemmer: enough to meet plurals and tenses (calibrated ~ calibration)."""
    w = word
    for suf, rep in (("ations", "ate"), ("ation", "ate"), ("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""),
                     ("s", ""), ("ly", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: len(w) - len(suf)] + rep
            break
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    return w.rstrip("e") if len(w) > 4 else w


def terms(text: str) -> set[str]:
    """Stemmed content words, numbers and joined part numbers of a text."""
    low = text.lower()
    out: set[str] = set(codes_in(low))
    for t in _TOKEN.findall(low):
        if t in STOPWORDS or (len(t) == 1 and not t.isdigit()):
            continue
        out.add(t if t[0].isdigit() else stem(t))
        for alt in LEXICON.get(t, ()):
            out.update(stem(a) for a in alt.split() if a not in STOPWORDS)
    return out


def numbers(text: str) -> set[str]:
    """Numbers stated in a text, normalised (2,500 → 2500), plus part numbers."""
    low = text.lower()
    out = {n.replace(",", "") for n in _NUMBER.findall(low) if not re.match(r"^[a-z]", n)}
    # numbers inside part numbers (P-201) are part of the code, not quantities
    code_digits = {re.sub(r"\D", "", c) for c in codes_in(low)}
    out -= code_digits
    return out | set(codes_in(low))


SCOPE_TITLES = frozenset({"scope", "purpose", "spaces covered", "equipment"})
SCOPE_PENALTY = 3.0


@dataclass(frozen=True)
class Quote:
    section: Section
    sentence: str
    score: float


class QuoteChooser:
    """Scores sentences of the retrieved sections; IDF comes from the whole corpus's sentences."""

    def __init__(self, sections: list[Section]):
        self.df: dict[str, int] = {}
        n = 0
        for s in sections:
            for sent in s.sentences:
                n += 1
                for t in terms(sent):
                    self.df[t] = self.df.get(t, 0) + 1
        self.n = max(n, 1)

    def idf(self, t: str) -> float:
        return math.log(1 + self.n / (1 + self.df.get(t, 0)))

    def _overlap(self, want: set[str], have: set[str]) -> float:
        return sum(self.idf(t) for t in want & have)

    def choose(self, question: str, hits: list[Section], lead: str = "", max_quotes: int = 3, lw: float = 0.0,
               nw: float = 1.0, pw: float = 1.5, close: float = 0.35) -> list[Quote]:
        """The best sentence; the next best of the same section when it scores close (a rule often spans
        two sentences: "For a pump below 50 kW, the limit is …"); and for a multi-part question the best
        sentence of another section for the part the first ones do not cover. At most `max_quotes`.

        Weights (measured on the public golden set's answerable cases, see bench/RESULTS.md): the lead's
        words did not help choose (`lw` 0), the numbers it states did a little (`nw` 1)."""
        if not hits:
            return []
        q_terms, l_terms, l_nums = terms(question), terms(lead), numbers(lead)
        scored: list[Quote] = []
        for rank, sec in enumerate(hits):
            prior = 1.0 / (1 + rank)
            # a Scope or Purpose section says what a policy covers, not what to do
            prior -= SCOPE_PENALTY if sec.title.strip().lower() in SCOPE_TITLES else 0.0
            for sent in sec.sentences:
                st = terms(sent)
                score = (self._overlap(q_terms, st) + lw * self._overlap(l_terms, st)
                         + nw * len(l_nums & numbers(sent)) + pw * prior)
                scored.append(Quote(sec, sent, round(score, 3)))
        scored.sort(key=lambda q: -q.score)
        best = scored[0]
        out = [best]
        # a rule often spans two sentences of one section ("For a pump below 50 kW, the limit is …")
        same = [q for q in scored[1:] if q.section.id == best.section.id]
        if same and same[0].score >= close * best.score and len(out) < max_quotes:
            out.append(same[0])
            out.sort(key=lambda q: best.section.sentences.index(q.sentence))
        if len(out) < max_quotes:
            parts = clauses(question)
            if len(parts) >= 2:
                covered = set().union(*(terms(q.sentence) for q in out))
                for part in parts:
                    p_terms = terms(part)
                    if self._overlap(p_terms, covered) >= 0.5 * self._overlap(p_terms, p_terms):
                        continue
                    cands = [q for q in scored if q.section.id != best.section.id]
                    if not cands:
                        break
                    second = max(cands, key=lambda q: (self._overlap(p_terms, terms(q.sentence)), q.score))
                    if self._overlap(p_terms, terms(second.sentence)) > 0:
                        out.append(second)
                    break
        return out


def lead_supported(lead: str, quotes: list[Quote]) -> bool:
    """Every number and part number in the lead appears in the quoted sentences."""
    want = numbers(_spell_numbers(lead))
    have: set[str] = set()
    for q in quotes:
        have |= numbers(q.sentence)
    return want <= have


def _spell_numbers(text: str) -> str:
    return re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", lambda m: _NUMBER_WORDS[m[1].lower()], text,
                  flags=re.IGNORECASE)
