"""The running product: data dir, database, the active bundle, its engine and its assistant.

Shared by the CLI and the TUI so both faces see the same state. `Session` holds them for one face (the
TUI keeps one for the app; a command can use `with Session() as s:`): each is created on first use, shared
by every thread, and closed once. First use of the active bundle builds the default bundle from its
recipe (`bundles/<default>/`, shipped in the wheel as package data) into the store and activates it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgetui.config import Paths, load_settings, paths, shipped_dir
from edgetui.ota.bundle import Bundle
from edgetui.ota.errors import Refused
from edgetui.ota.keys import Keyring
from edgetui.ota.manifest import Manifest
from edgetui.ota.recipe import build, load_recipe
from edgetui.ota.store import Store, StoreError

if TYPE_CHECKING:
    import sqlite_utils

    from edgetui.assistant.pipeline import Assistant
    from edgetui.engine.process import ProcessEngine
    from edgetui.telemetry.sampler import Sampler

RECIPES = shipped_dir("bundles")  # the checkout's bundles/, or the wheel's package data


def store(p: Paths | None = None) -> Store:
    return Store((p or paths()).ensure().store)


def ensure_default_bundle(p: Paths | None = None) -> Bundle:
    """Return the active bundle, building and activating the default recipe when there is none."""
    p = (p or paths()).ensure()
    st = Store(p.store)
    if st.active_ref() is not None:
        return st.active()
    name = load_settings(p).default_bundle
    recipe_dir = RECIPES / name
    version = load_recipe(recipe_dir)["version"]
    target = st.version_dir(name, version)
    if not (target / "manifest.json").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=p.store))
        try:
            try:
                m = build(recipe_dir, staging / "b")
            except Refused as e:  # the store stays as it was: nothing active, nothing half-built
                raise StoreError(f"the default bundle could not be built: {e}") from e
            sign_with_device_key(p, m).save(staging / "b" / "manifest.json")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            (staging / "b").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    st.set_active(name, version)
    _record_default_install(p, name, version)
    return st.active()


def sign_with_device_key(p: Paths, m: Manifest) -> Manifest:
    """The first-run bundle signed like every other installed bundle (POL-15 §5: bundles are installed only
    when signed and verified): by this device's key, created and trusted on first use."""
    keys = Keyring(p.keys)
    kid = keys.private_keys()[-1] if keys.private_keys() else keys.keygen(trust=True)
    return keys.sign(m, kid)


def _record_default_install(p: Paths, name: str, version: str) -> None:
    """Let the OTA history know about the first-run install when that part is present."""
    try:
        from edgetui.ota.history import record
    except ImportError:
        return
    record(p, "install", f"{name}@{version}", "default bundle built on first run")


def active_bundle(p: Paths | None = None) -> Bundle:
    from edgetui.ota.manager import recover_if_interrupted

    recover_if_interrupted((p or paths()).ensure())  # an activation a crash left uncommitted is undone
    try:
        return store(p).active()
    except StoreError:
        return ensure_default_bundle(p)


def engine_log(p: Paths | None = None) -> Path:
    return (p or paths()).ensure().home / "engine.log"


class Session:
    """Paths, database, store, the active bundle, its engine child, its Assistant and the telemetry sampler
    for one face of the product. Everything but the paths is created lazily (under one lock, so two threads
    never start two engines) and released once by `close()`.

    The Assistant serves the engine one request at a time, so every user of the active bundle's model in
    this process (the chat, an eval of the active bundle, a sustained run) goes through `assistant`.
    """

    def __init__(self, p: Paths | None = None, bundle: Bundle | None = None):
        self.paths = (p or paths()).ensure()
        self._bundle = bundle
        self._db: sqlite_utils.Database | None = None
        self._engine: ProcessEngine | None = None
        self._assistant: Assistant | None = None
        self._sampler: Sampler | None = None
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def open(cls, p: Paths | None = None) -> Session:
        """A session with the active bundle resolved now (the first run builds the default bundle here)."""
        s = cls(p)
        s.bundle  # noqa: B018 - resolved for its side effect
        return s

    # -- state ---------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        return Store(self.paths.store)

    @property
    def bundle(self) -> Bundle:
        """The active bundle (recovering an interrupted activation, building the default on first run)."""
        with self._lock:
            if self._bundle is None:
                self._bundle = active_bundle(self.paths)
            return self._bundle

    @property
    def db(self) -> sqlite_utils.Database:
        """The session's database connection (for the thread that drives the face; workers use `connect`)."""
        with self._lock:
            self._check_open()
            if self._db is None:
                from edgetui.db import open_db

                self._db = open_db(p=self.paths)
            return self._db

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite_utils.Database]:
        """A connection of its own for a worker thread's transactions, closed when the block ends."""
        from edgetui.db import open_db

        db = open_db(p=self.paths)
        try:
            yield db
        finally:
            db.conn.close()

    @property
    def engine(self) -> ProcessEngine:
        """The one engine child for the active bundle (created here, started on its first request)."""
        with self._lock:
            self._check_open()
            if self._engine is None:
                self._engine = self.bundle.engine(engine_log(self.paths))
            return self._engine

    @property
    def engine_if_created(self) -> ProcessEngine | None:
        """The engine when one exists, without creating it (to follow a bundle switch)."""
        return self._engine

    @property
    def assistant(self) -> Assistant:
        """The one Assistant for the active bundle on `engine` (rebuilt after a bundle switch)."""
        with self._lock:
            self._check_open()
            if self._assistant is None:
                from edgetui.assistant.pipeline import Assistant

                self._assistant = Assistant(self.bundle, self.engine)
            return self._assistant

    @assistant.setter
    def assistant(self, assistant: Assistant) -> None:
        with self._lock:
            self._assistant = assistant

    def ask(self, question: str, cancel: threading.Event | None = None, **kw):
        """`assistant.ask`: the `ask(question, cancel)` an eval runner takes for the active bundle."""
        return self.assistant.ask(question, cancel=cancel, **kw)

    @property
    def sampler(self) -> Sampler:
        """The telemetry sampler (not started here); it keeps sampling while the TUI shows another screen."""
        with self._lock:
            self._check_open()
            if self._sampler is None:
                from edgetui.telemetry.sampler import Sampler
                from edgetui.telemetry.sensors import Sensors

                self._sampler = Sampler(Sensors(), hz=load_settings(self.paths).sample_hz, db_path=self.paths.db)
            return self._sampler

    @sampler.setter
    def sampler(self, sampler: Sampler) -> None:
        with self._lock:
            self._sampler = sampler

    # -- changes -------------------------------------------------------------------------------
    def switch_bundle(self, bundle: Bundle) -> None:
        """Use a newly activated bundle: stop the old engine; the next request starts the new one."""
        with self._lock:
            engine, self._engine, self._assistant, self._bundle = self._engine, None, None, bundle
        if engine is not None:
            engine.close()

    def close_engine(self) -> None:
        """Stop the engine child now (a CLI command that has its answer gives the model's memory back);
        the next request would start a new one."""
        with self._lock:
            engine, self._engine, self._assistant = self._engine, None, None
        if engine is not None:
            engine.close()

    def close(self) -> None:
        """Stop the sampler, the engine child and the database connection; a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sampler, engine, db = self._sampler, self._engine, self._db
            self._sampler = self._engine = self._assistant = self._db = None
        if sampler is not None:
            sampler.stop()
        if engine is not None:
            engine.close()
        if db is not None:
            db.conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this session is closed")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
