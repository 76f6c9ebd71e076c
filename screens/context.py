"""What every screen shares: paths, database, active bundle and its engine, created once per app."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import sqlite_utils

from edgetui.config import Paths, paths
from edgetui.db import open_db
from edgetui.engine.process import ProcessEngine
from edgetui.ota.bundle import Bundle
from edgetui.session import active_bundle, engine_log


@dataclass
class AppContext:
    paths: Paths
    db: sqlite_utils.Database
    bundle: Bundle
    _engine: ProcessEngine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    services: dict = field(default_factory=dict)  # long-lived helpers (sampler, assistant) by name

    @classmethod
    def create(cls, p: Paths | None = None) -> AppContext:
        p = (p or paths()).ensure()
        return cls(p, open_db(p=p), active_bundle(p))

    @property
    def engine(self) -> ProcessEngine:
        """The one engine child for the active bundle, started lazily."""
        with self._lock:
            if self._engine is None:
                self._engine = self.bundle.engine(engine_log(self.paths))
            return self._engine

    def switch_bundle(self, bundle: Bundle) -> None:
        """Use a newly activated bundle: stop the old engine; the next request starts the new one."""
        with self._lock:
            if self._engine is not None:
                self._engine.close()
            self._engine = None
            self.bundle = bundle

    def close(self) -> None:
        for svc in self.services.values():
            stop = getattr(svc, "stop", None) or getattr(svc, "close", None)
            if stop:
                stop()
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None
