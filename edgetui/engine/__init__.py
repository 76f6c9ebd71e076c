"""Runtimes behind one `Engine` protocol; native code lives in a supervised child process."""

from edgetui.engine.base import (
    Engine,
    EngineCrashed,
    EngineError,
    Generation,
    GenParams,
    ModelFileError,
    PromptTooLong,
    Stats,
    Token,
)

__all__ = [
    "Engine",
    "EngineCrashed",
    "EngineError",
    "GenParams",
    "Generation",
    "ModelFileError",
    "PromptTooLong",
    "Stats",
    "Token",
]
