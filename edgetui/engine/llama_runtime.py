"""llama.cpp (GGUF) runtime. Runs inside the engine's child process only: native code stays there.

Prefix reuse comes from `Llama.generate`, which keeps the KV cache of the longest common prefix
with the previous prompt; we count the reused tokens the same way so stats report them.

Greedy decoding under a grammar goes through `GreedyGrammarSampler` (argmax first, the grammar's
full-vocabulary pass only when the argmax is not allowed): same tokens as llama.cpp's chain, without
testing all 49k SmolLM2 tokens against the grammar on every step, which halved decode speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgetui.engine.base import GenParams, ModelFileError
from edgetui.engine.decode import check_fits, decode
from edgetui.engine.state_cache import CacheKey, StateCache

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

    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: int | None = None, n_batch: int = 512,
                 state_dir: str | None = None):
        check_gguf(model_path)
        import llama_cpp

        threads = n_threads or max(1, os.cpu_count() or 1)
        try:
            with _two_sequences():
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
        self._prefix_tokens: dict[str, list[int]] = {}
        st = Path(model_path).stat()
        build = f"llama-cpp-python {llama_cpp.__version__}; {llama_cpp.llama_print_system_info().decode()}"
        key = CacheKey(model=f"{Path(model_path).resolve()}:{st.st_size}:{st.st_mtime_ns}", build=build,
                       n_ctx=self.n_ctx, n_batch=n_batch)
        self.states = StateCache(Path(state_dir) if state_dir else None, key)
        self.base_restored = 0  # tokens of the base restored from the cache on the last request

    def close(self) -> None:
        """Finish writing cached states (a state is worth more to the next process than to this one)."""
        self.states.flush()

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

    # -- KV state cache ------------------------------------------------------------------------------
    def _prefix_len(self, tokens: list[int], prefix: str) -> int:
        """How many leading tokens of the prompt are the cache prefix's (tokenized alone, a prefix can end
        in a token the full prompt merges with the next word; only the common run counts)."""
        if prefix not in self._prefix_tokens:  # the base is the same text on every request: tokenized once
            if len(self._prefix_tokens) > 64:
                self._prefix_tokens.clear()
            self._prefix_tokens[prefix] = self.tokenize(prefix)
        n = 0
        for a, b in zip(self._prefix_tokens[prefix], tokens, strict=False):
            if a != b:
                break
            n += 1
        return n

    # Sequence 0 holds the prompt. A cached state is only the cells of the prefix after the base (the static
    # instructions every prompt starts with, resident in the KV cache anyway), saved through sequence 1:
    # about 0.9 MiB instead of the 8 MiB of a whole-context state here. Those cells were computed after the
    # same base tokens at the same positions, so splicing them back is exact, not an approximation.
    def _save_delta(self, base: int, n: int) -> bytes:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        mem = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_seq_cp(mem, 0, 1, base, n)
        try:
            size = llama_cpp.llama_state_seq_get_size(ctx, 1)
            buf = (ctypes.c_uint8 * int(size))()
            got = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 1)
            return ctypes.string_at(buf, int(got))  # one copy (slicing a ctypes array builds a list of ints)
        finally:
            llama_cpp.llama_memory_seq_rm(mem, 1, -1, -1)

    def _load_delta(self, blob: bytes, prefix: list[int], base: int) -> bool:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        mem = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_seq_rm(mem, 0, base, -1)
        self.llm.n_tokens = base
        buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        ok = llama_cpp.llama_state_seq_set_data(ctx, buf, len(blob), 1) == len(blob)
        if ok:
            llama_cpp.llama_memory_seq_cp(mem, 1, 0, -1, -1)
        llama_cpp.llama_memory_seq_rm(mem, 1, -1, -1)
        if ok:
            self.llm.input_ids[: len(prefix)] = prefix
            self.llm.n_tokens = len(prefix)
        return ok

    # The base itself (the instructions, ~370 tokens) is evaluated once per process; its whole-sequence state
    # is kept too (~8 MiB), so a fresh process (`edgetui ask`) restores it instead of evaluating it (seconds on
    # 2 cores). Its key is the base tokens with a -1 after them: no prefix's key can be that.
    def _base_digest(self, base_tokens: list[int]) -> str:
        return self.states.key.digest([*base_tokens, -1])

    def _load_base(self, base_tokens: list[int]) -> bool:
        import llama_cpp

        blob, _ = self.states.get(self._base_digest(base_tokens))
        if blob is None:
            return False
        ctx = self.llm._ctx.ctx
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), 0, -1, -1)
        buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(blob), 0) != len(blob):
            self.llm.reset()
            return False
        self.llm.input_ids[: len(base_tokens)] = base_tokens
        self.llm.n_tokens = len(base_tokens)
        return True

    def _save_base(self, base_tokens: list[int]) -> None:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * int(size))()
        got = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        self.states.put(self._base_digest(base_tokens), ctypes.string_at(buf, int(got)), background=True)

    def _restore(self, prefix: list[int], base: int) -> str:
        """Put the prefix's KV cells in place: "kv" already there, "ram"/"disk" spliced from the cache,
        "miss" evaluated (what is already loaded reused) and saved for the next prompt with this prefix."""
        n = len(prefix)
        self.base_restored = 0  # tokens of the base restored from the cache on this request (a miss reads it)
        if self.llm.n_tokens >= n and list(self.llm.input_ids[:n]) == prefix:
            return "kv"
        if self._reused(prefix) < base:  # the base is not resident: restore it, else evaluate it and keep it
            self.llm.reset()
            if self._load_base(prefix[:base]):
                self.base_restored = base
            else:
                self.llm.eval(prefix[:base])
                self._save_base(prefix[:base])
        digest = self.states.key.digest(prefix)
        blob, where = self.states.get(digest)
        if blob is not None and self._load_delta(blob, prefix, base):
            return where
        keep = min(self._reused(prefix), self.llm.n_tokens)
        self.llm.n_tokens = keep
        self.llm.eval(prefix[keep:])
        self.states.put(digest, self._save_delta(base, n), background=True)
        return "miss"

    def stream(self, prompt: str, p: GenParams, cancelled: Callable[[], bool]) -> Iterator[tuple]:
        start = time.monotonic()
        tokens = self.tokenize(prompt)
        check_fits(len(tokens), p, self.n_ctx)
        cache, reused = "", max(0, self._reused(tokens))
        if p.cache_prefix and p.cache_base and prompt.startswith(p.cache_prefix) \
                and p.cache_prefix.startswith(p.cache_base):
            n = self._prefix_len(tokens, p.cache_prefix)
            base = min(self._prefix_len(tokens, p.cache_base), n)
            if 0 < base < n < len(tokens):
                cache = self._restore(tokens[:n], base)
                # on a miss the prefix was just evaluated: it counts as recomputed, except what was resident
                # before (the base, when loaded) or restored from the cache (the base, in a fresh process)
                reused = max(0, self._reused(tokens)) if cache != "miss" else max(reused, self.base_restored)
        self.llm.set_seed(p.seed)
        ids = self.llm.generate(
            tokens, temp=p.temperature, top_p=p.top_p, top_k=40 if p.temperature > 0 else 1,
            min_p=0.0, repeat_penalty=1.0, grammar=self._grammar(p.grammar),
        )
        for event in decode(ids, lambda tok: self.llm.detokenize([tok]), self._eog, p, cancelled, start,
                            len(tokens), reused):
            if event[0] == "done":
                event[1]["cache"] = cache
                event[1]["cache_ram_bytes"] = self.states.ram_bytes
            yield event


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


@contextlib.contextmanager
def _two_sequences():
    """Contexts created inside get two sequences over one unified KV cache (the state cache saves and
    splices cells through sequence 1); llama-cpp-python only sets this for embedding models."""
    import llama_cpp.llama_cpp as low

    default = low.llama_context_default_params

    def params():
        p = default()
        p.n_seq_max, p.kv_unified = 2, True
        return p

    low.llama_context_default_params = params
    try:
        yield
    finally:
        low.llama_context_default_params = default


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
