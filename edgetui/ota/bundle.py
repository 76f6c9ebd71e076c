"""A bundle as the runtime sees it: manifest plus the paths of its model, template and corpus."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgetui.config import data_dir
from edgetui.engine.process import EngineSpec, ProcessEngine
from edgetui.engine.state_cache import cache_dir
from edgetui.ota.manifest import Manifest, verify_files


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: Manifest

    @classmethod
    def open(cls, root: Path) -> Bundle:
        return cls(root, Manifest.load(root / "manifest.json"))

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def runtime(self) -> dict:
        return self.manifest.runtime

    @property
    def bars(self) -> dict:
        return self.manifest.bars

    @property
    def model_path(self) -> Path:
        return self.root / self.runtime["model"]

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    @cached_property
    def template(self) -> str:
        return (self.root / self.manifest.prompt_template).read_text(encoding="utf-8")

    @property
    def template_sha256(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def verify(self) -> list[str]:
        return verify_files(self.root, self.manifest)

    def engine_spec(self, log_path: Path | None = None) -> EngineSpec:
        rt = self.runtime
        return EngineSpec(
            model_path=str(self.model_path),
            runtime=rt.get("engine", "llama"),
            n_ctx=int(rt.get("n_ctx", 2048)),
            n_threads=rt.get("n_threads"),
            n_batch=int(rt.get("n_batch", 512)),
            log_path=str(log_path) if log_path else None,
            state_dir=str(cache_dir(data_dir())),  # KV states of prompt prefixes, shared by every process
            extra=dict(rt.get("engine_extra", {})),
        )

    def engine(self, log_path: Path | None = None, timeout_s: float | None = None) -> ProcessEngine:
        return ProcessEngine(self.engine_spec(log_path), timeout_s=timeout_s)

    def chat_prompt(self, user: str, system: str | None = None) -> str:
        """Wrap plain text in the bundle's chat format (used by `generate`, not the assistant)."""
        fmt = self.runtime.get("chat_format", "chatml")
        if fmt != "chatml":
            return user
        sys_part = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
        return f"{sys_part}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
