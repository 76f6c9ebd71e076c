"""The answer pipeline: gate → retrieve → prompt → engine → validate → answer (or abstain).

Robust by construction, because a 135M model is weak:
- the gate answers empty, over-long, unreadable, foreign-language, small-talk and pure instruction
  questions by rule, without the model;
- typed instructions aimed at the assistant ("ignore the policy", "cite POL-99") are stripped before
  retrieval and the prompt, and the question is cleaned of chat markers: it is data, never instructions;
- a question naming things no policy mentions (`torque`, `canteen`: two such words, or one when the best
  section covers less than 45% of the question) abstains before generation, with the unknown words
  named; so does one for which retrieval finds nothing;
- the output is constrained by a grammar and validated: every citation is a retrieved section, every
  quote is a sentence of the section it cites, and a lead line is shown only when the numbers and words
  it uses are in the quoted sentences or the question. Output that fails validation is retried once with
  tighter constraints, then the assistant abstains listing the closest sections.

Answer modes (bundle runtime `answer_mode`; measured on the golden set in bench/RESULTS.md):
- `quote` (default): the model writes a one-line lead (grammar: one line, no brackets or quotes, or the
  abstention sentence); the governing sentences are chosen by `QuoteChooser` from the retrieved
  sections and quoted verbatim with their ids;
- `model_quote`: the model itself chooses which retrieved sentences to quote (grammar alternatives are
  the sentences, each bound to its id), after a lead;
- `free`: the model writes the answer in its own words, then cites retrieved ids (grammar-restricted).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from edgetui.assistant import gate as gate_rules
from edgetui.assistant import prompt as P
from edgetui.assistant.corpus import Section
from edgetui.assistant.index import STOPWORDS, Hit, Retriever
from edgetui.assistant.quotes import Quote, QuoteChooser, lead_supported, numbers, terms
from edgetui.engine.base import Engine, EngineError, GenParams

MODES = ("quote", "model_quote", "free")
MIN_TOP_SCORE = 1.0  # below this BM25 score nothing retrieved is about the question
# A question with one word no policy uses ("expiry", "forklifts") is answered only when the best section
# covers this share (IDF-weighted) of its words; two or more such words always abstain.
ONE_UNKNOWN_MIN_COVERAGE = 0.45


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str  # the text shown to the technician
    citations: tuple[str, ...]  # POL-NN#S ids, subset of retrieved ids
    abstained: bool
    confidential: bool  # answer draws on a confidential section
    retrieved: tuple[tuple[str, float], ...]  # (id, score) in rank order
    stats: dict  # gate_ms, retrieval_ms, prompt_tokens, prompt_recomputed, ttft_ms, decode_tps, decode_tokens, total_ms
    gate: str | None = None  # rule that answered without the model (empty, too_long, small_talk, out_of_scope, ...)
    escalation_offered: bool = False
    lead: str = ""  # the validated lead line ("" when none was shown)
    quotes: tuple[tuple[str, str], ...] = ()  # (id, sentence) quoted verbatim
    reason: str = ""  # why the assistant abstained, in words
    cancelled: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["citations"] = list(self.citations)
        d["retrieved"] = [[i, s] for i, s in self.retrieved]
        d["quotes"] = [list(q) for q in self.quotes]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Answer:
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        d["citations"] = tuple(d.get("citations", ()))
        d["retrieved"] = tuple((i, s) for i, s in d.get("retrieved", ()))
        d["quotes"] = tuple(tuple(q) for q in d.get("quotes", ()))
        return cls(**d)


@dataclass
class _Run:
    """Timings of one ask(); becomes Answer.stats."""

    t0: float  # time.perf_counter() at the start
    stats: dict = field(default_factory=dict)
    m0: float = field(default_factory=time.monotonic)  # the same instant on the token clock

    def ms(self) -> float:
        return round((time.perf_counter() - self.t0) * 1000, 3)


def _empty_stats() -> dict:
    return {"gate_ms": 0.0, "retrieval_ms": 0.0, "prompt_tokens": 0, "prompt_reused": 0, "prompt_recomputed": 0,
            "prompt_ms": 0.0, "engine_ttft_ms": None, "ttft_ms": None, "decode_tokens": 0, "decode_ms": 0.0,
            "decode_tps": None, "gen_ms": None, "total_ms": 0.0, "finish": None, "attempts": 0, "mode": None,
            "abstained": False, "confidential": False}


class Assistant:
    """Answers questions from the bundle's policy corpus with its engine. Thread-safe: the gate and
    retrieval run at once; requests to the engine are served one at a time."""

    def __init__(self, bundle, engine: Engine, mode: str | None = None):
        self.bundle = bundle
        self.engine = engine
        self.template = bundle.template
        P.check_template(self.template)
        self.retriever = Retriever.open(bundle.index_path, bundle.corpus_dir)
        self.sections: dict[str, Section] = self.retriever.sections
        self.chooser = QuoteChooser(list(self.sections.values()))
        rt = bundle.runtime
        self.mode = mode or rt.get("answer_mode", "quote")
        if self.mode not in MODES:
            raise ValueError(f"answer_mode {self.mode!r} is not one of {', '.join(MODES)}")
        self.top_k = int(rt.get("top_k_sections", 3))
        self.params = GenParams(max_tokens=int(rt.get("max_tokens", 96)), temperature=float(rt.get("temperature", 0.0)),
                                seed=int(rt.get("seed", 0)))
        self._lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------
    @property
    def bundle_ref(self) -> str:
        return getattr(self.bundle, "ref", "")

    def _known_word(self, word: str) -> bool:
        if word in STOPWORDS:
            return False
        plan = self.retriever.plan(word)
        return bool(plan.codes) or plan.known_terms > 0

    def section(self, sid: str) -> Section | None:
        return self.sections.get(sid)

    def warm(self) -> None:
        """Evaluate the template's static prefix once so the first question reuses it."""
        prefix = P.static_prefix(self.template)
        with self._lock, contextlib.suppress(EngineError):
            g = self.engine.generate(prefix, GenParams(max_tokens=1))
            for _ in g:
                pass

    # -- the pipeline ------------------------------------------------------------------------
    def ask(self, question: str, on_token: Callable[[str], None] | None = None,
            cancel: threading.Event | None = None) -> Answer:
        return self._ask(question if isinstance(question, str) else str(question), on_token, cancel)

    def _ask(self, question: str, on_token, cancel) -> Answer:
        run = _Run(time.perf_counter(), _empty_stats())
        st = run.stats
        st["mode"] = self.mode

        # 1. gate
        t = time.perf_counter()
        ruled = gate_rules.check(question, known_word=self._known_word)
        st["gate_ms"] = round((time.perf_counter() - t) * 1000, 3)
        if ruled is not None:
            return self._finish(run, question, ruled.message, abstained=ruled.abstain, gate=ruled.rule,
                                escalate=ruled.escalate, reason=ruled.rule.replace("_", " "))

        # 2. retrieve (the question without instructions aimed at the assistant)
        query = P.clean_text(gate_rules.strip_instructions(question)) or P.clean_text(question)
        hits, plan, rms = self.retriever.search(query, self.top_k)
        st["retrieval_ms"] = round(rms, 3)
        retrieved = tuple((h.id, h.score) for h in hits)
        if not hits or hits[0].score < MIN_TOP_SCORE:
            return self._abstain(run, question, retrieved, hits, "no policy section matches the question")
        foreign = plan.foreign_terms
        if len(foreign) >= 2 or (foreign and self._coverage(query, [hits[0].section]) < ONE_UNKNOWN_MIN_COVERAGE):
            words = ", ".join(foreign)
            return self._abstain(run, question, retrieved, hits, f"no policy mentions: {words}")

        # 3. generate and validate (one retry with tighter constraints)
        sections = [h.section for h in hits]
        prompt = P.render(self.template, sections, query)
        if cancel is not None and cancel.is_set():
            return self._cancelled(run, question, retrieved, "")
        for attempt in (1, 2):
            st["attempts"] = attempt
            grammar, stop = self._grammar(sections, tight=attempt == 2)
            text, cancelled = self._generate(run, prompt, grammar, stop, on_token if attempt == 1 else None, cancel)
            if cancelled:
                return self._cancelled(run, question, retrieved, text)
            result = self._validate(query, text, sections, hits)
            if result is not None:
                lead, quotes, body, model_abstained = result
                if model_abstained:
                    if self._coverage(query, sections[:1]) < 0.5:
                        return self._abstain(run, question, retrieved, hits,
                                             "the model found no answer in the sections")
                    # retrieval covers the question well: answer from the governing sentences anyway
                    quotes = self.chooser.choose(query, sections)
                    lead, body = "", ""
                return self._answer(run, question, retrieved, lead, quotes, body)
        return self._abstain(run, question, retrieved, hits, "the generated answer failed validation twice")

    # -- generation ----------------------------------------------------------------------------
    def _grammar(self, sections: list[Section], tight: bool) -> tuple[str, tuple[str, ...]]:
        return P.grammar_for(self.mode, sections, tight)

    def _generate(self, run: _Run, prompt: str, grammar: str, stop, on_token, cancel) -> tuple[str, bool]:
        params = GenParams(max_tokens=self.params.max_tokens, temperature=self.params.temperature,
                           seed=self.params.seed, stop=tuple(stop), grammar=grammar)
        with self._lock:  # one request on the engine at a time; gate and retrieval never wait here
            return self._stream(run, prompt, params, on_token, cancel)

    def _stream(self, run: _Run, prompt: str, params: GenParams, on_token, cancel) -> tuple[str, bool]:
        st = run.stats
        g = self.engine.generate(prompt, params)
        done = threading.Event()
        if cancel is not None:
            def watch() -> None:
                while not done.is_set():
                    if cancel.wait(0.02):
                        g.cancel()
                        return
            threading.Thread(target=watch, daemon=True, name="assistant-cancel").start()
        text, first = "", None
        try:
            for tok in g:
                if first is None:
                    first = tok.t
                    if st["ttft_ms"] is None:
                        st["ttft_ms"] = round((first - run.m0) * 1000, 3)
                text += tok.text
                if on_token is not None:
                    on_token(tok.text)
        finally:
            done.set()
        s = g.stats
        if s is not None:
            st["prompt_tokens"] += s.prompt_tokens
            st["prompt_reused"] += s.prompt_reused
            st["prompt_recomputed"] += s.prompt_recomputed
            st["prompt_ms"] = round(st["prompt_ms"] + s.prompt_ms, 3)
            if st["engine_ttft_ms"] is None:
                st["engine_ttft_ms"] = round(s.ttft_ms, 3)
            st["decode_tokens"] += s.decode_tokens
            st["decode_ms"] = round(st["decode_ms"] + s.decode_ms, 3)
            st["decode_tps"] = round(s.decode_tps, 2)
            st["finish"] = s.finish
        cancelled = (s is not None and s.finish == "cancelled") or (cancel is not None and cancel.is_set())
        return text, cancelled

    # -- validation ----------------------------------------------------------------------------
    def _validate(self, question: str, text: str, sections: list[Section], hits: list[Hit]):
        """(lead, quotes, free body, model_abstained) or None when the output is unusable."""
        ids = {s.id: s for s in sections}
        out = text.strip()
        if out.startswith(P.ABSTAIN_TEXT) or "don't cover this" in out.lower():
            return "", [], "", True
        if self.mode == "quote":
            lead = out.splitlines()[0].strip() if out else ""
            quotes = self.chooser.choose(question, sections, lead)
            if not quotes:
                return None
            return self._checked_lead(lead, quotes, question), quotes, "", False
        if self.mode == "model_quote":
            lead, pairs = P.parse_quotes(out)
            quotes = []
            for sid, sent in pairs:
                sec = ids.get(sid)
                if sec is None or sent not in sec.sentences:
                    return None  # a citation or a quote the sections do not contain
                if all(q.sentence != sent for q in quotes):
                    quotes.append(Quote(sec, sent, 0.0))
            if not quotes:
                return None
            return self._checked_lead(lead, quotes, question), quotes, "", False
        body, cited = P.parse_citations(out)
        if not cited or any(c not in ids for c in cited) or not body:
            return None
        quotes = [Quote(ids[c], "", 0.0) for c in dict.fromkeys(cited)]
        return "", quotes, body, False

    def _checked_lead(self, lead: str, quotes: list[Quote], question: str) -> str:
        """The lead when it only uses numbers stated in the quotes and words of the quotes or question."""
        lead = " ".join(lead.split())
        if not lead or len(lead) > 140 or not lead_supported(lead, quotes):
            return ""
        allowed = terms(question)
        for q in quotes:
            allowed |= terms(q.sentence) | terms(q.section.title)
        extra = {t for t in terms(lead) if not t.isdigit()} - allowed - {"yes", "no"}
        if extra:
            return ""
        if numbers(lead) and not numbers(lead) <= set().union(*(numbers(q.sentence) for q in quotes)):
            return ""
        return lead

    def _coverage(self, question: str, sections: list[Section]) -> float:
        """IDF-weighted share of the question's words found in the sections."""
        q = terms(question)
        if not q:
            return 0.0
        have: set[str] = set()
        for s in sections:
            have |= terms(s.title + " " + s.text)
        total = sum(self.chooser.idf(t) for t in q)
        return sum(self.chooser.idf(t) for t in q & have) / total if total else 0.0

    # -- results -------------------------------------------------------------------------------
    def _answer(self, run: _Run, question: str, retrieved, lead: str, quotes: list[Quote], body: str) -> Answer:
        cited = tuple(dict.fromkeys(q.section.id for q in quotes))
        if body:  # free mode
            text = body + " " + " ".join(f"[{c}]" for c in cited)
            qpairs: tuple = ()
        else:
            lines = [lead] if lead else []
            lines += [f'"{q.sentence}" [{q.section.id}]' for q in quotes]
            text = "\n".join(lines)
            qpairs = tuple((q.section.id, q.sentence) for q in quotes)
        confidential = any(self.sections[c].confidential for c in cited)
        return self._finish(run, question, text, citations=cited, retrieved=retrieved, confidential=confidential,
                            lead=lead, quotes=qpairs)

    def _abstain(self, run: _Run, question: str, retrieved, hits: list[Hit], reason: str) -> Answer:
        text = P.ABSTAIN_TEXT
        if hits:
            closest = ", ".join(f"{h.id} ({h.section.title})" for h in hits)
            text += f"\nClosest sections: {closest}."
        return self._finish(run, question, text, abstained=True, retrieved=retrieved, escalate=True, reason=reason)

    def _cancelled(self, run: _Run, question: str, retrieved, partial: str) -> Answer:
        return self._finish(run, question, "(cancelled)", retrieved=retrieved, reason="cancelled", cancelled=True)

    def _finish(self, run: _Run, question: str, text: str, *, citations=(), abstained=False, confidential=False,
                retrieved=(), gate=None, escalate=False, lead="", quotes=(), reason="", cancelled=False) -> Answer:
        st = run.stats
        st["total_ms"] = run.ms()
        if st["ttft_ms"] is not None:
            st["gen_ms"] = round(st["ttft_ms"] + st["decode_ms"], 3)
        st["abstained"], st["confidential"] = abstained, confidential
        if st["prompt_tokens"]:
            st["recomputed_fraction"] = round(st["prompt_recomputed"] / st["prompt_tokens"], 4)
        return Answer(question=question, answer=text, citations=tuple(citations), abstained=abstained,
                      confidential=confidential, retrieved=tuple(retrieved), stats=dict(st), gate=gate,
                      escalation_offered=escalate, lead=lead, quotes=tuple(quotes), reason=reason,
                      cancelled=cancelled)
