"""The onnxruntime engine: same interface and stats as the llama.cpp runtime, on a tiny student export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.train

import distill_fixtures  # noqa: E402

teacher, tiny_export = distill_fixtures.teacher, distill_fixtures.tiny_export  # shared fixtures

from edgetui.engine.base import GenParams, ModelFileError, PromptTooLong  # noqa: E402

PROMPT = "<|im_start|>user\nWhen must a seal leak be reported?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def rt(tiny_export):
    from edgetui.engine.onnx_runtime import OnnxRuntime

    return OnnxRuntime(str(tiny_export.onnx), n_ctx=256, n_threads=2)


def _run(rt, prompt, params, cancelled=lambda: False):
    toks, done = [], None
    for ev in rt.stream(prompt, params, cancelled):
        if ev[0] == "tok":
            toks.append(ev)
        else:
            done = ev[1]
    return toks, done


def _torch_greedy(model, ids, n):
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            out.append(nxt)
            ids.append(nxt)
    return out


def test_tokenize_matches_llama_cpp(rt, model_path):
    import llama_cpp

    llm = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    assert rt.tokenize(PROMPT) == llm.tokenize(PROMPT.encode(), add_bos=True, special=True)


def test_greedy_stream_matches_torch_and_reports_llama_stats(rt, tiny_export):
    toks, stats = _run(rt, PROMPT, GenParams(max_tokens=12))
    want = _torch_greedy(tiny_export.model, rt.tokenize(PROMPT), 12)
    got_ids = [t[2] for t in toks if t[2] >= 0]
    assert got_ids == want[: len(got_ids)] and len(got_ids) >= 10
    assert set(stats) == {"prompt_tokens", "prompt_reused", "prompt_ms", "decode_tokens", "decode_ms",
                          "finish", "token_times"}
    assert stats["finish"] == "length" and stats["decode_tokens"] == 12
    assert stats["prompt_tokens"] == len(rt.tokenize(PROMPT))
    times = [t[3] for t in toks]
    assert times == sorted(times)


def test_shared_prefix_is_served_from_the_cache(rt):
    _run(rt, PROMPT, GenParams(max_tokens=2))
    _, stats = _run(rt, PROMPT + "Also", GenParams(max_tokens=2))
    assert stats["prompt_reused"] >= len(rt.tokenize(PROMPT)) - 1
    _, again = _run(rt, PROMPT, GenParams(max_tokens=2))
    assert again["prompt_reused"] == len(rt.tokenize(PROMPT)) - 1


def test_cancel_stops_within_one_token(rt):
    toks, stats = _run(rt, PROMPT, GenParams(max_tokens=50), cancelled=lambda: True)
    assert stats["finish"] == "cancelled" and stats["decode_tokens"] == 1


def test_prompt_too_long_is_refused(rt):
    with pytest.raises(PromptTooLong):
        _run(rt, "word " * 400, GenParams(max_tokens=8))


def test_sampling_is_reproducible_with_a_seed(rt):
    p = GenParams(max_tokens=8, temperature=0.8, seed=7)
    a, _ = _run(rt, PROMPT, p)
    b, _ = _run(rt, PROMPT, p)
    assert [t[2] for t in a] == [t[2] for t in b]


def test_missing_tokenizer_is_a_model_file_error(tmp_path, tiny_export):
    from edgetui.engine.onnx_runtime import OnnxRuntime

    lonely = tmp_path / "model.onnx"
    lonely.write_bytes(tiny_export.onnx.read_bytes())
    with pytest.raises(ModelFileError, match="tokenizer.json"):
        OnnxRuntime(str(lonely))


def test_runs_in_the_engine_child_process(tiny_export):
    from edgetui.engine.process import EngineSpec, ProcessEngine

    eng = ProcessEngine(EngineSpec(str(tiny_export.onnx), runtime="onnx", n_ctx=256, n_threads=1))
    try:
        text, stats = eng.complete(PROMPT, GenParams(max_tokens=6))
        assert stats.decode_tokens == 6 and stats.ttft_ms > 0 and eng.pid is not None
        assert eng.tokenize("hello world") == [28120, 905]
    finally:
        eng.close()
    assert np.isfinite(stats.decode_tps)
