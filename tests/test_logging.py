"""The log (`edgetui/log.py`): a rotating file in the data dir, DEBUG on stderr with `-v`, metadata only.

An answer can quote a confidential policy section, so `edgetui ask` logs what happened (abstained,
citation ids, timings) and never the question or the answer.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgetui import log as edgetui_log
from edgetui.assistant.corpus import load_corpus
from edgetui.config import Paths

REPO = Path(__file__).resolve().parent.parent
QUESTION = "What does Kessel Drives charge per hour?"


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGETUI_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "edgetui", *args], capture_output=True, text=True,
                          env=env, timeout=240, cwd=REPO)


@pytest.fixture
def own_home(bundle_home, tmp_path) -> Paths:
    """A fresh data dir (its own log and database) sharing the built store of `bundle_home`."""
    d = tmp_path / "home"
    d.mkdir()
    (d / "store").symlink_to(bundle_home.store, target_is_directory=True)
    return Paths(d)


@pytest.fixture
def restore_logging():
    yield
    edgetui_log.reset()


@pytest.mark.model
def test_ask_logs_its_outcome_and_no_confidential_sentence(own_home, bundle):
    r = run_cli(own_home.home, "--verbose", "ask", QUESTION)
    assert r.returncode == 0, r.stderr
    log_file = edgetui_log.log_file(own_home)
    assert log_file.is_file()
    text = log_file.read_text(encoding="utf-8")
    ask_lines = [line for line in text.splitlines() if "edgetui.assistant.cli" in line and "ask on " in line]
    assert len(ask_lines) == 1, text
    assert "citations=" in ask_lines[0] and "answer_ms=" in ask_lines[0]
    assert "ask exited with code 0" in text
    assert "ask on " in r.stderr  # --verbose: the same lines on stderr
    confidential = [s for s in load_corpus(bundle.corpus_dir) if s.confidential]
    assert {s.doc_id for s in confidential} >= {"POL-07", "POL-16"}
    cited = ask_lines[0].split("citations=")[1].split()[0].split(",")
    assert any(c.startswith(("POL-07", "POL-16")) for c in cited), ask_lines[0]  # it did draw on one
    assert QUESTION not in text and QUESTION not in r.stderr
    for s in confidential:
        for sentence in s.sentences:
            assert sentence not in text, f"{s.id} sentence in the log file: {sentence!r}"
            assert sentence not in r.stderr, f"{s.id} sentence on stderr: {sentence!r}"


def test_an_unusable_data_dir_only_loses_the_log_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "logs").write_text("not a directory")
    r = run_cli(home, "-v", "ask", "")  # bad input: exit 2, before any model is loaded
    assert r.returncode == 2, r.stderr
    assert "the question is empty" in r.stderr and "Traceback" not in r.stderr
    assert "ask exited with code 2" in r.stderr  # stderr still gets the log with -v


def test_setup_is_repeatable_and_rotates(tmp_path, restore_logging):
    p = Paths(tmp_path / "a")
    path = edgetui_log.setup(False, p)
    assert path == tmp_path / "a" / "logs" / "edgetui.log"
    logging.getLogger("edgetui.test").info("first")
    path2 = edgetui_log.setup(False, Paths(tmp_path / "b"))  # replaces the first set-up, no double lines
    logging.getLogger("screens.test").info("second")
    assert "first" in path.read_text() and "second" not in path.read_text()
    assert path2.read_text().count("second") == 1
    handler = next(h for h in logging.getLogger("edgetui").handlers if isinstance(h, logging.FileHandler))
    assert handler.maxBytes == edgetui_log.MAX_BYTES and handler.backupCount == edgetui_log.BACKUPS
    assert edgetui_log.setup(False, Paths(tmp_path / "a" / "logs" / "edgetui.log")) is None  # a file as data dir
    logging.getLogger("edgetui.test").warning("nowhere to go")  # no handler error, no crash
