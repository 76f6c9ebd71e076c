"""The sampler: a background thread that reads the sensors at a fixed rate (default 2 Hz), measures the
engine's decode speed from its token timestamps, tracks throttle events, writes every sample to SQLite and
hands the latest to subscribers.

It never dies of a sensor: a reading that raises is counted in `errors` and the next tick goes on.
`hz=0` makes a manual sampler (no thread; call `sample_once`), which tests and benchmarks use.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from edgetui.engine.base import Stats, Token
from edgetui.telemetry.sample import Sample
from edgetui.telemetry.sensors import Sensors
from edgetui.telemetry.storage import TelemetryStore
from edgetui.telemetry.throttle import ThrottleEvent, ThrottleRules, ThrottleTracker

MAX_INTERVAL_S = 60.0  # a longer "interval" spans two requests (one ended without stats): not decoding


class DecodeMeter:
    """An engine listener that turns token timestamps into decode intervals (see verdict.py).

    Live (default): intervals from the Token events as they stream, trimmed to the last `keep_s` seconds.
    `exact=True` (a sustained run): intervals from each request's final `Stats.token_times` — every token
    the engine decoded, stop-string pieces included, the same tokens `Stats.decode_tps` counts — kept whole.
    """

    def __init__(self, keep_s: float | None = 30.0, exact: bool = False):
        self.keep_s = None if exact else keep_s
        self.exact = exact
        self.intervals: deque[tuple[float, float]] = deque()
        self.tokens = 0
        self.ttft_ms: float | None = None
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self, event: object) -> None:
        with self._lock:
            if isinstance(event, Token) and not self.exact:
                self.tokens += 1
                if self._last is not None and 0 <= event.t - self._last <= MAX_INTERVAL_S:
                    self.intervals.append((self._last, event.t))
                self._last = event.t
                if self.keep_s is not None:
                    while self.intervals and self.intervals[0][1] < event.t - self.keep_s:
                        self.intervals.popleft()
            elif isinstance(event, Stats):
                self._last = None
                self.ttft_ms = event.ttft_ms
                if self.exact:
                    times = event.token_times
                    self.tokens += len(times)
                    self.intervals.extend(zip(times, times[1:], strict=False))

    def rate(self, now: float, window_s: float) -> float:
        """Decode tokens/s of the intervals that ended in the last `window_s` seconds (0 when idle)."""
        n, busy = 0, 0.0
        with self._lock:
            for a, b in reversed(self.intervals):
                if b < now - window_s:
                    break
                n, busy = n + 1, busy + (b - a)
        return n / busy if n and busy > 0 else 0.0

    def snapshot(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self.intervals)


class Sampler:
    def __init__(self, sensors: Sensors | None = None, hz: float = 2.0, db_path: Path | None = None,
                 window_s: float = 5.0, history_s: float = 600.0, rules: ThrottleRules = ThrottleRules(),
                 clock: Callable[[], float] = time.time):
        self.sensors = sensors or Sensors()
        self.hz = hz
        self.db_path = db_path
        self.window_s = window_s
        self.clock = clock
        self.tracker = ThrottleTracker(rules)
        self.meter = DecodeMeter(keep_s=max(window_s, 30.0))
        self.history: deque[Sample] = deque(maxlen=max(1, int(history_s * (hz or 2))))
        self.latest: Sample | None = None
        self.run_id: int | None = None
        self.errors = 0
        self.last_error: str | None = None
        self.cpu_s = 0.0  # CPU time the sampler thread has used
        self._engine = None
        self._subs: list[Callable[[Sample], None]] = []
        self._store: TelemetryStore | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- wiring ----------------------------------------------------------------------------
    def attach(self, engine) -> None:
        """Listen to an engine's tokens (tokens/s, TTFT) and read its child's RSS. Idempotent."""
        if engine is self._engine:
            return
        self.detach()
        engine.listeners.append(self.meter)
        self._engine = engine

    def detach(self) -> None:
        if self._engine is not None:
            with contextlib.suppress(ValueError):
                self._engine.listeners.remove(self.meter)
            self._engine = None

    def subscribe(self, cb: Callable[[Sample], None]) -> Callable[[], None]:
        """Call `cb(sample)` (from the sampler thread) after every tick; returns the unsubscribe function."""
        self._subs.append(cb)
        return lambda: self._subs.remove(cb) if cb in self._subs else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- sampling --------------------------------------------------------------------------
    def sample_once(self) -> Sample:
        with self._lock:
            engine = self._engine
            reading = self.sensors.read(pid=getattr(engine, "pid", None) if engine else None)
            t = self.clock()
            opened, closed = self.tracker.update(reading, t)
            tps = self.meter.rate(time.monotonic(), self.window_s) if engine is not None else None
            s = Sample.from_reading(reading, t, tps, self.meter.ttft_ms, self.tracker.active, self.run_id)
            self._save(s, opened, closed)
            self.latest = s
            self.history.append(s)
        for cb in list(self._subs):
            with contextlib.suppress(Exception):  # a subscriber must never stop the sampler
                cb(s)
        return s

    def _save(self, s: Sample, opened: list[ThrottleEvent], closed: list[ThrottleEvent]) -> None:
        if self.db_path is None:
            return
        if self._store is None:
            self._store = TelemetryStore.open(self.db_path)
            self._store.db.execute("PRAGMA synchronous=NORMAL")  # WAL: safe, one fsync per checkpoint
            self._store.prune(s.t)
        self._store.add_sample(s)
        for ev in opened:
            self._store.open_event(ev, self.run_id)
        for ev in closed:
            self._store.close_event(ev)

    def _loop(self) -> None:
        period = 1.0 / self.hz
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception as e:  # a broken sensor or a locked database: count it, keep sampling
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
            self.cpu_s = time.thread_time()
            due += period
            wait = due - time.monotonic()
            if wait < 0:  # fell behind (suspended laptop, busy machine): do not burst to catch up
                due, wait = time.monotonic(), 0.0
            self._stop.wait(wait)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sampler:
        if self.hz > 0 and not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="edgetui-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.detach()
        with self._lock:
            ended = self.tracker.close_all(self.latest.t if self.latest else self.clock())
            if self._store is not None:
                for ev in ended:  # nobody watches after this: an open event ends at the last sample
                    self._store.close_event(ev)
                self._store.db.conn.close()
                self._store = None
        self.sensors.close()

    close = stop
