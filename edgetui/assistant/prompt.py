"""The production prompt and the output grammars.

The template lives in the bundle (`template.txt`, hashed in the manifest) and has two placeholders:
`{sections}` (the retrieved sections, each `[POL-NN#S] Title` then its text) and `{question}`. Everything
before the first placeholder is the same for every question, so the engine's prefix reuse keeps it in
the KV cache; the template must therefore keep the system prompt (and its worked example) first.

The question is data: control characters and chat-format markers are removed before it is placed in
the template, so typed text can never open a new system or assistant turn.

Grammars (llama.cpp GBNF) make the model's output checkable by construction (`grammar_for(mode, …)`
gives the one production uses):
- `lead` (production, mode `quote`): one short line, no brackets or quotes, or the abstention
  sentence; the quoted sentences and their ids are then chosen from the retrieved sections, so no
  citation can name a section that was not retrieved;
- `quote`: a short lead line, then one or two sentences copied verbatim from the retrieved sections,
  each followed by its own section id; or the abstention sentence. Citations can only be retrieved ids
  and every quoted sentence exists in the section it cites.
- `free`: free text, then one or more citations chosen among the retrieved ids (the baseline the
  quote mode is measured against).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from edgetui.assistant.corpus import Section

ABSTAIN_TEXT = "The policy documents don't cover this."
PLACEHOLDERS = ("{sections}", "{question}")
_SPECIAL = re.compile(r"<\|[^<>|]{0,40}\|>|</?s>|<\|?(?:im_start|im_end|endoftext)\|?>", re.IGNORECASE)


class TemplateError(Exception):
    """A bundle prompt template that cannot be used; the message names the fix."""


def _normalized(template: str) -> str:
    """Bundles built before the assistant used `{context}` for the sections."""
    if "{sections}" not in template and "{context}" in template:
        return template.replace("{context}", "{sections}", 1)
    return template


def check_template(template: str) -> None:
    template = _normalized(template)
    missing = [p for p in PLACEHOLDERS if p not in template]
    if missing:
        raise TemplateError(f"prompt template lacks {', '.join(missing)}: add the placeholders to template.txt")
    if template.index("{sections}") > template.index("{question}"):
        raise TemplateError("prompt template must place {sections} before {question} (prefix reuse)")


def static_prefix(template: str) -> str:
    """The part of the prompt shared by every question (what prefix reuse keeps in the KV cache)."""
    template = _normalized(template)
    return template[: min(template.index(p) for p in PLACEHOLDERS)]


def clean_text(text: str) -> str:
    """NFKC, control characters and chat markers removed, whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = _SPECIAL.sub(" ", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


def format_sections(sections: Iterable[Section]) -> str:
    return "\n\n".join(f"[{s.id}] {s.title}\n{' '.join(s.sentences)}" for s in sections)


def render(template: str, sections: Iterable[Section], question: str) -> str:
    """The full prompt: the template with the sections and the (cleaned) question filled in."""
    check_template(template)
    template = _normalized(template)
    head, rest = template.split("{sections}", 1)
    mid, tail = rest.split("{question}", 1)
    return head + format_sections(sections) + mid + clean_text(question) + tail


def render_prefix(template: str, sections: Iterable[Section]) -> str:
    """The prompt up to the question (instructions and policy text): the part whose KV state the engine
    caches (`GenParams.cache_prefix`); it ends before the space that joins the question's first word."""
    template = _normalized(template)
    head, rest = template.split("{sections}", 1)
    mid = rest.split("{question}", 1)[0]
    return (head + format_sections(sections) + mid).rstrip(" ")


# -- grammars --------------------------------------------------------------------------------------
def gbnf_literal(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{out}"'


def quote_units(sections: Iterable[Section]) -> list[tuple[str, str]]:
    """(section id, sentence) pairs that may be quoted, in section order; each pair appears once."""
    seen: set[str] = set()
    out = []
    for s in sections:
        for sent in s.sentences:
            if sent not in seen:
                seen.add(sent)
                out.append((s.id, sent))
    return out


def quote_grammar(sections: list[Section], *, lead: bool = True, max_quotes: int = 2, abstain: bool = True,
                  lead_chars: int = 90) -> str:
    """Lead line (optional) + 1..max_quotes verbatim quotes with their ids, or the abstention sentence."""
    units = quote_units(sections)
    if not units:
        return f"root ::= {gbnf_literal(ABSTAIN_TEXT)}\n"
    alts = " | ".join(gbnf_literal(f'"{sent}" [{sid}]') for sid, sent in units)
    more = "".join(' ( " " quote' for _ in range(max_quotes - 1)) + " )?" * (max_quotes - 1)
    body = f"quote{more}"
    answer = f'lead "\\n" {body}' if lead else body
    rules = [f"root ::= {answer}" + (f" | {gbnf_literal(ABSTAIN_TEXT)}" if abstain else ""),
             f"quote ::= {alts}"]
    if lead:
        rules.append(f'lead ::= [^\\n"\\[\\]] [^\\n"\\[\\]]{{0,{lead_chars}}}')
    return "\n".join(rules) + "\n"


def lead_grammar(lead_chars: int = 110) -> str:
    """The production (`quote` mode) output: one short line without brackets or quotes, or the abstention
    sentence. Generation stops at the newline; the quoted sentences are chosen by `HybridRetriever`."""
    return (f"root ::= lead \"\\n\" | {gbnf_literal(ABSTAIN_TEXT)}\n"
            f'lead ::= [^\\n"\\[\\]] [^\\n"\\[\\]]{{0,{lead_chars}}}\n')


def grammar_for(mode: str, sections: list[Section], tight: bool = False) -> tuple[str, tuple[str, ...]]:
    """(GBNF, stop strings) of an answer mode; `tight` is the retry after a failed validation."""
    lead_chars = 60 if tight else 110
    if mode == "quote":
        return lead_grammar(lead_chars), ("\n",)
    if mode == "model_quote":
        return quote_grammar(sections, lead=not tight, max_quotes=1 if tight else 2, abstain=not tight,
                             lead_chars=lead_chars), ()
    if mode == "free":
        return free_grammar(sections, max_chars=160 if tight else 300, abstain=not tight), ()
    raise ValueError(f"answer mode {mode!r} is not one of quote, model_quote, free")


def free_grammar(sections: list[Section], *, max_chars: int = 300, abstain: bool = True) -> str:
    """Free text (one paragraph, no brackets) then 1..3 citations among the retrieved ids."""
    ids = " | ".join(gbnf_literal(s.id) for s in sections) or gbnf_literal("none")
    rules = ['root ::= text " [" cid "]" ( " [" cid "]" )? ( " [" cid "]" )?'
             + (f" | {gbnf_literal(ABSTAIN_TEXT)}" if abstain else ""),
             f'text ::= [^\\n\\[\\]] [^\\n\\[\\]]{{0,{max_chars}}}',
             f"cid ::= {ids}"]
    return "\n".join(rules) + "\n"


_QUOTE = re.compile(r'"(?P<q>[^"\n]+)"\s*\[(?P<id>[A-Z]+-\d+#\d+)\]')
_CITE = re.compile(r"\[(?P<id>[A-Z]+-\d+#\d+)\]")


def parse_quotes(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(lead, [(id, quoted sentence)]) from a quote-mode output."""
    quotes = [(m["id"], m["q"]) for m in _QUOTE.finditer(text)]
    first = _QUOTE.search(text)
    lead = text[: first.start()] if first else text
    return lead.strip(), quotes


def parse_citations(text: str) -> tuple[str, list[str]]:
    """(text without the trailing citations, [ids]) from a free-mode output."""
    ids = [m["id"] for m in _CITE.finditer(text)]
    return _CITE.sub("", text).strip(), ids
