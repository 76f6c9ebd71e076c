"""The public golden set is a report, never a source: no 5-word run of its questions may appear in the
code, prompts, recipes, alias questions or configs (the policy corpus aside), and the dev set we tune on is our
own."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PUBLIC = REPO / "golden_sets" / "field-policy" / "v1.jsonl"
DEV = REPO / "golden_sets" / "field-policy" / "dev.jsonl"
VALS = [REPO / "golden_sets" / "field-policy" / n for n in ("val.jsonl", "val2.jsonl")]  # never fitted on
DIRS = ("edgetui", "screens", "bundles", "configs")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def public_grams() -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for line in PUBLIC.read_text().splitlines():
        out |= grams(json.loads(line)["question"])
    return out


def test_no_public_golden_wording_in_code_prompts_recipes_or_configs():
    golden = public_grams()
    assert len(golden) > 300  # the set was read (a broken reader would make this test pass vacuously)
    found = []
    for d in DIRS:
        for p in sorted((REPO / d).rglob("*")):
            if not p.is_file() or {"corpus", "__pycache__"} & set(p.parts):
                continue
            try:
                text = p.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            if p.suffix == ".jsonl":  # alias questions: the sentence beside each is corpus text
                text = "\n".join(json.loads(line).get("question", "") for line in text.splitlines() if line.strip())
            hits = grams(text) & golden
            found += [f"{p.relative_to(REPO)}: {' '.join(sorted(hits)[0])}"] if hits else []
    assert not found, found


def test_the_dev_and_validation_sets_are_written_independently_of_the_public_set():
    golden = public_grams()
    dev = [json.loads(line) for line in DEV.read_text().splitlines()]
    val = [json.loads(line) for p in VALS for line in p.read_text().splitlines()]
    assert len(dev) >= 300 and len(val) >= 230
    shared = [c["id"] for c in dev + val if grams(c["question"]) & golden]
    assert not shared, shared
