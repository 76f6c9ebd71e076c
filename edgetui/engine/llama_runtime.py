"""llama.cpp (GGUF) runtime. Runs inside the engine's child process only: native code stays there.

Prefix reuse comes from `Llama.generate`, which keeps the KV cache of the longest common prefix
with the previous prompt; we count the reused tokens the same way so stats report them.

Greedy decoding under a grammar goes through `GreedyGrammarSampler` (argmax first, the grammar's
full-vocabulary pass only when the argmax is not allowed): same tokens as llama.cpp's chain, without
testing all 49k SmolLM2 tokens against the grammar on every step, which halved decode speed.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgetui.engine.base import GenParams, ModelFileError, PromptTooLong

GGUF_MAGIC = b"GGUF"


def check_gguf(path: str | os.PathLike) -> None:
    """Cheap checks in the parent before a child tries to load the file."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file {p} is missing: reinstall or re-activate the bundle")
    with p.open("rb") as f:
        head = f.read(8)
    if head[:4] != GGUF_MAGIC:
        raise ModelFileError(f"model file {p} is not a GGUF file (bad magic): replace it with a valid model")
    if p.stat().st_size < 1024:
        raise ModelFileError(f"model file {p} is truncated ({p.stat().st_size} bytes): reinstall the bundle")


class LlamaRuntime:
    """One loaded GGUF model; `stream` yields ('tok', text, id, t) then ('done', stats)."""

    name = "llama.cpp"

    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: int | None = None, n_batch: int = 512):
        check_gguf(model_path)
        import llama_cpp

        threads = n_threads or max(1, os.cpu_count() or 1)
        try:
            self.llm = _edge_llama_class()(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(
                f"model file {model_path} failed to load ({e}): it is truncated or corrupt; reinstall the bundle"
            ) from e
        self.n_ctx = self.llm.n_ctx()
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._eog = {t for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        self._grammars: dict[str, object] = {}

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _grammar(self, text: str | None):
        if text is None:
            return None
        if text not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[text]

    def _reused(self, tokens: list[int]) -> int:
        """Tokens Llama.generate will take from the KV cache (mirrors its prefix logic)."""
        if self.llm.n_tokens == 0:
            return 0
        n = 0
        for a, b in zip(self.llm._input_ids[: self.llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            n += 1
        return n - 1 if n == len(tokens) else n

    def stream(self, prompt: str, p: GenParams, cancelled: Callable[[], bool]) -> Iterator[tuple]:
        start = time.monotonic()
        tokens = self.tokenize(prompt)
        if len(tokens) + p.max_tokens > self.n_ctx:
            raise PromptTooLong(
                f"prompt is {len(tokens)} tokens; with max_tokens {p.max_tokens} it exceeds the "
                f"{self.n_ctx}-token context: shorten the input or raise n_ctx in the bundle"
            )
        reused = max(0, self._reused(tokens))
        self.llm.set_seed(p.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        held, text_all = "", ""
        n_out, t_first, t_last, finish = 0, 0.0, 0.0, "length"
        times: list[float] = []
        gen = self.llm.generate(
            tokens, temp=p.temperature, top_p=p.top_p, top_k=40 if p.temperature > 0 else 1,
            min_p=0.0, repeat_penalty=1.0, grammar=self._grammar(p.grammar),
        )
        for tok in gen:
            now = time.monotonic()
            if n_out == 0:
                t_first = now
            t_last = now
            if tok in self._eog:
                finish = "stop"
                break
            n_out += 1
            times.append(now)
            piece = decoder.decode(self.llm.detokenize([tok]))
            held += piece
            text_all += piece
            stop_at = _find_stop(text_all, p.stop)
            if stop_at is not None:
                emit = held[: len(held) - (len(text_all) - stop_at)]
                if emit:
                    yield ("tok", emit, tok, now)
                finish = "stop"
                break
            keep = _stop_prefix_len(text_all, p.stop)
            emit, held = (held[: len(held) - keep], held[len(held) - keep :]) if keep else (held, "")
            if emit:
                yield ("tok", emit, tok, now)
            if cancelled():
                finish = "cancelled"
                break
            if n_out >= p.max_tokens:
                finish = "length"
                break
        else:
            finish = "stop"
        gen.close()
        if held and finish != "stop":
            yield ("tok", held, -1, time.monotonic())
        yield ("done", {
            "prompt_tokens": len(tokens), "prompt_reused": reused,
            "prompt_ms": (t_first - start) * 1000 if n_out or t_first else 0.0,
            "decode_tokens": n_out, "decode_ms": (t_last - t_first) * 1000 if n_out > 1 else 0.0,
            "finish": finish, "token_times": times,
        })


class GreedyGrammarSampler:
    """Stands in for llama-cpp-python's sampler chain (grammar → greedy) with the same output.

    The chain applies the grammar to every vocabulary entry before picking the maximum. Greedy
    decoding only needs to know whether the argmax is allowed: one candidate is checked, and the full
    pass runs only when it is rejected (a minority of steps). `Llama.sample` calls `sample(ctx, idx)`.
    """

    def __init__(self, llm, grammar):
        import llama_cpp

        self._c = llama_cpp
        self._n = llm.n_vocab()
        self._smpl = llama_cpp.llama_sampler_init_grammar(
            llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
        if not self._smpl:
            raise ValueError("grammar failed to parse")
        self._one = (llama_cpp.llama_token_data * 1)()
        self._all = (llama_cpp.llama_token_data * self._n)()
        self._all_np = np.ctypeslib.as_array(self._all)
        self.full_passes = 0

    def _apply(self, data, size: int) -> None:
        arr = self._c.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        self._c.llama_sampler_apply(self._smpl, ctypes.byref(arr))

    def sample(self, ctx, idx: int = -1) -> int:
        logits = np.ctypeslib.as_array(self._c.llama_get_logits_ith(ctx.ctx, idx), shape=(self._n,))
        tok = int(np.argmax(logits))  # first maximum, like llama.cpp's greedy sampler
        self._one[0].id, self._one[0].logit, self._one[0].p = tok, float(logits[tok]), 0.0
        self._apply(self._one, 1)
        if self._one[0].logit == float("-inf"):  # rejected: the grammar decides over the whole vocabulary
            self.full_passes += 1
            self._all_np["id"] = np.arange(self._n, dtype=np.int32)
            self._all_np["logit"] = logits
            self._all_np["p"] = 0.0
            self._apply(self._all, self._n)
            tok = int(self._all_np["id"][int(np.argmax(self._all_np["logit"]))])
        self._c.llama_sampler_accept(self._smpl, tok)
        return tok

    def __del__(self):
        if getattr(self, "_smpl", None):
            self._c.llama_sampler_free(self._smpl)
            self._smpl = None


def _edge_llama_class():
    """`llama_cpp.Llama` whose sampler for greedy grammar decoding is `GreedyGrammarSampler`."""
    import llama_cpp

    class EdgeLlama(llama_cpp.Llama):
        fast_grammar = True  # False: llama-cpp-python's own chain (for parity checks and benchmarks)

        def _init_sampler(self, **kw):
            plain = (kw.get("temp") == 0.0 and not kw.get("logits_processor") and kw.get("repeat_penalty") == 1.0
                     and not kw.get("frequency_penalty") and not kw.get("presence_penalty"))
            if kw.get("grammar") is not None and plain and self.fast_grammar:
                return GreedyGrammarSampler(self, kw["grammar"])
            return super()._init_sampler(**kw)

    return EdgeLlama


def _find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for s in stops if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None


def _stop_prefix_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if s.startswith(text[-k:]):
                best = max(best, k)
                break
    return best
