"""Ranges and zones: which sentence's interval holds a value the question states.

"Zone C, 4.5 to 7.1 mm/s", "below 0.5 ppm", "between 19.5% and 23.5%", "50 kW or more": a sentence that
bounds a quantity is the governing one for a reading inside its bounds ("vib 5.2 on P-210" → Zone C).
Parsed from the text's own wording (to, between … and, below/under/less than/fewer than, above/over/more
than/at least/starts at, or more/or less), never from a list of the corpus's sentences, so any bundle's corpus works.
Numbers inside asset codes (the 210 of P-210) are not quantities.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_UNIT = r"(?:-|\s*)(%|°\s?c|mm/s|ppm|kw|kva|v|m|kg|hours?|minutes?|days?|drops)?"  # "30-minute" too
_CODE = re.compile(r"\b[a-z]{1,4}-?\d+\b", re.IGNORECASE)
_PATTERNS = [
    (re.compile(rf"between\s+{_NUM}{_UNIT}\s+and\s+{_NUM}{_UNIT}", re.I), "between"),
    (re.compile(rf"{_NUM}{_UNIT}\s+to\s+{_NUM}{_UNIT}", re.I), "between"),
    (re.compile(rf"(?:below|under|less than|fewer than|lower than)\s+{_NUM}{_UNIT}", re.I), "below"),
    (re.compile(rf"(?:above|over|more than|greater than|at least|exceeds?|(?:starts?|begins?) at)\s+{_NUM}{_UNIT}",
                re.I), "above"),
    (re.compile(rf"{_NUM}{_UNIT}\s+or\s+(?:more|above|higher)", re.I), "above"),
]
_VALUE = re.compile(rf"(?<![\w.]){_NUM}{_UNIT}(?![\w])", re.I)
_STEP = re.compile(rf"^\s*{_NUM}{_UNIT}\s*:", re.I)  # "1 ppm: alarm. Evacuate ..." — one step of a ladder


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float
    unit: str

    def holds(self, value: float, unit: str) -> bool:
        if unit and self.unit and unit != self.unit:
            return False
        return self.lo <= value <= self.hi


def _unit(u: str | None) -> str:
    u = (u or "").lower().replace(" ", "")
    return u.rstrip("s") if u in {"hours", "minutes", "days", "drops"} else u


def intervals(text: str) -> list[Interval]:
    """Every bounded quantity the text states."""
    out: list[Interval] = []
    for pat, kind in _PATTERNS:
        for m in pat.finditer(text):
            if kind == "between":
                a, ua, b, ub = m.groups()
                out.append(Interval(_num(a), _num(b), _unit(ub or ua)))
            elif kind == "below":
                out.append(Interval(-math.inf, _num(m[1]), _unit(m[2])))
            else:
                out.append(Interval(_num(m[1]), math.inf, _unit(m[2])))
    return out


def ladder(sentences: list[str]) -> list[list[Interval]]:
    """Per sentence, the band it governs when the sentences form a ladder of levels ("0.5 ppm: warning.",
    "1 ppm: alarm.", "3 ppm: high alarm."): each step holds from its own value up to the next step's, the
    top step upwards. A reading of 1.2 ppm is the alarm step's case, though no sentence states 1.2 or a
    range around it. Sentences that are no step, or a lone step, get nothing."""
    steps = [(i, _num(m[1]), _unit(m[2])) for i, s in enumerate(sentences) if (m := _STEP.match(s))]
    out: list[list[Interval]] = [[] for _ in sentences]
    for unit in {u for _, _, u in steps}:
        same = sorted((v, i) for i, v, u in steps if u == unit)
        if len(same) < 2:
            continue
        for k, (v, i) in enumerate(same):
            top = same[k + 1][0] if k + 1 < len(same) else math.inf
            out[i].append(Interval(v, math.nextafter(top, -math.inf), unit))
    return out


def values(text: str) -> list[tuple[float, str]]:
    """(value, unit) of every quantity a question states, asset-code digits left out."""
    clean = _CODE.sub(" ", text)
    return [(_num(m[1]), _unit(m[2])) for m in _VALUE.finditer(clean)]


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def holds_any(sentence_intervals: list[Interval], question_values: list[tuple[float, str]]) -> bool:
    return any(iv.holds(v, u) for iv in sentence_intervals for v, u in question_values)
