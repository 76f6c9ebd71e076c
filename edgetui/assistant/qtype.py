"""What kind of value a question asks for, and whether a sentence states one.

Classic question typing: "how much does it cost" wants an amount of money, "how often" a frequency, "how
long" a duration, "what torque" a torque. A governing sentence that states no value of that kind cannot be
the answer ("SK-3110: 4 kits minimum" does not say what a kit costs), which is the case retrieval scores
alone miss: the topic is in the corpus, the figure is not. The patterns are general English about
quantities, not about any corpus or golden set; the pipeline feeds `type_missing` to the fitted
answerability model as one more piece of evidence, it never decides alone.
"""

from __future__ import annotations

import re

_I = re.IGNORECASE
TYPES: dict[str, tuple[re.Pattern, re.Pattern]] = {
    "money": (re.compile(r"\b(?:cost|costs|price|prices|how much (?:is|are|does|do|will)|fees?|fined)\b|"
                         r"\b(?:a|the|what) fine\b", _I),
              re.compile(r"[$£€]\s?\d|\b\d[\d,.]*\s?(?:dollars|pounds|euros)\b|\blist rate\b", _I)),
    "frequency": (re.compile(r"\bhow often\b|\bhow frequently\b|\bintervals?\b|\bfrequency\b", _I),
                  re.compile(r"\bevery\b|\bonce\b|\b(?:daily|weekly|monthly|yearly|annually)\b|\bper "
                             r"(?:day|week|month|year|shift)\b|\b\d+\s*(?:months?|days?|weeks?|years?)\b", _I)),
    "duration": (re.compile(r"\bhow long\b|\bhow soon\b|\bhow quick(?:ly)?\b|\bhow fast\b|\bdeadline\b|"
                            r"\bwithin what time\b|\bvalid for\b|\bhow many (?:hours|minutes|days|weeks)\b", _I),
                 re.compile(r"\b\d+(?:\.\d+)?\s*-?\s*(?:(?:working|business|calendar|clear)\s+)?(?:hours?|minutes?|days?|weeks?|months?|years?|h|mins?)\b|"
                            r"\bsame day\b|\bimmediate(?:ly)?\b|\bend of the shift\b|\bnext (?:round|working day)\b|"
                            r"\bwhole (?:job|shift)\b|\buntil\b", _I)),
    "torque": (re.compile(r"\btorque\b", _I), re.compile(r"\b\d+\s?N\s?m\b", _I)),
    "temperature": (re.compile(r"\btemperature\b|\bhow hot\b", _I), re.compile(r"°\s?C|\bdegrees\b", _I)),
    "distance": (re.compile(r"\bhow far\b|\bdistance\b|\bhow close\b", _I), re.compile(r"\b\d+(?:\.\d+)?\s?m\b", _I)),
    "volume": (re.compile(r"\b(?:litres?|liters?|gallons?|cubic met(?:re|er)s?)\b", _I),
               re.compile(r"\b\d[\d,.]*\s?(?:l|litres?|liters?|gallons?|m3|m³)\b", _I)),
    "mass": (re.compile(r"\b(?:grams?|kilos?|kilograms?|kgs?|lbs?|how heavy|weighs?|weight)\b", _I),
             re.compile(r"\b\d[\d,.]*\s?(?:g|kg|grams?|kilograms?|lbs?)\b|\btonnes?\b", _I)),
    "sound": (re.compile(r"\b(?:decibels?|dba?)\b|\bhow loud\b|\bnoise levels?\b", _I),
              re.compile(r"\b\d+\s?dba?\b|\bdecibels?\b", _I)),
    "count": (re.compile(r"\bhow many\b(?!\s+(?:hours|minutes|days|weeks|months|years)\b)|\bnumber of\b", _I),
              re.compile(r"(?<![\w-])\d+(?![\w-])|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twice|single|both)\b",
                         _I)),
}


def asked(question: str) -> list[str]:
    """The value types the question asks for (usually none or one)."""
    return [name for name, (q, _) in TYPES.items() if q.search(question)]


def states(kind: str, sentence: str) -> bool:
    """Does the sentence state a value of this kind?"""
    return bool(TYPES[kind][1].search(sentence))


def type_missing(question: str, sentences: list[str]) -> float:
    """1.0 when the question asks for a kind of value that none of the sentences states, else 0.0."""
    kinds = [k for k in asked(question) if k != "count"]  # "how many" is met by any number: no evidence
    if not kinds:
        return 0.0
    text = " ".join(sentences)
    return 0.0 if any(TYPES[k][1].search(text) for k in kinds) else 1.0
