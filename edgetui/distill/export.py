"""Export a trained student: GGUF (f16, Q8_0) for llama.cpp and ONNX with a KV cache for onnxruntime.

The ONNX graph takes `input_ids [B, S]`, `past_key`/`past_value [L, B, KV, P, D]` and returns
`logits [B, S, V]` and the grown caches. Everything the runtime needs besides the graph (layer and
head counts, special ids) rides in the model's metadata, and the tokenizer is written beside it as
tokenizer.json, so `edgetui/engine/onnx_runtime.py` needs neither torch nor gguf.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from edgetui.distill.gguf_io import write_gguf
from edgetui.distill.model import Student
from edgetui.distill.tokenizer import save_tokenizer, special_ids

ONNX_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"


class _CachedStep(nn.Module):
    def __init__(self, model: Student):
        super().__init__()
        self.model = model

    def forward(self, input_ids, past_key, past_value):
        return self.model.forward_cached(input_ids, past_key, past_value)


def export_onnx(model: Student, out_dir: str | Path, tokenizer_fields: dict, opset: int = 17) -> Path:
    """Write model.onnx and tokenizer.json into out_dir; returns the ONNX path."""
    import onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = model.config
    step = _CachedStep(model.eval()).eval()
    ids = torch.zeros(1, 2, dtype=torch.long)
    past = torch.zeros(c.n_layers, 1, c.n_kv_heads, 3, c.head_dim)
    path = out_dir / ONNX_NAME
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no onnxscript
        torch.onnx.export(
            step, (ids, past, past.clone()), str(path), dynamo=False, opset_version=opset,
            input_names=["input_ids", "past_key", "past_value"],
            output_names=["logits", "present_key", "present_value"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "past_key": {1: "batch", 3: "past"},
                          "past_value": {1: "batch", 3: "past"}, "logits": {0: "batch", 1: "seq"},
                          "present_key": {1: "batch", 3: "total"}, "present_value": {1: "batch", 3: "total"}},
        )
    proto = onnx.load(str(path))
    _share_tied_embedding(proto, c.vocab_size)
    meta = {"edgetui.n_layers": c.n_layers, "edgetui.n_kv_heads": c.n_kv_heads, "edgetui.head_dim": c.head_dim,
            "edgetui.vocab_size": c.vocab_size, "edgetui.max_seq": c.max_seq,
            "edgetui.special": json.dumps(special_ids(tokenizer_fields))}
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=str(v))
    onnx.save(proto, str(path))
    save_tokenizer(tokenizer_fields, out_dir / TOKENIZER_NAME)
    return path


def _share_tied_embedding(proto, vocab_size: int) -> None:
    """The exporter folds the tied lm_head into a transposed copy of the embedding matrix; point
    that MatMul back at the embedding (Gemm, transB=1) and drop the copy, halving that weight's bytes."""
    from onnx import helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    embd = next(n.input[0] for n in g.node if n.op_type == "Gather" and n.input[0] in inits
                and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].dims[0] == vocab_size)
    for idx, node in enumerate(g.node):
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if w is not None and list(w.dims)[-1] == vocab_size and len(w.dims) == 2:
            gemm = helper.make_node("Gemm", [node.input[0], embd], list(node.output), name=node.name, transB=1)
            g.node.remove(node)
            g.node.insert(idx, gemm)
            g.initializer.remove(w)
            return


def export_all(model: Student, out_dir: str | Path, tokenizer_fields: dict, formats: tuple[str, ...],
               name: str = "edgetui-student") -> dict[str, Path]:
    """Every requested format ('f16', 'q8_0', 'q4_1', 'onnx') under out_dir; returns format -> path."""
    out_dir = Path(out_dir)
    paths = {}
    for fmt in formats:
        if fmt == "onnx":
            paths[fmt] = export_onnx(model, out_dir / "onnx", tokenizer_fields)
        else:
            paths[fmt] = write_gguf(model, out_dir / f"student-{fmt}.gguf", tokenizer_fields, fmt, name=name)
    return paths
