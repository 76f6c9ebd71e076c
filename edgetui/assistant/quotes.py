"""Checking a lead against the quoted sentences.

A 135M model reads well enough to point at the answer (its lead line usually copies the right number)
but paraphrases numbers and units wrongly. The sentences shown to the technician are chosen by retrieval
(`hybrid.py`) before the model runs; the model's lead is kept only when every number and part number it
states is in the quoted sentences, so a lead can never put a value on screen that the policy does not
state. `terms` (Snowball stems plus the shorthand lexicon) also says which words a lead may use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import Stemmer

from edgetui.assistant.corpus import Section, codes_in
from edgetui.assistant.index import LEXICON, STOPWORDS

_STEMMER = Stemmer.Stemmer("english")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
# restatements a technician would not need spelled out; they never make a lead wrong
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "eight": "8",
                 "ten": "10", "twice": "2"}


def stem(word: str) -> str:
    """English Snowball stem (the family of FTS5's porter tokenizer): calibrated ~ calibration."""
    return _STEMMER.stemWord(word)


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


@dataclass(frozen=True)
class Quote:
    section: Section
    sentence: str
    score: float


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
