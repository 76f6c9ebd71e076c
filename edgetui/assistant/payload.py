"""What the assistant adds to a bundle at build, and the check verify and activation run on it.

`build(bundle_dir)` writes the FTS5 index, the MiniLM encoder, the sentence vectors and the intent
classifier beside the bundle's corpus; `problem(bundle_dir)` is one line saying why they cannot be
used (missing, truncated, another encoder, another corpus), or None. The OTA side calls both, so the
assistant owns its file formats and the store never activates a bundle the assistant would refuse.
"""

from __future__ import annotations

from pathlib import Path

from edgetui.assistant import intent, semantic
from edgetui.assistant.corpus import load_corpus
from edgetui.assistant.encoder import ENCODER_ID
from edgetui.assistant.index import build_index


def build(bundle_dir: Path) -> dict:
    """Build every assistant file of a bundle with a corpus; returns what goes into the manifest's runtime."""
    root = Path(bundle_dir)
    if not (root / "corpus").is_dir():
        return {}
    build_index(root / "corpus", root / "index.sqlite")
    enc, questions = semantic.build(root)
    info = intent.build(root, load_corpus(root / "corpus"), enc.embed, tuple(questions))
    return {"encoder": ENCODER_ID, "intent": info}


def problem(bundle_dir: Path) -> str | None:
    """Why the bundle's assistant files are unusable, or None (also for a bundle without a corpus)."""
    root = Path(bundle_dir)
    why = semantic.check_bundle(root)
    if why is None and semantic.has_vectors(root) and not (root / intent.FILE).is_file():
        why = f"{intent.FILE} is missing from the bundle: rebuild it (edgetui bundle build)"
    return why
