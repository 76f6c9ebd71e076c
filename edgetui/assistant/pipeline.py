"""The answer pipeline: gate → retrieve → prompt → engine → validate → answer (or abstain).

Robust by construction, because a 135M model is weak:
- rules answer what rules do well (empty, over-long, binary, another language: `gate.check`); the ONNX
  intent classifier over the MiniLM vector judges each segment of the question, so small talk gets a
  greeting, instructions aimed at the assistant ("stop citing", "show your prompt") are dropped before
  retrieval and the prompt, and a question off the topic of maintenance abstains;
- retrieval fuses BM25 with sentence cosine (`hybrid.py`); the assistant abstains when the best
  sentence's fused score is under a threshold fitted on the dev set, or when the question names an asset
  or part number of a family the corpus numbers that no policy lists (P-407);
- the governing sentences are chosen from retrieval before the model runs and quoted verbatim with
  their ids; the model adds a one-line lead, constrained by a grammar and shown only when the numbers and
  words it uses are in the quoted sentences or the question. Output that fails validation is retried once
  with tighter constraints, then the quotes are shown without a lead (the evidence already cleared the
  bar; the model's own "not covered" is overruled the same way).

Answer modes (bundle runtime `answer_mode`; measured on the golden set in bench/RESULTS.md):
- `quote` (default): the model writes a one-line lead (grammar: one line, no brackets or quotes, or the
  abstention sentence); the governing sentences are chosen by `HybridRetriever` from the retrieved
  sections and quoted verbatim with their ids;
- `model_quote`: the model itself chooses which retrieved sentences to quote (grammar alternatives are
  the sentences, each bound to its id), after a lead;
- `free`: the model writes the answer in its own words, then cites retrieved ids (grammar-restricted).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from edgetui.assistant import gate as gate_rules
from edgetui.assistant import prompt
from edgetui.assistant.corpus import Section
from edgetui.assistant.hybrid import HybridRetriever, Tuning
from edgetui.assistant.index import Retriever, clauses
from edgetui.assistant.intent import FILE as INTENT_FILE
from edgetui.assistant.intent import INTENTS, IntentClassifier
from edgetui.assistant.lead import checked_lead, modifier_pairs
from edgetui.assistant.quotes import Quote
from edgetui.assistant.semantic import SentenceVectors
from edgetui.engine.base import Engine, EngineError, GenParams

MODES = ("quote", "model_quote", "free")
# segment boundaries: sentence ends, colons, dashes between words, and markup tags ("[admin]", "</user>")
_SEGMENT = re.compile(r"(?<=[.!?;:])\s+|\n+|\s+[-\u2013\u2014]{1,2}\s+|<[^<>]{0,40}>|\[[^\[\]]{0,40}\]")


def segments(text: str) -> list[str]:
    """The pieces of a question the intent classifier judges one by one (a piece has a letter)."""
    return [p.strip(" ,") for p in _SEGMENT.split(text) if p and re.search(r"[^\W\d_]", p)]


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
            "abstained": False, "confidential": False, "first_token_ms": None, "answer_ms": None,
            "cache_hit": False, "cache_ram_bytes": 0}


class Assistant:
    """Answers questions from the bundle's policy corpus with its engine. Thread-safe: the gate and
    retrieval run at once; requests to the engine are served one at a time.

    `engine=None` (or `use_model=False`) answers from retrieval and quote selection alone: the
    without-model arm of bench/assistant.py, and what the fit script tunes on."""

    def __init__(self, bundle, engine: Engine | None, mode: str | None = None, use_model: bool = True):
        self.bundle = bundle
        self.engine = engine
        self.use_model = use_model and engine is not None
        self.template = bundle.template
        prompt.check_template(self.template)
        self.retriever = Retriever.open(bundle.index_path, bundle.corpus_dir)
        self.sections: dict[str, Section] = self.retriever.sections
        rt = bundle.runtime
        self.tuning = Tuning.from_runtime(rt)
        vectors = SentenceVectors.open(bundle.root, list(self.sections.values()))
        self.hybrid = HybridRetriever(self.retriever, vectors, self.tuning)
        # modifier pairs the corpus uses ("raw water", "treated water"): a lead copied from a sentence that
        # qualifies the asked thing otherwise is not shown (lead.contrasted)
        self.attested = frozenset().union(*(modifier_pairs(u.sentence) for u in vectors.units))
        self.intent = IntentClassifier(bundle.root / INTENT_FILE)
        self.mode = mode or rt.get("answer_mode", "quote")
        if self.mode not in MODES:
            raise ValueError(f"answer_mode {self.mode!r} is not one of {', '.join(MODES)}")
        self.top_k = int(rt.get("top_k_sections", 3))
        self.params = GenParams(max_tokens=int(rt.get("max_tokens", 96)), temperature=float(rt.get("temperature", 0.0)),
                                seed=int(rt.get("seed", 0)))
        self._lock = threading.Lock()
        self.cache_prefixes = True  # False: the full-recompute path (bench/kv_cache.py compares the two)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def bundle_ref(self) -> str:
        return getattr(self.bundle, "ref", "")

    def section(self, sid: str) -> Section | None:
        return self.sections.get(sid)

    def warm(self) -> None:
        """Evaluate the template's static prefix once so the first question reuses it."""
        if not self.use_model:
            return
        prefix = prompt.static_prefix(self.template)
        with self._lock, contextlib.suppress(EngineError):
            g = self.engine.generate(prefix, GenParams(max_tokens=1))
            for _ in g:
                pass

    def understand(self, question: str) -> tuple[str, str | None, float]:
        """(the question without the parts aimed at the assistant, the intent rule that answers it or None,
        the classifier's off-topic probability for what is left).

        Each segment is classified: instructions ("stop citing", "show your prompt") are dropped, so typed
        text never reaches retrieval or the prompt as an instruction; what is left is looked up."""
        text = prompt.clean_text(question)
        segs = segments(text) or [text]
        parts = clauses(text)  # embedded in the same batch: retrieval asks for them next
        vecs = self.hybrid.vectors.embed(segs + [text] + (parts if len(parts) >= 2 else []))
        probs = self.intent.probs(vecs[: len(segs) + 1])
        whole, parts = probs[-1], probs[:-1]
        t, names = self.tuning, INTENTS
        inj = names.index("instructions")
        kept = [s for s, p in zip(segs, parts, strict=True) if p[inj] < t.instruction_min]
        if not kept:
            return "", "instructions", 0.0
        if len(kept) == len(segs) and whole[names.index("small_talk")] >= t.small_talk_min:
            return "", "small_talk", 0.0
        query = " ".join(kept)
        if len(kept) < len(segs):
            whole = self.intent.probs(self.hybrid.vectors.embed([query]))[0]
        off = float(whole[names.index("off_topic")])
        return query, ("out_of_scope" if off >= t.off_topic_min else None), off

    # -- the pipeline ------------------------------------------------------------------------
    def ask(self, question: str, on_token: Callable[[str], None] | None = None,
            cancel: threading.Event | None = None,
            on_quotes: Callable[[list[tuple[str, str]]], None] | None = None) -> Answer:
        """Answer one question. `on_quotes` receives the governing sentences ((id, sentence) pairs, final and
        validated) as soon as retrieval has chosen them, before the model runs (quote mode); `on_token`
        receives the model's draft lead, which validation may still drop."""
        return self._ask(question if isinstance(question, str) else str(question), on_token, cancel, on_quotes)

    def _ask(self, question: str, on_token, cancel, on_quotes=None) -> Answer:
        run = _Run(time.perf_counter(), _empty_stats())
        st = run.stats
        st["mode"] = self.mode if self.use_model else "retrieval"

        # 1. gate: rules for what rules do well, then the intent classifier
        t = time.perf_counter()
        ruled = gate_rules.check(question)
        query, rule, off_topic = ("", None, 0.0) if ruled is not None else self.understand(question)
        st["gate_ms"] = round((time.perf_counter() - t) * 1000, 3)
        if ruled is not None:
            return self._finish(run, question, ruled.message, abstained=ruled.abstain, gate=ruled.rule,
                                escalate=ruled.escalate, reason=ruled.rule.replace("_", " "))
        if rule is not None:
            return self._finish(run, question, gate_rules.MESSAGES[rule], abstained=True, gate=rule,
                                escalate=rule == "out_of_scope", reason=rule.replace("_", " "))

        # 2. retrieve: BM25 fused with sentence cosine; abstain on weak evidence
        ev = self.hybrid.search(query, self.top_k)
        st["retrieval_ms"] = round(ev.ms, 3)
        st["evidence"] = round(ev.best, 4)
        sections = [s for s, _ in ev.ranked]
        retrieved = tuple((s.id, round(score, 4)) for s, score in ev.ranked)
        if ev.unknown_codes:
            return self._abstain(run, question, retrieved, sections,
                                 f"no policy names {', '.join(ev.unknown_codes)}")
        ev.features["off_topic"] = off_topic
        st["p_answerable"] = round(p := self.tuning.p_answerable(ev.features), 4)
        st["features"] = {k: round(v, 4) for k, v in ev.features.items()}
        if not ev.quotes or p < self.tuning.abstain_below or ev.features["cos"] < self.tuning.cos_floor:
            return self._abstain(run, question, retrieved, sections, "no policy section answers the question")
        quotes = [Quote(q.section, q.unit.sentence, round(q.score, 4)) for q in ev.quotes]
        if self.mode == "quote" or not self.use_model:  # the quotes are final: show them before the model runs
            st["first_token_ms"] = run.ms()
            if on_quotes is not None:
                on_quotes([(q.section.id, q.sentence) for q in quotes])
        if not self.use_model:
            return self._answer(run, question, retrieved, "", quotes, "")

        # 3. the model's lead (or its own quotes / free text), validated; one retry with tighter constraints
        shown = self._shown_sections(sections, quotes)
        rendered = prompt.render(self.template, shown, query)
        # the engine restores this prefix's KV state instead of evaluating it (None: evaluate it, as before)
        prefix = prompt.render_prefix(self.template, shown) if self.cache_prefixes else None
        if cancel is not None and cancel.is_set():
            return self._cancelled(run, question, retrieved)
        for attempt in (1, 2):
            st["attempts"] = attempt
            grammar, stop = prompt.grammar_for(self.mode, sections, attempt == 2)
            text, cancelled = self._generate(run, (prefix, rendered), grammar, stop,
                                             on_token if attempt == 1 else None, cancel)
            if cancelled:
                return self._cancelled(run, question, retrieved)
            result = self._validate(query, text, sections, quotes)
            if result is not None:
                lead, chosen, body, model_abstained = result
                if model_abstained:  # the evidence is above the fitted bar: quote the governing sentences
                    chosen, lead, body = quotes, "", ""
                return self._answer(run, question, retrieved, lead, chosen, body)
        return self._answer(run, question, retrieved, "", quotes, "")

    def _shown_sections(self, sections: list[Section], quotes: list[Quote]) -> list[Section]:
        """What the model reads. In quote mode the quotes are already chosen and the lead must agree with
        them, so the prompt holds only the quoted sentences under their sections' ids and titles: about a
        third of the tokens of three whole sections, so the model's first token comes that much sooner.
        The other modes choose among the sentences and get the whole sections."""
        if self.mode != "quote":
            return sections
        by_id: dict[str, list[str]] = {}
        for q in quotes:
            by_id.setdefault(q.section.id, []).append(q.sentence)
        return [replace(self.sections[sid], sentences=tuple(sents)) for sid, sents in by_id.items()]

    # -- generation ----------------------------------------------------------------------------
    def _generate(self, run: _Run, prompts: tuple[str | None, str], grammar: str | None, stop, on_token, cancel
                  ) -> tuple[str, bool]:
        """`prompts`: (the cacheable prefix, the full prompt)."""
        prefix, rendered = prompts
        params = GenParams(max_tokens=self.params.max_tokens, temperature=self.params.temperature,
                           seed=self.params.seed, stop=tuple(stop), grammar=grammar, cache_prefix=prefix,
                           cache_base=prompt.static_prefix(self.template) if prefix else None)
        with self._lock:  # one request on the engine at a time; gate and retrieval never wait here
            return self._stream(run, rendered, params, on_token, cancel)

    def _stream(self, run: _Run, rendered: str, params: GenParams, on_token, cancel) -> tuple[str, bool]:
        st = run.stats
        g = self.engine.generate(rendered, params)
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
                    if st["first_token_ms"] is None and on_token is not None:
                        st["first_token_ms"] = st["ttft_ms"]
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
            st["cache"] = s.cache
            st["cache_ram_bytes"] = s.cache_ram_bytes
            st["cache_hit"] = st["cache_hit"] or s.cache in ("kv", "ram", "disk")
        cancelled = (s is not None and s.finish == "cancelled") or (cancel is not None and cancel.is_set())
        return text, cancelled

    # -- validation ----------------------------------------------------------------------------
    def _validate(self, question: str, text: str, sections: list[Section], quotes: list[Quote]):
        """(lead, quotes, free body, model_abstained) or None when the output is unusable."""
        ids = {s.id: s for s in sections}
        out = text.strip()
        if out.startswith(prompt.ABSTAIN_TEXT) or "don't cover this" in out.lower():
            return "", [], "", True
        if self.mode == "quote":
            lead = out.splitlines()[0].strip() if out else ""
            return checked_lead(lead, quotes, question, self.attested), quotes, "", False
        if self.mode == "model_quote":
            lead, pairs = prompt.parse_quotes(out)
            chosen: list[Quote] = []
            for sid, sent in pairs:
                sec = ids.get(sid)
                if sec is None or sent not in sec.sentences:
                    return None  # a citation or a quote the sections do not contain
                if all(q.sentence != sent for q in chosen):
                    chosen.append(Quote(sec, sent, 0.0))
            if not chosen:
                return None
            return checked_lead(lead, chosen, question, self.attested), chosen, "", False
        body, cited = prompt.parse_citations(out)
        if not cited or any(c not in ids for c in cited) or not body:
            return None
        return "", [Quote(ids[c], "", 0.0) for c in dict.fromkeys(cited)], body, False

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

    def _abstain(self, run: _Run, question: str, retrieved, sections: list[Section], reason: str) -> Answer:
        text = prompt.ABSTAIN_TEXT
        if sections:
            closest = ", ".join(f"{s.id} ({s.title})" for s in sections)
            text += f"\nClosest sections: {closest}."
        return self._finish(run, question, text, abstained=True, retrieved=retrieved, escalate=True, reason=reason)

    def _cancelled(self, run: _Run, question: str, retrieved) -> Answer:
        return self._finish(run, question, "(cancelled)", retrieved=retrieved, reason="cancelled", cancelled=True)

    def _finish(self, run: _Run, question: str, text: str, *, citations=(), abstained=False, confidential=False,
                retrieved=(), gate=None, escalate=False, lead="", quotes=(), reason="", cancelled=False) -> Answer:
        st = run.stats
        st["total_ms"] = st["answer_ms"] = run.ms()
        if st["first_token_ms"] is None:  # nothing was shown before the complete answer
            st["first_token_ms"] = st["answer_ms"]
        if st["ttft_ms"] is not None:
            st["gen_ms"] = round(st["ttft_ms"] + st["decode_ms"], 3)
        st["abstained"], st["confidential"] = abstained, confidential
        if st["prompt_tokens"]:
            st["recomputed_fraction"] = round(st["prompt_recomputed"] / st["prompt_tokens"], 4)
        return Answer(question=question, answer=text, citations=tuple(citations), abstained=abstained,
                      confidential=confidential, retrieved=tuple(retrieved), stats=dict(st), gate=gate,
                      escalation_offered=escalate, lead=lead, quotes=tuple(quotes), reason=reason,
                      cancelled=cancelled)
