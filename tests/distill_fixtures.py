"""Fixtures shared by the distill and ONNX runtime tests (imported by those test modules).

`teacher`: the default model read as a distillation teacher (tokenizer fields, config).
`tiny_export`: a tiny random student with the teacher's vocabulary, exported to f16, Q8_0 and Q4_1 GGUF
and to ONNX (+ tokenizer.json) in a temporary directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

PROBE = [
    "<|im_start|>user\nHello 12345 world!!  \n\n  tabs\tand  spaces   <|im_end|>\n",
    "naïve café — 5°C, ½ €100 😀 日本語",
    "  leading and trailing  ",
    "it's we'll they'd I'M don't",
    "x=3.14159e-10;;  POL-07#3 [POL-01#2] 4-hour limit, 6 hours",
    "\n\n\nlockout/tagout LOTO: isolate, verify zero energy.\r\n",
]


@dataclass
class TinyExport:
    model: object
    f16: Path
    q8_0: Path
    q4_1: Path
    onnx: Path


@pytest.fixture(scope="session")
def teacher(model_path):
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    from edgetui.distill.gguf_io import read_teacher

    return read_teacher(model_path)


@pytest.fixture(scope="session")
def tiny_export(teacher, tmp_path_factory) -> TinyExport:
    import torch

    from edgetui.distill.export import export_all
    from edgetui.distill.model import Student, StudentConfig

    torch.set_num_threads(2)
    cfg = StudentConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq=512)
    model = Student(cfg).init_random(seed=0).eval()
    out = tmp_path_factory.mktemp("tiny_export")
    paths = export_all(model, out, teacher.tokenizer_fields, ("f16", "q8_0", "q4_1", "onnx"), name="tiny")
    return TinyExport(model, paths["f16"], paths["q8_0"], paths["q4_1"], paths["onnx"])


def corpus_probe() -> list[str]:
    corpus = Path(__file__).resolve().parent.parent / "bundles" / "field-policy" / "corpus"
    return PROBE + [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.md"))]
