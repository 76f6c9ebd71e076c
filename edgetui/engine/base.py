"""The engine contract: plain data in, tokens with monotonic timestamps out, stats at the end.

`time.monotonic()` is CLOCK_MONOTONIC, shared by every process on Linux, so timestamps taken in the
engine's child process compare directly with the parent's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol


class EngineError(Exception):
    """A request the engine could not serve; the message names the problem and the fix."""


class EngineCrashed(EngineError):
    """The child process died (signal or exit) mid-request; the next request starts a fresh one."""

    def __init__(self, message: str, signal_name: str | None = None, exitcode: int | None = None):
        super().__init__(message)
        self.signal_name = signal_name
        self.exitcode = exitcode


class ModelFileError(EngineError):
    """The model file is missing, truncated or not a GGUF/ONNX model."""


class PromptTooLong(EngineError):
    """The prompt plus the output budget does not fit in the context window."""


@dataclass(frozen=True)
class Token:
    text: str
    t: float  # time.monotonic() when the token was produced
    id: int = -1


@dataclass(frozen=True)
class GenParams:
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF text; the llama.cpp runtime compiles and caches it
    # the start of the prompt whose KV state is worth keeping (instructions + policy text, not the question):
    # the llama.cpp runtime restores it from its state cache instead of evaluating it again
    cache_prefix: str | None = None
    cache_base: str | None = None  # the start of cache_prefix every prompt shares (kept resident, never cached)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Stats:
    prompt_tokens: int = 0
    prompt_reused: int = 0  # tokens served from the KV cache (shared prefix with the last prompt)
    prompt_ms: float = 0.0  # time to evaluate the recomputed prompt tokens
    ttft_ms: float = 0.0  # request start to first token
    decode_tokens: int = 0
    decode_ms: float = 0.0  # first token to last token
    finish: str = "stop"  # stop | length | cancelled | error
    cache: str = ""  # the cache_prefix's state: kv (still loaded), ram, disk (restored), miss (evaluated, saved)
    cache_ram_bytes: int = 0  # bytes of KV states the engine holds in RAM after this request (budgeted)
    start: float = 0.0  # time.monotonic() at request start
    token_times: tuple[float, ...] = field(default=(), repr=False)

    @property
    def prompt_recomputed(self) -> int:
        return self.prompt_tokens - self.prompt_reused

    @property
    def decode_tps(self) -> float:
        """Decode speed; the first token is produced by the prompt pass, so it is not counted."""
        if self.decode_tokens < 2 or self.decode_ms <= 0:
            return 0.0
        return (self.decode_tokens - 1) / (self.decode_ms / 1000.0)

    @property
    def prompt_tps(self) -> float:
        return self.prompt_recomputed / (self.prompt_ms / 1000.0) if self.prompt_ms > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("token_times")
        d.update(
            prompt_recomputed=self.prompt_recomputed,
            decode_tps=round(self.decode_tps, 2),
            prompt_tps=round(self.prompt_tps, 2),
        )
        return d


class Generation(Protocol):
    """An in-flight request: iterate for tokens; `stats` is set once iteration ends."""

    stats: Stats | None

    def __iter__(self) -> Iterator[Token]: ...

    def cancel(self) -> None:
        """Ask the engine to stop; iteration ends within one token with finish='cancelled'."""


class Engine(Protocol):
    """What the assistant, evals and telemetry need from a runtime."""

    name: str
    n_ctx: int

    def generate(self, prompt: str, params: GenParams) -> Generation: ...

    def tokenize(self, text: str) -> list[int]: ...

    def close(self) -> None: ...
