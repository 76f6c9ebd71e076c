"""Tokenizer and chat-template fingerprint: token ids of fixed probe strings from the real runtime.

Two bundles (or one bundle under two runtime versions) that tokenize these probes differently would
score differently on the same prompts, so the fingerprint is recorded at build time
(`manifest.tokenizer_sha256`) and checked again before a bundle is activated. The probes cover
plain text, the chat format's special tokens, the production template and awkward bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgetui.engine.base import EngineError
from edgetui.engine.process import ProcessEngine
from edgetui.ota.bundle import Bundle
from edgetui.ota.errors import Refused
from edgetui.ota.manifest import canonical_json

VERSION = 1
PROBES = (
    "Hello, world!",
    "Lockout/tagout: isolate, lock, tag, then verify zero energy before work.",
    "POL-02#4 seal kit SK-2240 on P-201; leak > 5 drops/min at 72 h.",
    "  leading spaces,\ttabs\nand\r\nnewlines  ",
    "Ünïcödé — ≤ 3 °C · 🔧 · 日本語",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
)


def probe_texts(bundle: Bundle) -> list[str]:
    texts = list(PROBES)
    texts.append(bundle.chat_prompt("What PPE is required?", system="Answer from the policy."))
    if bundle.manifest.prompt_template:
        texts.append(bundle.template)
    return texts


def fingerprint_of(token_ids: list[list[int]]) -> str:
    return hashlib.sha256(canonical_json({"v": VERSION, "probes": token_ids})).hexdigest()


def compute(bundle: Bundle, log_path: Path | None = None, timeout_s: float = 180) -> str:
    """Start the bundle's runtime briefly, tokenize the probes, return the sha256 of the ids."""
    engine = ProcessEngine(bundle.engine_spec(log_path or Path(os.devnull)), timeout_s=timeout_s)
    try:
        return fingerprint_of([engine.tokenize(t) for t in probe_texts(bundle)])
    except EngineError as e:
        raise Refused(f"{bundle.ref}: tokenizer fingerprint could not be computed ({e})") from e
    finally:
        engine.close()
