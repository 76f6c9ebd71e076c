"""The engine contract with the real SmolLM2 model in a real child process."""

from __future__ import annotations

import os
import shutil
import signal
import threading

import pytest

from edgetui.engine import EngineCrashed, GenParams, ModelFileError, PromptTooLong
from edgetui.engine.process import EngineSpec, ProcessEngine

pytestmark = pytest.mark.model


def test_streams_tokens_with_monotonic_timestamps_and_stats(engine, bundle):
    g = engine.generate(bundle.chat_prompt("Name one pump part."), GenParams(max_tokens=16))
    toks = list(g)
    assert toks and "".join(t.text for t in toks) == g.text
    times = [t.t for t in toks]
    assert times == sorted(times)
    s = g.stats
    assert s.prompt_tokens > 5 and s.decode_tokens >= len(toks) - 1
    assert s.ttft_ms > 0 and s.decode_tps > 0
    assert s.finish in {"stop", "length"}
    assert times[0] - s.start == pytest.approx(s.ttft_ms / 1000, abs=0.01)


def test_same_prompt_is_deterministic_at_temperature_zero(engine, bundle):
    p = bundle.chat_prompt("What is a pump?")
    a, _ = engine.complete(p, GenParams(max_tokens=12))
    b, _ = engine.complete(p, GenParams(max_tokens=12))
    assert a == b


def test_cancel_stops_within_one_token(engine, bundle):
    g = engine.generate(bundle.chat_prompt("Write a long story about pumps."), GenParams(max_tokens=200))
    for seen, _ in enumerate(g, start=1):
        if seen == 3:
            g.cancel()
    assert g.stats.finish == "cancelled"
    assert g.stats.decode_tokens <= 4


def test_cancel_from_another_thread(engine, bundle):
    g = engine.generate(bundle.chat_prompt("Write a long story about valves."), GenParams(max_tokens=300))
    it = iter(g)
    next(it)
    threading.Timer(0.1, g.cancel).start()
    rest = list(it)
    assert g.stats.finish == "cancelled" and len(rest) < 299


def test_shared_prefix_is_not_recomputed(engine, bundle):
    system = "You are a maintenance assistant. " * 20
    engine.complete(bundle.chat_prompt("What is a seal?", system=system), GenParams(max_tokens=4))
    _, s = engine.complete(bundle.chat_prompt("What is a bearing?", system=system), GenParams(max_tokens=4))
    assert s.prompt_reused > 100
    assert s.prompt_recomputed < 20


def test_prompt_longer_than_context_is_refused_and_engine_survives(engine, bundle):
    with pytest.raises(PromptTooLong, match="context"):
        engine.complete("pump " * 5000, GenParams(max_tokens=8))
    text, _ = engine.complete(bundle.chat_prompt("Hi"), GenParams(max_tokens=4))
    assert text


def test_sigkill_mid_generation_raises_engine_crashed_then_recovers(bundle):
    eng = bundle.engine()
    try:
        g = eng.generate(bundle.chat_prompt("Tell me about pumps."), GenParams(max_tokens=200))
        with pytest.raises(EngineCrashed) as info:
            for i, _ in enumerate(g):
                if i == 2:
                    os.kill(eng.pid, signal.SIGKILL)
        assert info.value.signal_name == "SIGKILL"
        assert "SIGKILL" in str(info.value)
        text, stats = eng.complete(bundle.chat_prompt("Hi"), GenParams(max_tokens=4))
        assert text and stats.decode_tokens > 0
        assert eng.restarts >= 1
    finally:
        eng.close()


def test_sigsegv_in_the_child_is_named(bundle):
    eng = bundle.engine()
    try:
        eng.start()
        os.kill(eng.pid, signal.SIGSEGV)
        with pytest.raises(EngineCrashed, match="SIGSEGV"):
            eng.complete(bundle.chat_prompt("Hi"), GenParams(max_tokens=4))
    finally:
        eng.close()


@pytest.mark.parametrize("damage", ["missing", "not_gguf", "truncated", "empty"])
def test_bad_model_file_is_a_clear_error(tmp_path, model_path, damage):
    p = tmp_path / "model.gguf"
    if damage == "not_gguf":
        p.write_bytes(b"PK\x03\x04" + b"\0" * 4096)
    elif damage == "truncated":
        with model_path.open("rb") as src, p.open("wb") as dst:
            dst.write(src.read(5_000_000))
    elif damage == "empty":
        p.write_bytes(b"")
    eng = ProcessEngine(EngineSpec(str(p)))
    with pytest.raises(ModelFileError) as info:
        eng.start()
    msg = str(info.value)
    assert str(p) in msg and ("reinstall" in msg or "replace" in msg)
    assert "\n" not in msg
    eng.close()


def test_model_file_is_read_not_changed(tmp_path, model_path):
    p = tmp_path / "m.gguf"
    shutil.copyfile(model_path, p)
    before = p.stat().st_mtime_ns
    eng = ProcessEngine(EngineSpec(str(p)))
    eng.complete("Hello", GenParams(max_tokens=2))
    eng.close()
    assert p.stat().st_mtime_ns == before and eng.pid is None


def test_greedy_grammar_fast_path_gives_the_same_tokens_as_llama_cpps_chain(model_path, bundle):
    """GreedyGrammarSampler checks only the argmax against the grammar; the output must be exactly what
    llama-cpp-python's own grammar → greedy chain gives (in-process here: the parity is about sampling)."""
    from edgetui.assistant import prompt as P
    from edgetui.assistant.corpus import load_corpus
    from edgetui.engine.llama_runtime import LlamaRuntime

    rt = LlamaRuntime(str(model_path), 2048, 2)
    sections = load_corpus(bundle.corpus_dir)
    template = bundle.template
    cases = [("What seal kit do I use on P-201?", sections[5:8], "free"),
             ("How often are bearings checked?", sections[10:13], "model_quote"),
             ("What PPE for chlorine?", sections[20:23], "quote")]

    def run(q, secs, mode):
        grammar, stop = P.grammar_for(mode, list(secs))
        params = GenParams(max_tokens=40, stop=stop, grammar=grammar)
        evs = list(rt.stream(P.render(template, secs, q), params, lambda: False))
        return [e[2] for e in evs if e[0] == "tok"]

    for q, secs, mode in cases:
        rt.llm.fast_grammar = True
        fast = run(q, secs, mode)
        rt.llm.fast_grammar = False
        chain = run(q, secs, mode)
        assert fast and fast == chain, (mode, q)
