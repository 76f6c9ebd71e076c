"""Capture prompts generated from the corpus: question templates per section, paraphrases, messy
variants and out-of-scope questions (for abstention), each rendered through the production template.

When the assistant part is installed, a prompt is exactly what production builds: its retriever picks
the sections, its `render` fills the template, and its quote grammar constrains the teacher's answer
(the grammar travels with the prompt into the capture). Without it, a word-overlap retriever and the
`{sections}`/`{context}` placeholders stand in, unconstrained.

A guard refuses any question that matches a golden-set question (normalised text equal, one inside
the other, or word-set Jaccard ≥ 0.6): the golden set must never leak into training data.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from edgetui.assistant.corpus import Section, load_corpus

SECTION_TEMPLATES = [
    "What does {doc_id} say about {title_l}?",
    "What is the rule on {title_l} in the {doc_title} policy?",
    "Can you summarise the {title_l} section of {doc_id}?",
    "Under the {doc_title} policy, what are the requirements for {title_l}?",
]
SENTENCE_TEMPLATES = [
    "What does the policy say about {topic}?",
    "I need the rule for {topic}.",
    "Quick question: {topic}, what applies?",
    "According to {doc_id}, what is required regarding {topic}?",
]
MESSY = [
    lambda q: q.lower().rstrip("?"),
    lambda q: "pls " + q.lower().replace("what is", "whats").replace("what does", "wat does"),
    lambda q: q.replace("the ", "teh ", 1) + "??",
    lambda q: "hey, " + q[0].lower() + q[1:] + " thx",
]
# Off-topic questions for the capture's abstention examples: written for this list, none about a topic
# a golden set asks (the guard below also refuses any question close to a golden one).
OUT_OF_SCOPE = [
    "What is the weather forecast for tomorrow?", "Who won the football match last night?",
    "Can you recommend a good pizza place near the plant?", "How do I file my travel expenses?",
    "Write me a poem about pumps.", "What is the capital of Australia?", "Which laptop should I buy for home?",
    "How do I book a meeting room?", "What is the stock price of Meridian Utilities?",
    "Translate 'valve' into German.", "What is the dress code for the summer barbecue?",
    "How do I change my pension contributions?", "Where is the nearest cash machine?",
    "How many calories are in a sausage roll?", "Can you tell me a joke about engineers?",
    "What films are on at the cinema tonight?",
]
STOP = frozenset(re.findall(r"\w+", "a an the of to in on for and or is are be at by with from that this it as "
                                     "any all must not no under within after before when if"))


@dataclass(frozen=True)
class CapturePrompt:
    id: str
    kind: str  # section | fact | sentence | paraphrase | messy | out_of_scope
    question: str
    sections: tuple[str, ...]  # citation ids put into the context
    prompt: str
    grammar: str | None = None  # GBNF the production pipeline would constrain the answer with

    def to_dict(self) -> dict:
        return asdict(self)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[.-][a-z0-9]+)*", text.lower())


class GoldenGuard:
    """Refuses questions that match a golden-set question."""

    def __init__(self, golden_path: Path | None):
        self.golden: list[tuple[str, set[str]]] = []
        if golden_path and Path(golden_path).is_file():
            for line in Path(golden_path).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    q = json.loads(line)["question"]
                    self.golden.append((" ".join(_words(q)), set(_words(q)) - STOP))

    def refuses(self, question: str) -> bool:
        norm, ws = " ".join(_words(question)), set(_words(question)) - STOP
        for g_norm, g_ws in self.golden:
            if norm == g_norm or (len(g_norm) > 20 and (g_norm in norm or norm in g_norm)):
                return True
            if ws and g_ws and len(ws & g_ws) / len(ws | g_ws) >= 0.6:
                return True
        return False


UNITS = r"hours?|minutes?|days?|months?|years?|ppm|mm/s|kW|°C|%|metres?|people"
QUANTITY_RE = re.compile(rf"\b(\d+(?:\.\d+)?)\s*({UNITS})\b")
CODE_RE = re.compile(r"\b[A-Z]{1,3}-\d{1,4}\b")


def _fact_question(sentence: str) -> str | None:
    """Turn a policy sentence into a cloze question on its first quantity or code."""
    s = sentence.strip().rstrip(".")
    if m := QUANTITY_RE.search(s):
        return f"{s[:m.start()]}how many {m.group(2)}{s[m.end():]}?"
    if (m := CODE_RE.search(s)) and m.start() > 0:
        return f"{s[:m.start()]}which one{s[m.end():]}?"
    return None


def _topic(sentence: str) -> str | None:
    words = sentence.strip().rstrip(".").split()
    if len(words) < 5:
        return None
    return " ".join(words[:10]).lower().rstrip(",:;")


def _retrieve(question: str, target: Section | None, sections: list[Section], k: int) -> list[Section]:
    """Context like production's: the governing section (when there is one) and the best word-overlap matches."""
    qw = set(_words(question)) - STOP
    ranked = sorted(sections, key=lambda s: -len(qw & set(_words(s.title + " " + s.text))))
    chosen = [target] if target else []
    for s in ranked:
        if len(chosen) >= k:
            break
        if s not in chosen:
            chosen.append(s)
    return chosen


