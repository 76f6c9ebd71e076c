"""onnxruntime runtime for student exports (`model.onnx` + `tokenizer.json` beside it).

Same interface as `LlamaRuntime` (runs inside the engine's child process): `tokenize`, and `stream`
yielding ('tok', text, id, t) then ('done', stats). The graph carries an explicit KV cache
(`past_key`/`past_value [L, B, KV, P, D]`), so decode feeds one token per step; the cache of the
longest common prefix with the previous prompt is kept, like llama.cpp's. Layer/head counts and
special ids come from the model's metadata, written by `edgetui distill export`. Grammars are a
llama.cpp feature: a request that names one is served unconstrained here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import numpy as np

from edgetui.engine.base import GenParams, ModelFileError
from edgetui.engine.decode import check_fits, decode

TOKENIZER_NAME = "tokenizer.json"


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable stand-in of each byte -> the byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def check_onnx(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file {p} is missing: reinstall or re-activate the bundle")
    tok = p.with_name(TOKENIZER_NAME)
    if not tok.is_file():
        raise ModelFileError(f"{tok} is missing: an ONNX bundle needs tokenizer.json beside the model")
    return p, tok


class OnnxRuntime:
    """One loaded ONNX student; `stream` yields ('tok', text, id, t) then ('done', stats)."""

    name = "onnxruntime"

    def close(self) -> None:
        """Nothing to finish (no state cache)."""

    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: int | None = None, **extra):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path, tok_path = check_onnx(model_path)
        opts = ort.SessionOptions()
        threads = n_threads or max(1, os.cpu_count() or 1)
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self.tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelFileError(f"model file {path} failed to load ({e}): reinstall the bundle") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.n_layers = int(meta["edgetui.n_layers"])
            self.n_kv_heads = int(meta["edgetui.n_kv_heads"])
            self.head_dim = int(meta["edgetui.head_dim"])
            special = json.loads(meta["edgetui.special"])
            max_seq = int(meta.get("edgetui.max_seq", n_ctx))
        except (KeyError, ValueError) as e:
            raise ModelFileError(f"{path} lacks edgetui metadata ({e}): export it with `edgetui distill export`") from e
        self.n_ctx = min(n_ctx, max_seq)
        self._eog = set(special.get("eog", []))
        self._bos = special.get("bos") if special.get("add_bos") else None
        self._token_bytes = self._build_token_bytes()
        self._tokens: list[int] = []
        self._past = self._empty_past()

    def _build_token_bytes(self) -> list[bytes]:
        dec = _byte_decoder()
        vocab = self.tokenizer.get_vocab(with_added_tokens=False)
        out = [b""] * (max(vocab.values()) + 1)
        for text, i in vocab.items():
            out[i] = bytes(dec[ch] for ch in text if ch in dec)
        for i in self.tokenizer.get_added_tokens_decoder():
            if i < len(out):
                out[i] = b""  # special tokens are control text, not output (llama.cpp renders them empty too)
        return out

    def _empty_past(self) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros((self.n_layers, 1, self.n_kv_heads, 0, self.head_dim), dtype=np.float32)
        return z, z

    def tokenize(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ([self._bos] if self._bos is not None else []) + ids

    def _step(self, ids: list[int]) -> np.ndarray:
        """Run ids after the cached prefix; returns the last position's logits and grows the cache."""
        logits, k, v = self.session.run(None, {"input_ids": np.asarray([ids], dtype=np.int64),
                                               "past_key": self._past[0], "past_value": self._past[1]})
        self._past = (k, v)
        self._tokens.extend(ids)
        return logits[0, -1]

    def _reuse_prefix(self, tokens: list[int]) -> int:
        n = 0
        for a, b in zip(self._tokens, tokens, strict=False):
            if a != b:
                break
            n += 1
        n = min(n, len(tokens) - 1)  # always recompute at least one token to get logits
        self._tokens = self._tokens[:n]
        self._past = (self._past[0][:, :, :, :n], self._past[1][:, :, :, :n])
        return n

    @staticmethod
    def _pick(logits: np.ndarray, p: GenParams, rng: np.random.Generator) -> int:
        if p.temperature <= 0:
            return int(logits.argmax())
        z = logits.astype(np.float64) / p.temperature
        top = np.argsort(-z)[:40]
        probs = np.exp(z[top] - z[top].max())
        probs /= probs.sum()
        if p.top_p < 1.0:
            keep = np.searchsorted(np.cumsum(probs), p.top_p) + 1
            top, probs = top[:keep], probs[:keep] / probs[:keep].sum()
        return int(rng.choice(top, p=probs))

    def stream(self, prompt: str, p: GenParams, cancelled: Callable[[], bool]) -> Iterator[tuple]:
        start = time.monotonic()
        tokens = self.tokenize(prompt)
        if not tokens:
            tokens = [next(iter(self._eog))]
        check_fits(len(tokens), p, self.n_ctx)
        reused = self._reuse_prefix(tokens)
        rng = np.random.default_rng(p.seed)

        def ids() -> Generator[int, None, None]:
            logits = self._step(tokens[reused:])
            while True:
                tok = self._pick(logits, p, rng)
                yield tok
                logits = self._step([tok])  # only when the loop asks for the next token

        yield from decode(ids(), self._bytes_of, self._eog, p, cancelled, start, len(tokens), reused)

    def _bytes_of(self, tok: int) -> bytes:
        return self._token_bytes[tok] if tok < len(self._token_bytes) else b""
