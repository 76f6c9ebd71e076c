"""KV states of prompt prefixes, kept in RAM under a byte budget and on disk in the data dir.

Every assistant prompt is (static instructions + the governing policy text) followed by the question. The
engine child evaluates that prefix once, saves the KV cells of the policy text (the instructions stay
resident; `LlamaRuntime._save_delta`), and splices them back for the next question with the same prefix
instead of evaluating it again: only the question's tail is recomputed. This is exact (the same cells the
evaluation would have written, at the same positions, after the same instructions).

A state is valid only for the model file, llama.cpp build, context size, batch size and the exact prefix
tokens that made it, so all of those go into the key (`CacheKey`), and a file records the key it was made
under. Files are written to a temporary name and renamed, so a killed process leaves no half-written
state under a real name; a file that is truncated, corrupt (sha256), or from another key is deleted and
treated as a miss, and the caller rebuilds it. Both tiers evict the least recently used state when over
their budget. Activating or rolling back a bundle calls `clear` (`invalidate` in the data dir).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

MAGIC = b"EDGETUI-KV1\n"
SUFFIX = ".kv"
DIR_NAME = "kv-cache"


@dataclass(frozen=True)
class CacheKey:
    """What a KV state depends on, besides the prefix tokens."""

    model: str  # the GGUF file: its path, size and modification time (a bundle never rewrites it)
    build: str  # llama.cpp version and system info: another build may lay the state out differently
    n_ctx: int
    n_batch: int

    def digest(self, tokens: list[int]) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        h.update(struct.pack(f"<{len(tokens)}i", *tokens))
        return h.hexdigest()


def cache_dir(home: Path) -> Path:
    return Path(home) / DIR_NAME


def invalidate(home: Path) -> int:
    """Delete every cached state under the data dir `home` (bundle activated or rolled back); returns the
    number of files removed."""
    return StateCache(cache_dir(home), None).clear()


class StateCache:
    """`get(digest)` / `put(digest, blob)` over RAM (an LRU under `ram_budget` bytes) and an optional
    directory (an LRU by modification time under `disk_budget` bytes)."""

    def __init__(self, root: Path | None, key: CacheKey | None, ram_budget: int = 64 << 20,
                 disk_budget: int = 256 << 20):
        self.root = Path(root) if root is not None else None
        self.key = key
        self.ram_budget, self.disk_budget = ram_budget, disk_budget
        self._ram: OrderedDict[str, bytes] = OrderedDict()
        self.problems: list[str] = []  # files found unusable (and deleted), for stats and tests
        self._writer: ThreadPoolExecutor | None = None  # one background writer: files in put() order
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    # -- RAM ---------------------------------------------------------------------------------------
    @property
    def ram_bytes(self) -> int:
        return sum(len(b) for b in self._ram.values())

    def _remember(self, digest: str, blob: bytes) -> None:
        self._ram[digest] = blob
        self._ram.move_to_end(digest)
        while self._ram and self.ram_bytes > self.ram_budget:
            self._ram.popitem(last=False)

    # -- disk --------------------------------------------------------------------------------------
    def _path(self, digest: str) -> Path:
        assert self.root is not None
        return self.root / f"{digest}{SUFFIX}"

    @property
    def disk_bytes(self) -> int:
        if self.root is None or not self.root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.root.glob(f"*{SUFFIX}"))

    def _read(self, digest: str) -> bytes | None:
        p = self._path(digest)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            self.problems.append(f"{p.name}: unreadable ({e.strerror})")
            return None
        blob = self._parse(raw, digest)
        if blob is None:
            with contextlib.suppress(OSError):
                p.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(p)  # most recently used: evicted last
        return blob

    def _parse(self, raw: bytes, digest: str) -> bytes | None:
        """The payload of a state file, or None (recorded in `problems`) when it cannot be trusted."""
        name = f"{digest[:12]}{SUFFIX}"
        if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 4:
            self.problems.append(f"{name}: not a state file")
            return None
        (n,) = struct.unpack_from("<I", raw, len(MAGIC))
        start = len(MAGIC) + 4
        try:
            head = json.loads(raw[start:start + n])
        except ValueError:
            self.problems.append(f"{name}: header unreadable (truncated)")
            return None
        payload = raw[start + n:]
        if head.get("key") != (asdict(self.key) if self.key else None) or head.get("digest") != digest:
            self.problems.append(f"{name}: made for another model, build or prefix")
            return None
        if head.get("size") != len(payload) or head.get("sha256") != hashlib.sha256(payload).hexdigest():
            self.problems.append(f"{name}: truncated or corrupt (sha256 mismatch)")
            return None
        return payload

    def _write(self, digest: str, blob: bytes) -> None:
        head = json.dumps({"key": asdict(self.key) if self.key else None, "digest": digest, "size": len(blob),
                           "sha256": hashlib.sha256(blob).hexdigest()}).encode()
        p = self._path(digest)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(MAGIC + struct.pack("<I", len(head)) + head + blob)
            os.replace(tmp, p)
        except OSError as e:  # a full disk costs the next process a recompute, never the answer
            self.problems.append(f"{p.name}: not written ({e.strerror})")
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._evict_disk()

    def _evict_disk(self) -> None:
        files = sorted(self.root.glob(f"*{SUFFIX}"), key=lambda q: q.stat().st_mtime)
        total = sum(q.stat().st_size for q in files)
        for q in files:
            if total <= self.disk_budget:
                break
            total -= q.stat().st_size
            with contextlib.suppress(OSError):
                q.unlink()

    # -- the cache ---------------------------------------------------------------------------------
    def get(self, digest: str) -> tuple[bytes | None, str]:
        """(the state, where it came from: "ram", "disk" or "miss")."""
        if digest in self._ram:
            self._ram.move_to_end(digest)
            return self._ram[digest], "ram"
        if self.root is not None:
            blob = self._read(digest)
            if blob is not None:
                self._remember(digest, blob)
                return blob, "disk"
        return None, "miss"

    def put(self, digest: str, blob: bytes, background: bool = False) -> None:
        """Keep a state; `background`: write its file on a worker thread (hashing and writing a few MiB
        would otherwise delay the answer that just made it), `flush` waits for it."""
        self._remember(digest, blob)
        if self.root is None or len(blob) > self.disk_budget:
            return
        if not background:
            self._write(digest, blob)
            return
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kv-cache-writer")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._writer.submit(self._write, digest, blob))

    def flush(self) -> None:
        """Wait until every background write is on disk (the engine child calls this before it exits)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def clear(self) -> int:
        """Forget every state, in RAM and on disk (leftover temporary files included)."""
        self._ram.clear()
        if self.root is None or not self.root.is_dir():
            return 0
        n = 0
        for q in list(self.root.glob(f"*{SUFFIX}")) + list(self.root.glob(".*.tmp")):
            with contextlib.suppress(OSError):
                q.unlink()
                n += 1
        return n
