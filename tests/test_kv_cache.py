"""The per-prefix KV state cache with the real model: hits across processes, invalidation, bad files, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace

import pytest

from edgetui.assistant import prompt
from edgetui.assistant.pipeline import Assistant
from edgetui.engine.base import EngineCrashed, GenParams
from edgetui.engine.state_cache import cache_dir, invalidate
from edgetui.ota.store import Store

pytestmark = pytest.mark.model

QUESTION = "Which seal kit goes on treated water pump P-304?"


def _ask(home, question: str) -> dict:
    env = {**os.environ, "EDGETUI_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "edgetui", "ask", question, "--json"], env=env, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _tail_tokens(bundle, engine, question: str) -> int:
    """Tokens of the prompt after the cached prefix (instructions + quoted policy text)."""
    a = Assistant(bundle, None)
    query = a.understand(question)[0]
    ev = a.hybrid.search(query, a.top_k)
    by_id: dict[str, list[str]] = {}
    for q in ev.quotes:
        by_id.setdefault(q.section.id, []).append(q.unit.sentence)
    shown = [replace(a.sections[sid], sentences=tuple(s)) for sid, s in by_id.items()]
    full = engine.tokenize(prompt.render(a.template, shown, query))
    pre = engine.tokenize(prompt.render_prefix(a.template, shown))
    n = next((i for i, (x, y) in enumerate(zip(full, pre, strict=False)) if x != y), min(len(full), len(pre)))
    return len(full) - n


def test_a_second_process_restores_the_prefix_and_recomputes_only_the_question(bundle_home, bundle, engine):
    invalidate(bundle_home.home)
    first = _ask(bundle_home.home, QUESTION)
    second = _ask(bundle_home.home, QUESTION)
    assert first["stats"]["cache_hit"] is False and first["stats"]["cache"] == "miss"
    assert second["stats"]["cache_hit"] is True and second["stats"]["cache"] == "disk"
    assert 0 < second["stats"]["cache_ram_bytes"] <= 64 << 20  # the restored states, under the RAM budget
    assert second["stats"]["prompt_recomputed"] == _tail_tokens(bundle, engine, QUESTION)
    assert second["answer"] == first["answer"] and "SK-3110" in second["answer"]  # restoring is exact
    assert list(cache_dir(bundle_home.home).glob("*.kv"))


def test_a_fresh_process_restores_the_instructions_even_for_a_new_question(bundle_home):
    """The instructions' state is kept beside the policy-text states: a new process asking a question whose
    policy text was never cached still skips evaluating them, and answers exactly as without any cache."""
    other = "How long is a hot work permit valid?"
    invalidate(bundle_home.home)
    _ask(bundle_home.home, QUESTION)  # keeps the instructions' state
    restored = _ask(bundle_home.home, other)
    invalidate(bundle_home.home)
    cold = _ask(bundle_home.home, other)
    assert restored["stats"]["cache"] == "miss" and cold["stats"]["cache"] == "miss"
    assert cold["stats"]["prompt_reused"] == 0 < restored["stats"]["prompt_reused"]
    assert restored["stats"]["prompt_recomputed"] < cold["stats"]["prompt_recomputed"]
    assert restored["answer"] == cold["answer"] and "4 hours" in restored["answer"]


def test_a_corrupt_state_file_is_rebuilt_and_the_answer_is_unchanged(bundle_home):
    invalidate(bundle_home.home)
    good = _ask(bundle_home.home, QUESTION)
    for f in cache_dir(bundle_home.home).glob("*.kv"):
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        f.write_bytes(bytes(raw[: len(raw) - 1000]))
    again = _ask(bundle_home.home, QUESTION)
    assert again["stats"]["cache"] == "miss" and again["answer"] == good["answer"]
    assert _ask(bundle_home.home, QUESTION)["stats"]["cache"] == "disk"  # rebuilt by the run before


def test_activation_and_rollback_invalidate_the_cache(home):
    from edgetui.session import ensure_default_bundle

    ensure_default_bundle(home)
    store = Store(home.store)
    name, version = store.active_ref()
    for _ in range(2):  # activate, then point back (what rollback does)
        d = cache_dir(home.home)
        d.mkdir(exist_ok=True)
        (d / f"{'a' * 64}.kv").write_bytes(b"state of the previous bundle")
        store.set_active(name, version)
        assert not list(d.glob("*.kv"))


def test_sigkill_of_the_engine_mid_answer_then_a_correct_answer(bundle):
    eng = bundle.engine()
    try:
        a = Assistant(bundle, eng)
        seen: list[str] = []

        def kill_on_first_token(t: str) -> None:
            seen.append(t)
            if len(seen) == 1:
                os.kill(eng.pid, signal.SIGKILL)

        with pytest.raises(EngineCrashed):
            a.ask(QUESTION, on_token=kill_on_first_token)
        ans = a.ask(QUESTION)
        assert not ans.abstained and "SK-3110" in ans.answer and "POL-02#4" in ans.citations
        assert eng.restarts >= 1
        text, _ = eng.complete(bundle.chat_prompt("Hi"), GenParams(max_tokens=4))
        assert text
    finally:
        eng.close()
