"""The supervised child process that hosts a runtime, so a native crash never takes the UI down.

Started once (spawn, not fork: the parent may be a threaded Textual app) and reused. Tokens cross
a Pipe with the child's monotonic timestamps. Cancel is a shared Event the child checks after every
token. If the pipe breaks, the parent raises `EngineCrashed` naming the signal and the next request
starts a fresh child. The child's stderr goes to a log file so llama.cpp never writes on the TUI.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from edgetui.engine.base import (
    EngineCrashed,
    EngineError,
    GenParams,
    ModelFileError,
    PromptTooLong,
    Stats,
    Token,
)

_ERRORS = {"ModelFileError": ModelFileError, "PromptTooLong": PromptTooLong}


@dataclass(frozen=True)
class EngineSpec:
    """What the child needs to load a model; plain data so it pickles across spawn."""

    model_path: str
    runtime: str = "llama"  # llama | onnx
    n_ctx: int = 2048
    n_threads: int | None = None
    n_batch: int = 512
    log_path: str | None = None
    state_dir: str | None = None  # where the llama.cpp runtime keeps KV states on disk (None: RAM only)
    extra: dict = field(default_factory=dict)


def _load_runtime(spec: EngineSpec):
    if spec.runtime == "llama":
        from edgetui.engine.llama_runtime import LlamaRuntime

        return LlamaRuntime(spec.model_path, spec.n_ctx, spec.n_threads, spec.n_batch, state_dir=spec.state_dir)
    if spec.runtime == "onnx":
        from edgetui.engine.onnx_runtime import OnnxRuntime

        return OnnxRuntime(spec.model_path, spec.n_ctx, spec.n_threads, **spec.extra)
    raise ModelFileError(f"unknown runtime {spec.runtime!r}: use 'llama' or 'onnx' in the bundle")


def _child_main(conn, cancel, spec: EngineSpec) -> None:
    if spec.log_path:
        fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C belongs to the parent
    try:
        rt = _load_runtime(spec)
    except Exception as e:  # report any load failure as data, then exit
        conn.send(("error", type(e).__name__, str(e)))
        return
    conn.send(("ready", {"n_ctx": rt.n_ctx, "name": rt.name, "pid": os.getpid()}))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            msg = ("close",)
        op = msg[0]
        if op == "close":
            rt.close()  # e.g. cached KV states still being written
            return
        try:
            if op == "tokenize":
                conn.send(("tokens", rt.tokenize(msg[1])))
            elif op == "generate":
                for event in rt.stream(msg[1], GenParams(**msg[2]), cancel.is_set):
                    conn.send(event)
            else:
                conn.send(("error", "EngineError", f"unknown op {op}"))
        except Exception as e:
            conn.send(("error", type(e).__name__, str(e)))


@contextlib.contextmanager
def _real_stdio():
    """Multiprocessing hands sys.stderr's fd to helper processes; a TUI (or pytest) may have
    replaced sys.stderr with an object without a real fd, so lend the original streams for the call."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _describe_exit(code: int | None) -> tuple[str, str | None]:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        if name == "SIGILL":  # a llama.cpp build with instructions this CPU lacks (e.g. AVX-512 on AMD)
            return (f"killed by {name}: llama-cpp-python was built for another CPU; rebuild it here with "
                    "`rm -f .venv/.llama-key && make setup`"), name
        return f"killed by {name}", name
    return f"exited with code {code}", None


class ProcessGeneration:
    """Iterates tokens from the child; `stats` is set when the stream ends."""

    def __init__(self, engine: ProcessEngine, t0: float):
        self._engine = engine
        self._t0 = t0
        self.stats: Stats | None = None
        self.text = ""
        self._done = False

    def cancel(self) -> None:
        self._engine._cancel.set()

    def __iter__(self) -> Iterator[Token]:
        first: float | None = None
        while not self._done:
            msg = self._engine._recv()
            kind = msg[0]
            if kind == "tok":
                tok = Token(msg[1], msg[3], msg[2])
                first = first or tok.t
                self.text += tok.text
                self._engine._publish(tok)
                yield tok
            elif kind == "done":
                self._done = True
                d = msg[1]
                ttft = ((first or time.monotonic()) - self._t0) * 1000
                d["token_times"] = tuple(d.get("token_times", ()))
                self.stats = Stats(ttft_ms=ttft, start=self._t0, **d)
                self._engine._finish(self)
            elif kind == "error":
                self._done = True
                self._engine._finish(self)
                raise _ERRORS.get(msg[1], EngineError)(msg[2])

    def drain(self) -> None:
        """Finish a stream the caller abandoned so the pipe is clean for the next request."""
        if not self._done:
            self.cancel()
            for _ in self:
                pass


