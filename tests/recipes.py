"""Copies of the default recipe for tests that build real bundles and run the real smoke gate.

The copies drop the latency bars (p95 TTFT, decode floor): those hold on an idle device, not on a
test machine shared with other jobs (a smoke run here saw p95 TTFT 5.5 s under load), and
`edgetui bench sustained` is where they are measured. Quality and the no-regression check stay.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from edgetui.session import RECIPES


def quality_only_recipe(root: Path, name: str, template: str | None = None,
                        keep_docs: tuple[str, ...] | None = None) -> Path:
    """bundles/field-policy copied to root/name without latency bars; optionally another template, or
    a corpus cut down to the documents whose file names start with one of `keep_docs`."""
    d = root / name
    shutil.copytree(RECIPES / "field-policy", d)
    toml = (d / "bundle.toml").read_text()
    (d / "bundle.toml").write_text(re.sub(r"(?m)^(p95_ttft_ms|sustained_floor_tps) = .*\n", "", toml))
    if template is not None:
        (d / "template.txt").write_text(template)
    if keep_docs is not None:
        for f in (d / "corpus").iterdir():
            if not f.name.startswith(keep_docs):
                f.unlink()
    return d
