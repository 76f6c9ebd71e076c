"""Scorers: one golden case against one answer, exactly as the golden-set fields define them.

- facts: each fact is a list of acceptable spellings; one must appear in the answer, case-insensitive,
  whitespace-normalised, on word boundaries ("1 hour" does not match "11 hours"; "3 ppm" does not match
  "0.3 ppm").
- citations: every expected id cited (recall 1.0) and at least half of the cited ids expected
  (precision >= 0.5); both numbers are reported.
- abstain: abstained exactly when expected; an abstention cites nothing.
- confidential (when the case has it): the answer's marker equals it.
- forbid (when present): none of the strings appears (normalised substring, so stricter than facts).
- lead (when the answer's first line is a lead, a line of the assistant's own words rather than a quoted
  sentence, and states any digit): it contains one spelling of one of the facts. A lead naming another
  value than the rule's is a wrong answer even when the quote below it is right (scorer version 2).

A case passes when every check holds; `reasons` says which failed and why, in words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

from edgetui.evals.golden import GoldenCase

SCORER_VERSION = 2  # 1: without the lead check. Stored runs keep the version that scored them.


def normalize(text: str) -> str:
    """NFKC, case-folded, every run of whitespace one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=4096)
def _fact_pattern(spelling: str) -> re.Pattern:
    s = normalize(spelling)
    head = r"(?<!\w)" if s[:1].isalnum() else ""
    if s[:1].isdigit():
        head += r"(?<!\d[.,])"  # "3 ppm" is not inside "0.3 ppm"
    tail = r"(?!\w)" if s[-1:].isalnum() else ""
    if s[-1:].isdigit():
        tail += r"(?![.,]\d)"  # "142" is not the start of "142.5"
    return re.compile(head + re.escape(s) + tail)


def fact_present(spellings: tuple[str, ...] | list[str] | str, answer: str) -> bool:
    """True when one of the acceptable spellings appears in the answer on word boundaries."""
    if isinstance(spellings, str):
        spellings = (spellings,)
    text = normalize(answer)
    return any(_fact_pattern(s).search(text) for s in spellings)


def answer_lead(text: str) -> str | None:
    """The answer's first line when it is a lead (not a quoted sentence `"…" [POL-NN#S]`), else None."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first or first.startswith(('"', "\u201c")):
        return None
    return first


def lead_ok(case: GoldenCase, text: str) -> bool | None:
    """None when the check does not apply (no lead, or a lead without digits); else whether the lead
    contains one spelling of one of the case's facts."""
    lead = answer_lead(text)
    if lead is None or not any(ch.isdigit() for ch in lead):
        return None
    return any(fact_present(f, lead) for f in case.facts)


def citation_scores(expected: tuple[str, ...], cited: tuple[str, ...]) -> tuple[float, float]:
    """(precision, recall) of the cited ids against the expected ones; empty sets score 1.0."""
    exp, got = set(expected), set(cited)
    recall = len(exp & got) / len(exp) if exp else 1.0
    precision = len(exp & got) / len(got) if got else (1.0 if not exp else 0.0)
    return precision, recall


@dataclass(frozen=True)
class CaseScore:
    passed: bool
    checks: dict[str, bool]  # check name -> held (only the checks this case has)
    reasons: tuple[str, ...]  # one line per failed check
    precision: float
    recall: float

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(k for k, ok in self.checks.items() if not ok)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = list(self.failed)
        return d


def score_case(case: GoldenCase, text: str, citations: tuple[str, ...] | list[str], abstained: bool,
               confidential: bool | None = None) -> CaseScore:
    """Score one answer (its text, cited ids, abstention and confidential marker) against a case."""
    cited = tuple(dict.fromkeys(citations))  # keep order, drop repeats
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    missing = [f for f in case.facts if not fact_present(f, text)]
    checks["facts"] = not missing
    if missing:
        reasons.append("facts: missing " + "; ".join(" or ".join(repr(s) for s in f) for f in missing))

    precision, recall = citation_scores(case.citations, cited)
    checks["citations"] = recall == 1.0 and precision >= 0.5
    if not checks["citations"]:
        absent = [c for c in case.citations if c not in cited]
        extra = [c for c in cited if c not in case.citations]
        parts = [f"recall {recall:.2f}, precision {precision:.2f}"]
        if absent:
            parts.append("not cited " + ", ".join(absent))
        if extra:
            parts.append("unexpected " + ", ".join(extra))
        reasons.append("citations: " + "; ".join(parts))

    checks["abstain"] = abstained == case.abstain and not (abstained and cited)
    if abstained != case.abstain:
        reasons.append("abstain: abstained but the corpus answers this" if abstained
                       else "abstain: answered but should have said the policies don't cover it")
    elif abstained and cited:
        reasons.append(f"abstain: an abstention must cite nothing, cited {', '.join(cited)}")

    if case.confidential is not None:
        checks["confidential"] = bool(confidential) == case.confidential
        if not checks["confidential"]:
            reasons.append("confidential: answer not marked confidential" if case.confidential
                           else "confidential: marked confidential but draws on internal sections only")

    if case.forbid:
        norm = normalize(text)
        hits = [s for s in case.forbid if normalize(s) in norm]
        checks["forbid"] = not hits
        if hits:
            reasons.append("forbid: answer contains " + ", ".join(repr(s) for s in hits))

    lead = lead_ok(case, text)
    if lead is not None:
        checks["lead"] = lead
        if not lead:
            reasons.append(f"lead: the first line {answer_lead(text)!r} states a value none of the facts spell")

    return CaseScore(all(checks.values()), checks, tuple(reasons), round(precision, 4), round(recall, 4))
