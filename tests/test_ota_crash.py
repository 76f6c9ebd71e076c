"""Crash safety: SIGKILL at every step, an I/O error at every step and at every write.

After each, the store has exactly one active bundle that fully verifies (the old one or the new
one, never a mix), recovery leaves no scratch behind, and a retried operation succeeds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
from pathlib import Path

import pytest
from ota_fixtures import assert_one_active_verifying, committed_store, make_bundle_dir, make_ota, store_snapshot, tar_of

from edgetui.config import Paths
from edgetui.ota.steps import hooked
from edgetui.ota.store import Store

OLD, NEW = "demo@1.0.0", "demo@1.1.0"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A data dir with OLD active and committed, and a signed archive of NEW beside it."""
    root = tmp_path_factory.mktemp("crash")
    home = Paths(root / "home").ensure()
    kr = committed_store(home, root / "src")
    new_tar = tar_of(make_bundle_dir(root / "src", "demo", "1.1.0", keyring=kr))
    return root, home, new_tar


def fresh_copy(home: Paths, tmp_path: Path, name: str) -> Paths:
    dst = tmp_path / name
    shutil.copytree(home.home, dst)
    return Paths(dst)


def nth_call_raises(n: int, exc: Exception):
    calls = [0]

    def hook(_name) -> None:
        calls[0] += 1
        if calls[0] == n:
            raise exc

    return hook


def run_op(home: Paths, op: str, arg: Path | None, keep: int | None = None) -> None:
    ota = make_ota(home, keep_versions=keep)
    if op == "install":
        out = ota.install(arg, activate=True, smoke=True)
        assert out.ok, out.message
    elif op == "rollback":
        ota.rollback()


def steps_of(home: Paths, op: str, arg, keep=None) -> list[str]:
    names: list[str] = []
    with hooked(names.append):
        run_op(home, op, arg, keep)
    return names


def _child(home_dir: str, op: str, arg, keep, kill_at: int) -> None:
    seen = [0]

    def hook(name: str) -> None:
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    with hooked(hook):
        run_op(Paths(Path(home_dir)), op, arg, keep)
    os._exit(3)  # reaching the end means the kill point was never hit


def killed_at(home: Paths, op: str, arg, keep, i: int) -> None:
    p = mp.get_context("fork").Process(target=_child, args=(str(home.home), op, arg, keep, i))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL, f"step {i}: child exited with {p.exitcode}"


@pytest.mark.parametrize("keep", [2, 0], ids=["keep-2", "keep-0-prunes"])
def test_install_and_activation_killed_at_every_step_leave_one_verifying_bundle(base, tmp_path, keep):
    _, _, new_tar = base
    names = steps_of(fresh_copy(base[1], tmp_path, "probe"), "install", new_tar, keep)
    assert any(n.startswith("staged ") for n in names) and "staging: renamed" in names
    assert "ACTIVE: renamed" in names and "STATE: renamed" in names
    for i in range(1, len(names) + 1):
        home = fresh_copy(base[1], tmp_path, f"kill-{i}")
        killed_at(home, "install", new_tar, keep, i)
        assert_one_active_verifying(home, {OLD, NEW})
        ota = make_ota(home, keep_versions=keep)
        ota.recover()
        active = assert_one_active_verifying(home, {OLD, NEW})
        st = Store(home.store)
        assert st.leftovers() == [], f"after step {i} ({names[i - 1]})"
        if active == NEW:  # only a committed activation survives recovery
            assert st.state().status(NEW) == "good", f"after step {i} ({names[i - 1]})"
        out = ota.install(new_tar, activate=True, smoke=True)  # a retried install succeeds
        assert out.ok, f"retry after step {i} ({names[i - 1]}): {out.message}"
        assert assert_one_active_verifying(home, {NEW}) == NEW
        assert st.state().status(NEW) == "good" and st.state().floor["demo"] == "1.1.0"
        shutil.rmtree(home.home)


def test_rollback_killed_at_every_step_leaves_one_verifying_bundle(base, tmp_path):
    _, _, new_tar = base
    start = fresh_copy(base[1], tmp_path, "start")
    run_op(start, "install", new_tar)
    names = steps_of(fresh_copy(start, tmp_path, "probe"), "rollback", None)
    assert "ACTIVE: renamed" in names
    for i in range(1, len(names) + 1):
        home = fresh_copy(start, tmp_path, f"kill-{i}")
        killed_at(home, "rollback", None, None, i)
        assert_one_active_verifying(home, {OLD, NEW})
        ota = make_ota(home)
        ota.recover()  # a rollback whose intent was saved is completed
        if assert_one_active_verifying(home, {OLD, NEW}) == NEW:
            assert ota.rollback().ok
        assert assert_one_active_verifying(home, {OLD}) == OLD
        st = Store(home.store).state()
        assert st.status(NEW) == "rolled-back" and st.last_good == OLD and st.trial is None
        shutil.rmtree(home.home)


def test_an_io_error_at_any_step_leaves_the_store_consistent_and_a_retry_succeeds(base, tmp_path):
    _, _, new_tar = base
    names = steps_of(fresh_copy(base[1], tmp_path, "probe"), "install", new_tar)
    for i in range(1, len(names) + 1):
        home = fresh_copy(base[1], tmp_path, f"fail-{i}")
        with hooked(nth_call_raises(i, OSError(28, "No space left on device (injected)"))), \
                pytest.raises(OSError, match="injected"):
            run_op(home, "install", new_tar)
        assert_one_active_verifying(home, {OLD, NEW})
        ota = make_ota(home)
        ota.recover()
        assert Store(home.store).leftovers() == []
        assert ota.install(new_tar, activate=True, smoke=True).ok
        assert assert_one_active_verifying(home, {NEW}) == NEW
        shutil.rmtree(home.home)


def test_the_nth_write_failing_leaves_the_store_unchanged(base, tmp_path):
    _, _, new_tar = base
    writes = [0]

    def counting(f, data):
        writes[0] += 1
        f.write(data)

    make_ota(fresh_copy(base[1], tmp_path, "probe"), write=counting).install(new_tar)
    assert writes[0] >= 6  # five payload files and the manifest
    for n in range(1, writes[0] + 1):
        home = fresh_copy(base[1], tmp_path, f"write-{n}")
        before = store_snapshot(home)
        fail = nth_call_raises(n, OSError(5, "Input/output error (injected)"))

        def failing(f, data, fail=fail):
            fail(None)
            f.write(data)

        with pytest.raises(OSError, match="injected"):
            make_ota(home, write=failing).install(new_tar, activate=True)
        assert store_snapshot(home) == before, f"write {n}"
        assert make_ota(home).install(new_tar, activate=True).ok
        assert assert_one_active_verifying(home, {NEW}) == NEW
        shutil.rmtree(home.home)
