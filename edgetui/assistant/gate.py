"""The rule gate: what rules do well, before any model runs.

`check(question) -> GateResult | None`; `None` means "go on" (to the intent classifier and retrieval).
The rules:

- `empty`: nothing but whitespace or control characters;
- `too_long`: over the question budget (a paste, not a question);
- `unreadable`: mostly bytes that are not text (binary garbage);
- `language`: another script, or the function words of another Latin-script language (the policies and
  the model are English).

Everything that needs understanding (small talk, instructions aimed at the assistant, off-topic
requests, and whether the policies answer at all) is learned: the intent classifier (`intent.py`) and
the calibrated retrieval evidence (`hybrid.py`). `MESSAGES` holds what the technician is told for each.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_QUESTION_CHARS = 600

MESSAGES = {
    "empty": "Type a question about a maintenance policy, for example: which seal kit fits P-201?",
    "too_long": f"That is too long for one question (the limit is {MAX_QUESTION_CHARS} characters). "
                "Ask about one thing at a time.",
    "unreadable": "That doesn't look like text. Type the question in plain words.",
    "language": "I can only answer in English, the language of the policy documents. Please ask in English.",
    "small_talk": "Hello. I answer questions about Harrow Creek maintenance policies, with the sections I used. "
                  "Ask me about a rule, a limit or a part.",
    "instructions": "I answer from the policy documents only and can't change, reveal or ignore my instructions. "
                    "Ask about a maintenance rule.",
    "out_of_scope": "The policy documents don't cover this.",
}


@dataclass(frozen=True)
class GateResult:
    rule: str
    message: str
    abstain: bool = True  # no policy answer was given
    escalate: bool = False  # worth offering an escalation to a supervisor


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FOREIGN = _words(
    # common function words of languages technicians might type in (es, fr, de, pt, it, nl)
    "el la los las del que para por con una uno cómo como cuál qué dónde cuando está es son puedo debo "
    "le les des est pour avec une dans quel quelle quand comment où je dois peux "
    "der die das und ist nicht mit ein eine wie was wann wo ich muss kann welche welcher für "
    "o os as um uma não com qual quando onde posso devo também "
    "il lo gli della che per non come quale dove quando devo posso sono "
    "het een niet hoe wat waar wanneer moet kan ik"
)
_ENGLISH = _words(
    "the a an is are do does what which when where how can i my to of for on in at with must should may "
    "and or it this that be much many long often"
)


def _letters(text: str) -> tuple[int, int, int]:
    """(letters, latin letters, printable) counts."""
    letters = latin = printable = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "L":
            letters += 1
            if "LATIN" in unicodedata.name(ch, "") or ch.isascii():
                latin += 1
        if cat[0] in "LNPZS":
            printable += 1
    return letters, latin, printable


def check(question: str) -> GateResult | None:
    """A rule's answer for the question, or None to go on."""
    raw = question or ""
    if len(raw) > MAX_QUESTION_CHARS:
        return GateResult("too_long", MESSAGES["too_long"])
    visible = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C" or ch in "\t\n")
    text = " ".join(visible.split())
    if not text:
        return GateResult("empty", MESSAGES["empty"])
    letters, latin, printable = _letters(raw)
    body = raw.replace("\n", "").replace("\t", "")
    if printable < 0.8 * len(body) or (letters < 2 and not any(c.isdigit() for c in text)):
        return GateResult("unreadable", MESSAGES["unreadable"])
    if letters and latin < 0.6 * letters:
        return GateResult("language", MESSAGES["language"])
    words = re.findall(r"[^\W\d_]+", text.lower())
    foreign = sum(w in _FOREIGN for w in words)
    english = sum(w in _ENGLISH for w in words)
    if len(words) >= 3 and foreign >= 2 and foreign > 2 * english:
        return GateResult("language", MESSAGES["language"])
    return None
