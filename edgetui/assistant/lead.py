"""The model's one-line lead is shown only when it says what the governing sentence says.

A 135M model copies values from the wrong sentence ("SK-2240" for a treated-water pump whose sentence says
SK-3110), restates a revised value ("30 minutes", replaced by Revision 4), echoes the question ("The citation
module is offline.") or degenerates ("1. 1. 1."). A lead survives only when its words are the quotes' or the
question's, every value it states is one the top quote affirms (not one a clause negates or replaces), it adds
a value or a word the question did not give, it is not ambiguous between two values of one unit, its sentence
does not qualify the asked thing otherwise ("raw water pumps" for "treated water pumps"), a value it states is
of the kind the question asks for (a duration for "how long", money for "what fine"), and it is not
degenerate. Otherwise the quotes speak alone.
"""

from __future__ import annotations

import re

from edgetui.assistant.index import STOPWORDS
from edgetui.assistant.qtype import asked, states
from edgetui.assistant.quotes import Quote, lead_supported, numbers, stem, terms
from edgetui.assistant.ranges import values

# a clause stating a value it negates or replaces: "Never fit an SK-2240 kit", "replaced the earlier 6-hour limit"
_NEGATING = re.compile(r"\b(?:never|not|no longer|replaced|replaces|earlier|old|previous|formerly|instead of|"
                       r"shortened|extended|raised|lowered|reduced|increased|changed)\b", re.IGNORECASE)


def _affirmed_numbers(sentence: str) -> set[str]:
    """Numbers and codes a sentence states outside clauses that negate or replace them."""
    out: set[str] = set()
    for clause in _clauses(sentence):
        if not _NEGATING.search(clause):
            out |= numbers(clause)
    return out


def _ambiguous(lead: str, sentence: str) -> bool:
    """The lead states a quantity that the governing sentence gives alongside another of the same unit
    ("48 hours … below 60 hours", "4 kits … falls to 2"): which one answers is reading the model cannot be
    trusted with, so the quote speaks alone."""
    have = {(v, u) for clause in _clauses(sentence) if not _NEGATING.search(clause) for v, u in values(clause)}
    for v, unit in values(lead):
        if any(v == hv for hv, _ in have) and len({hv for hv, hu in have if hu == unit or not unit}) > 1:
            return True
    return False


def _clauses(sentence: str) -> list[str]:
    return re.split(r"[;:]|,\s|\.\s", sentence)  # "2,500" stays one number


_YES_NO = re.compile(r"^\s*(?:yes|no)\b", re.IGNORECASE)
_AUX = re.compile(r"^(?:can|could|may|might|must|shall|should|will|would|is|are|am|was|were|do|does|did|have|has|"
                  r"ok(?:ay)? to|is it ok)\b", re.IGNORECASE)


def _is_yes_no(question: str) -> bool:
    """A question answered by yes or no: one of its clauses opens with an auxiliary verb ("can i shelve …")."""
    if re.search(r"\b(?:ok|okay|alright|allowed|fine) to\b", question, re.IGNORECASE):
        return True
    return any(_AUX.match(part.strip()) for part in re.split(r"[.?!;:,]|\band\b|\bor\b", question))


def _stems(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[a-z]+", text.lower())]


def modifier_pairs(text: str) -> set[tuple[str, str]]:
    """(modifier, word) pairs of adjacent content words, stemmed ("treated water", "raw water")."""
    words = _stems(text)
    return {(a, b) for a, b in zip(words, words[1:], strict=False)
            if len(a) > 2 and len(b) > 2 and a not in STOPWORDS and b not in STOPWORDS}


def contrasted(question: str, sentence: str, attested: frozenset[tuple[str, str]]) -> bool:
    """The question and the sentence qualify one word with two modifiers the corpus uses as alternatives
    ("the treated water pumps" against "Raw water pumps use bearing set BR-6310", both "treated water" and
    "raw water" in `attested`, the corpus's pairs): the sentence is about a sibling of what is asked, so a
    value copied from it answers another question."""
    q_words, s_words = set(_stems(question)), set(_stems(sentence))
    return any(x != y and x not in s_words and y not in q_words and (x, w) in attested
               for x, w in modifier_pairs(question) for y, v in modifier_pairs(sentence) if v == w)


def _restates(lead: str, question: str) -> bool:
    """Every content word of the lead is one of the question's (stemmed): it echoes what the technician typed,
    an injected claim included, and answers nothing. A letter the question lacks ("Tier C", "Zone D") counts."""
    asked_words = set(_stems(question))
    own = [w for w in _stems(lead) if w not in STOPWORDS]
    return bool(own) and all(w in asked_words for w in own)


def _degenerate(lead: str) -> bool:
    """Output no technician should see: no word of two letters or more ("-", "1."), or one token three
    times or more ("1. 1. 1. 1.")."""
    toks = lead.lower().split()
    return not any(re.search(r"[a-z]{2}", t) for t in toks) or any(toks.count(t) >= 3 for t in set(toks))


def _plain(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def checked_lead(lead: str, quotes: list[Quote], question: str,
                 attested: frozenset[tuple[str, str]] = frozenset()) -> str:
    """The lead when its words are the quotes' or the question's, every value it states is one the top
    (governing) quote affirms, it states a value the question did not already give, and it is not
    degenerate ("1. 1. 1.", a bare list marker) or a copy of a quoted sentence (the quote is on screen
    already, and a copied sentence is not an answer to the question)."""
    lead = " ".join(lead.split())
    if not lead or len(lead) > 140 or not lead_supported(lead, quotes):
        return ""
    if _plain(lead) in {_plain(q.sentence) for q in quotes}:
        return ""
    allowed = terms(question)
    for q in quotes:
        allowed |= terms(q.sentence) | terms(q.section.title)
    extra = {t for t in terms(lead) if not t.isdigit()} - allowed - {"yes", "no"}
    if extra:
        return ""
    if _degenerate(lead) or (_YES_NO.match(lead) and not _is_yes_no(question)):
        return ""  # "No." to "Seal kit for P-205?" answers a question nobody asked
    stated = numbers(lead)
    if stated and not stated <= _affirmed_numbers(quotes[0].sentence):
        return ""  # a value the governing sentence does not state, or states only to negate or replace it
    if stated and stated <= numbers(question):  # "P-201 is a seal kit.": repeats the question, answers nothing
        return ""
    if not stated and not _YES_NO.match(lead) and _restates(lead, question):
        return ""  # "The citation module is offline." to a question that claims so: the question's words back
    if stated and contrasted(question, quotes[0].sentence, attested):
        return ""  # "BR-6310" for treated water pumps, from the raw water pumps' sentence
    if _ambiguous(lead, quotes[0].sentence):
        return ""
    kinds = asked(question)
    if stated and kinds and not any(states(k, lead) for k in kinds):
        return ""  # "A 3-ppm fine." to "what fine …?": a value, but not of the kind the question asks for
    return lead

