"""Export parity on a tiny random student: torch vs llama.cpp (GGUF) and torch vs onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.train

import distill_fixtures  # noqa: E402

teacher, tiny_export = distill_fixtures.teacher, distill_fixtures.tiny_export  # shared fixtures


def _sequences(n=4, length=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 49152, (1, length), generator=g) for _ in range(n)]


def _llama_logits(path, ids):
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2)
    out = []
    for seq in ids:
        llm.reset()
        llm.eval(seq[0].tolist())
        out.append(np.array(llm.scores[: seq.shape[1]]))
    return out


def _torch_logits(model, ids):
    with torch.no_grad():
        return [model(seq)[0].numpy() for seq in ids]


def _agreement(a, b):
    a, b = np.concatenate(a), np.concatenate(b)
    return float((a.argmax(-1) == b.argmax(-1)).mean()), float(np.abs(a - b).max() / np.abs(a).max())


def test_f16_gguf_logits_match_torch(tiny_export):
    ids = _sequences()
    agree, rel = _agreement(_torch_logits(tiny_export.model, ids), _llama_logits(tiny_export.f16, ids))
    assert agree >= 0.99, f"argmax agreement {agree:.3f}"
    assert rel < 1e-2, f"max relative logit error {rel:.4f}"


def test_q8_0_gguf_is_smaller_and_close(tiny_export):
    ids = _sequences(n=2)
    agree, rel = _agreement(_torch_logits(tiny_export.model, ids), _llama_logits(tiny_export.q8_0, ids))
    assert tiny_export.q8_0.stat().st_size < 0.7 * tiny_export.f16.stat().st_size  # tokenizer metadata is shared
    assert agree >= 0.95 and rel < 5e-2


def test_q4_1_gguf_loads_with_the_teachers_quantization_mix(tiny_export):
    import gguf

    r = gguf.GGUFReader(tiny_export.q4_1)
    kinds = {t.name: t.tensor_type.name for t in r.tensors}
    assert kinds["token_embd.weight"] == "Q8_0" and kinds["blk.0.ffn_up.weight"] == "Q4_1"
    agree, _ = _agreement(_torch_logits(tiny_export.model, _sequences(n=1)), _llama_logits(tiny_export.q4_1,
                                                                                           _sequences(n=1)))
    assert agree >= 0.8


def test_onnx_with_kv_cache_matches_torch(tiny_export):
    import onnxruntime as ort

    s = ort.InferenceSession(str(tiny_export.onnx), providers=["CPUExecutionProvider"])
    c = tiny_export.model.config
    got, want = [], _torch_logits(tiny_export.model, _sequences())
    for seq in _sequences():
        ids = seq.numpy()
        k = v = np.zeros((c.n_layers, 1, c.n_kv_heads, 0, c.head_dim), np.float32)
        steps = []
        lg, k, v = s.run(None, {"input_ids": ids[:, :30], "past_key": k, "past_value": v})  # prompt pass
        steps.append(lg[0])
        for i in range(30, ids.shape[1]):  # then one token at a time through the cache
            lg, k, v = s.run(None, {"input_ids": ids[:, i:i + 1], "past_key": k, "past_value": v})
            steps.append(lg[0])
        got.append(np.concatenate(steps))
        assert k.shape[3] == ids.shape[1]
    agree, rel = _agreement(want, got)
    assert agree >= 0.99 and rel < 1e-4


def test_onnx_stores_the_tied_embedding_once(tiny_export):
    onnx_bytes = tiny_export.onnx.stat().st_size
    assert onnx_bytes < 1.1 * 4 * tiny_export.model.n_params()


def test_rebuilt_tokenizer_gives_llama_cpp_ids_on_the_probe_corpus(teacher, model_path):
    import llama_cpp

    from edgetui.distill.tokenizer import build_tokenizer

    tk = build_tokenizer(teacher.tokenizer_fields)
    llm = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    for text in distill_fixtures.corpus_probe():
        want = llm.tokenize(text.encode(), add_bos=True, special=True)
        assert tk.encode(text, add_special_tokens=False).ids == want, text[:60]


def test_gguf_export_copies_the_teacher_tokenizer_and_template(teacher, tiny_export):
    from edgetui.distill.gguf_io import read_teacher

    student = read_teacher(tiny_export.f16)
    assert student.tokenizer_hash() == teacher.tokenizer_hash()
    assert student.tokenizer_fields["tokenizer.chat_template"][0] == teacher.tokenizer_fields[
        "tokenizer.chat_template"][0]
    assert student.config.n_layers == 2 and student.config.dim == 64


def test_depth_pruned_student_copies_the_chosen_teacher_layers(teacher):
    from edgetui.distill.gguf_io import default_keep_layers, student_from_teacher

    keep = default_keep_layers(teacher.config.n_layers, 15)
    assert len(keep) == 15 and keep[0] == 0 and keep[-1] == teacher.config.n_layers - 1
    student = student_from_teacher(teacher, keep)
    w = teacher.weights([f"blk.{keep[3]}.ffn_down.weight", "output_norm.weight"])
    assert np.allclose(student.blocks[3].ffn_down.weight.detach().numpy(), w[f"blk.{keep[3]}.ffn_down.weight"])
    assert np.allclose(student.output_norm.weight.detach().numpy(), w["output_norm.weight"])
