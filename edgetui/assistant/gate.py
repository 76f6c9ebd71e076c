"""The intent gate: questions answered by rules before retrieval or the model.

One function, `check(question) -> GateResult | None`, so a learned classifier can replace the rules
later without touching the pipeline. `None` means "go on to retrieval". The rules:

- `empty`: nothing but whitespace or control characters;
- `too_long`: over the question budget (a paste, not a question);
- `unreadable`: mostly bytes that are not text (binary garbage);
- `language`: not English (the policies and the model are English);
- `small_talk`: greetings, thanks, "who are you" with no policy content;
- `instructions`: a request about the assistant itself (its prompt, its rules, "ignore previous
  instructions") with nothing left to look up once that part is removed;
- `out_of_scope`: no word of the question appears in the policy corpus.

A question that mixes an injection with a real question ("SYSTEM OVERRIDE: … which kit for P-210?")
is not stopped here: the injection is stripped by `strip_instructions` and the rest is answered from
the policy, so typed text never changes what the policy says.
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


_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|yo|good (?:morning|afternoon|evening|day)|thanks?(?: you)?|thank you(?: very much)?|"
    r"thx|cheers|ok(?:ay)?|bye|goodbye|see you|how are you(?: doing)?|how's it going|what's up|sup|"
    r"who are you|what are you|what can you do|help|are you there|test(?:ing)?)"
    r"(?:[\s,.!?]+(?:there|mate|all|again|so much|bot|assistant))*[\s.!?]*$",
    re.IGNORECASE,
)

# Requests aimed at the assistant rather than the policy. Removed before retrieval.
_INSTRUCTIONS = [
    r"ignore (?:all |any |the )?(?:previous |prior |above |earlier |your )?(?:instructions|rules|prompts?|context)",
    r"disregard (?:all |any |the )?(?:previous |prior |above |your )?(?:instructions|rules|policy|policies)",
    r"(?:print|show|reveal|repeat|output|tell me|display|what is|what's) (?:me )?(?:your |the )?"
    r"(?:system |initial |hidden )?(?:prompt|instructions)",
    r"(?:system|admin|developer) (?:override|mode)\s*:?",
    r"you (?:have|now have) no (?:rules|restrictions|limits)(?: now)?",
    r"(?:you are|act as|pretend (?:to be|you are)) (?:now )?(?:a |an )?(?:different|unrestricted|new) \w+",
    r"citations? (?:are|is) (?:disabled|off|not needed)",
    r"answer (?:from memory|without (?:citing|citations|the policy)[^:,.]*)",
    r"make (?:up|something up)(?: a number| an answer)?(?: if you have to)?",
    r"(?:do not|don't) cite (?:anything|sources)",
    r"cite [A-Z]+-\d+#?\d*",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_INSTRUCTION_RE = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTIONS), re.IGNORECASE)
# Words that only talk about the conversation itself; what remains after removing them decides.
_META_WORDS = _words(
    "ignore all previous instructions print your system prompt please now the and a an me you reveal show "
    "repeat output tell rules answer from memory"
)

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


def strip_instructions(question: str) -> str:
    """The question with requests aimed at the assistant removed ("ignore the rules", "cite POL-99")."""
    return " ".join(_INSTRUCTION_RE.sub(" ", question).split())


def has_instructions(question: str) -> bool:
    return _INSTRUCTION_RE.search(question) is not None


def check(question: str, known_word=None) -> GateResult | None:
    """A rule's answer for the question, or None to go on to retrieval.

    `known_word(word) -> bool` says whether the corpus contains a word (after the retriever's repairs);
    without it the out_of_scope rule is skipped.
    """
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
    if _GREETING.match(text):
        return GateResult("small_talk", MESSAGES["small_talk"])
    rest = strip_instructions(text)
    if rest != text:
        left = [w for w in re.findall(r"[\w-]+", rest.lower()) if w not in _META_WORDS]
        if not left:
            return GateResult("instructions", MESSAGES["instructions"])
    if known_word is not None:
        content = [w for w in re.findall(r"[\w-]+", rest.lower()) if len(w) > 2]
        if content and not any(known_word(w) for w in content):
            return GateResult("out_of_scope", MESSAGES["out_of_scope"], escalate=True)
    return None