def format_context(sections: list[Section]) -> str:
    return "\n\n".join(f"[{s.id}] {s.doc_title}: {s.title}\n{s.text}" for s in sections)


def render(template: str, context: str, question: str) -> str:
    return template.replace("{sections}", context).replace("{context}", context).replace("{question}", question)


def production_prompter(corpus_dir: Path, template: str, k: int):
    """`prompt_for(question, target_section) -> (prompt, cited ids, grammar)` the way production builds it."""
    try:
        from edgetui.assistant.index import Retriever
        from edgetui.assistant.prompt import quote_grammar
        from edgetui.assistant.prompt import render as assistant_render
    except ImportError:
        return None
    retriever = Retriever.in_memory(Path(corpus_dir))

    def prompt_for(question: str, _target: Section | None):
        hits, _, _ = retriever.search(question, k)
        secs = [h.section for h in hits]
        return assistant_render(template, secs, question), tuple(s.id for s in secs), quote_grammar(secs)

    return prompt_for


def generate(corpus_dir: Path, template: str, golden_path: Path | None, limit: int | None = None,
             seed: int = 0, k_sections: int = 3) -> tuple[list[CapturePrompt], int]:
    """All capture prompts (shuffled deterministically, cut to `limit`) and how many the guard refused."""
    rng = random.Random(seed)
    sections = load_corpus(corpus_dir)
    guard = GoldenGuard(golden_path)
    raw: list[tuple[str, str, Section | None]] = []
    for s in sections:
        fields = {"doc_id": s.doc_id, "doc_title": s.doc_title, "title_l": s.title.lower()}
        raw += [("section", t.format(**fields), s) for t in SECTION_TEMPLATES]
        sentences = [x for x in re.split(r"(?<=[.!?])\s+|\n+", s.text) if x.strip().lstrip("- ")]
        for sent in sentences:
            if fq := _fact_question(sent.lstrip("- ")):
                raw.append(("fact", fq, s))
            topic = _topic(sent.lstrip("- "))
            if topic:
                t = rng.choice(SENTENCE_TEMPLATES)
                raw.append(("sentence", t.format(topic=topic, doc_id=s.doc_id), s))
    raw += [("paraphrase", rng.choice(["Could you tell me: ", "I was wondering, ", "On site now. "]) + q[0].lower()
             + q[1:], s) for _, q, s in rng.sample(raw, min(len(raw), len(raw) // 4))]
    raw += [("messy", rng.choice(MESSY)(q), s) for _, q, s in rng.sample(raw, min(len(raw), len(raw) // 4))]
    raw += [("out_of_scope", q, None) for q in OUT_OF_SCOPE]
    rng.shuffle(raw)
    production = production_prompter(corpus_dir, template, k_sections)

    def fallback(q: str, target: Section | None):
        ctx = _retrieve(q, target, sections, k_sections)
        return render(template, format_context(ctx), q), tuple(s.id for s in ctx), None

    prompt_for = production or fallback
    prompts, refused, seen = [], 0, set()
    for kind, q, target in raw:
        if q in seen:
            continue
        seen.add(q)
        if guard.refuses(q):
            refused += 1
            continue
        pid = hashlib.sha256(q.encode()).hexdigest()[:12]
        prompt, cited, grammar = prompt_for(q, target)
        prompts.append(CapturePrompt(pid, kind, q, cited, prompt, grammar))
        if limit and len(prompts) >= limit:
            break
    return prompts, refused