class ProcessEngine:
    """An `Engine` whose runtime lives in a supervised child process."""

    def __init__(self, spec: EngineSpec, timeout_s: float | None = None):
        self.spec = spec
        self.timeout_s = timeout_s
        self.name = spec.runtime
        self.n_ctx = spec.n_ctx
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        with _real_stdio():
            self._cancel = self._ctx.Event()
        self._lock = threading.RLock()
        self._reap_lock = threading.Lock()  # _reap runs from close() and from a crashed stream's thread
        self._current: ProcessGeneration | None = None
        self.listeners: list[Callable[[object], None]] = []
        self.restarts = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def start(self) -> None:
        """Start the child and wait until the model is loaded (raises ModelFileError on a bad file)."""
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return
            if self.spec.runtime == "llama":
                from edgetui.engine.llama_runtime import check_gguf

                check_gguf(self.spec.model_path)
            parent, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(
                target=_child_main, args=(child, self._cancel, self.spec), daemon=True, name="edgetui-engine"
            )
            with _real_stdio():
                self._proc.start()
            child.close()
            self._conn = parent
            msg = self._recv(timeout=120)
            if msg[0] == "error":
                self._reap()
                raise _ERRORS.get(msg[1], EngineError)(msg[2])
            self.n_ctx = msg[1]["n_ctx"]

    def close(self) -> None:
        """Stop the child: cancel any stream, ask it to exit, kill it if it has not after 2 s."""
        with self._lock:
            if self._proc is None:
                return
            self._cancel.set()
            with contextlib.suppress(OSError, AttributeError):
                self._conn.send(("close",))
            self._proc.join(2)
            self._reap()

    def _reap(self) -> None:
        """Forget the child and its pipe, then kill and close them. Taking them under a lock first means
        two threads reaping at once (close() while a stream sees the crash) never close an fd twice."""
        with self._reap_lock:
            proc, conn = self._proc, self._conn
            self._proc, self._conn, self._current = None, None, None
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    # -- requests --------------------------------------------------------------------------
    def generate(self, prompt: str, params: GenParams | None = None) -> ProcessGeneration:
        params = params or GenParams()
        with self._lock:
            if self._current is not None:
                self._current.drain()
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    self.restarts += 1
                    self._reap()
                self.start()
            self._cancel.clear()
            t0 = time.monotonic()
            self._send(("generate", prompt, params.to_dict()))
            self._current = ProcessGeneration(self, t0)
            return self._current

    def tokenize(self, text: str) -> list[int]:
        with self._lock:
            if self._current is not None:
                self._current.drain()
            self.start()
            self._send(("tokenize", text))
            msg = self._recv()
            if msg[0] == "error":
                raise _ERRORS.get(msg[1], EngineError)(msg[2])
            return msg[1]

    def complete(self, prompt: str, params: GenParams | None = None) -> tuple[str, Stats]:
        """Convenience: run a request to the end and return (text, stats)."""
        g = self.generate(prompt, params)
        for _ in g:
            pass
        return g.text, g.stats

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, msg) -> None:
        try:
            self._conn.send(msg)
        except (OSError, BrokenPipeError):
            self._crashed()

    def _recv(self, timeout: float | None = None):
        timeout = timeout if timeout is not None else self.timeout_s
        try:
            if timeout is not None and not self._conn.poll(timeout):
                self._reap()  # kills the child
                raise EngineError(f"engine did not answer within {timeout:.0f} s: it was restarted")
            return self._conn.recv()
        except (EOFError, OSError, ConnectionResetError, AttributeError):  # AttributeError: reaped meanwhile
            self._crashed()

    def _crashed(self):
        proc = self._proc
        code = None
        if proc is not None:
            proc.join(5)
            code = proc.exitcode
        how, sig = _describe_exit(code)
        self._reap()
        self.restarts += 1
        raise EngineCrashed(f"engine process {how}; the next request starts a fresh one", sig, code)

    def _finish(self, g: ProcessGeneration) -> None:
        if self._current is g:
            self._current = None
        if g.stats is not None:
            self._publish(g.stats)

    def _publish(self, event: object) -> None:
        for cb in list(self.listeners):
            with contextlib.suppress(Exception):  # a listener must never break generation
                cb(event)
