"""The OTA operations, each under the store lock: install, activate, rollback, prune, delete, verify.

Activation is a trial until committed: STATE records the trial, ACTIVE is swapped, the smoke gate
runs (when asked), and only then is the version marked good and the anti-rollback floor raised.
A failed gate swaps ACTIVE back; a crash mid-trial is undone by `recover()`, which every operation
runs first. At no instant does ACTIVE name anything but a complete, verified version directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from edgetui.assistant import payload as assistant_payload
from edgetui.config import Paths, load_settings
from edgetui.ota import history, install
from edgetui.ota.archive import open_source, payload_problem
from edgetui.ota.bundle import Bundle
from edgetui.ota.errors import Busy, Refused
from edgetui.ota.keys import Keyring
from edgetui.ota.manifest import MANIFEST_NAME, Manifest, verify_files, version_key
from edgetui.ota.smoke import SmokeResult, SmokeRunner
from edgetui.ota.store import State, Store, prune_plan, split_ref

Fingerprinter = Callable[[Bundle], str]
SmokeFn = Callable[[Bundle, Paths, "Bundle | None", float], SmokeResult]
Progress = Callable[[str, int, int], None]  # (phase, bytes done, bytes total)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    action: str
    ref: str | None
    active: str | None
    message: str
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _default_write(f: BinaryIO, data: bytes) -> None:
    f.write(data)


class Ota:
    """One device's bundle store, keys and history. Every hook is injectable for tests."""

    def __init__(self, paths: Paths, *, fingerprint: Fingerprinter | None = None, smoke: SmokeFn | None = None,
                 free_bytes: Callable[[Path], int] | None = None, now: Callable[[], str] | None = None,
                 keep_versions: int | None = None, smoke_timeout_s: float | None = None,
                 write: Callable[[BinaryIO, bytes], object] | None = None):
        self.paths = paths.ensure()
        self.store = Store(self.paths.store)
        self.keyring = Keyring(self.paths.keys)
        settings = load_settings(self.paths)
        self.keep_versions = settings.keep_versions if keep_versions is None else keep_versions
        self.smoke_timeout_s = smoke_timeout_s or float(settings.extra.get("smoke_timeout_s", 900))
        self._fingerprint = fingerprint
        self._smoke = smoke or SmokeRunner()
        self._free = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self.now = now or history.now_iso
        self._write = write or _default_write
        self._lock_wait_s = 10.0

    # -- helpers -----------------------------------------------------------------------------
    def fingerprint(self, bundle: Bundle) -> str:
        if self._fingerprint is not None:
            return self._fingerprint(bundle)
        from edgetui.ota.fingerprint import compute

        return compute(bundle, self.paths.home / "engine.log")

    def record(self, event: str, ref: str | None, reason: str = "", **kw) -> None:
        history.record(self.paths, event, ref, reason, at=self.now(), **kw)

    def _locked(self, hint: list, fn, *a, **kw):
        """Run an operation under the store lock after recovery; record a refusal (naming the
        bundle, `hint[0]`) in the history and re-raise it."""
        with self.store.lock(self._lock_wait_s):
            self._recover()
            try:
                return fn(*a, **kw)
            except Refused as e:
                self.record("refuse", hint[0], str(e), ok=False)
                raise

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> str | None:
        with self.store.lock(self._lock_wait_s):
            return self._recover()

    def _recover(self) -> str | None:
        """Undo an activation a crash left uncommitted; remove staging and trash leftovers."""
        st = self.store.state()
        note = None
        if st.trial and st.trial.get("kind") == "rollback":  # the operator's intent: finish it
            ref, prev = st.trial["ref"], st.trial.get("previous")
            if self.store.is_installed(ref):
                if self.store.active_ref_str() != ref:
                    self.store.set_active(*split_ref(ref))
                note = f"rollback from {prev} to {ref} was interrupted: completed"
                self._finish_rollback(st, prev, ref, note)
            else:
                st.trial = None
                self.store.save_state(st)
        elif st.trial:
            ref, prev = st.trial["ref"], st.trial.get("previous")
            if self.store.active_ref_str() == ref and prev and self.store.is_installed(prev):
                self.store.set_active(*split_ref(prev))
                note = f"activation of {ref} was interrupted before its commit: back to {prev}"
                self.record("auto-rollback", prev, note, ok=False, from_ref=ref)
            if st.status(ref) == "trial":
                st.entry(ref)["status"] = "interrupted"
            st.trial = None
            self.store.save_state(st)
        self.store.cleanup()
        return note

    # -- install -----------------------------------------------------------------------------
    def install(self, source: Path, *, activate: bool = False, smoke: bool = False, allow_unsigned: bool = False,
                progress: Progress | None = None) -> Outcome:
        hint: list = [str(source)]
        return self._locked(hint, self._install, source, hint, activate, smoke, allow_unsigned, progress)

    def _install(self, source: Path, hint: list, activate: bool, smoke: bool, allow_unsigned: bool,
                 progress: Progress | None) -> Outcome:
        src = open_source(source)
        try:
            m = Manifest.parse(src.manifest_bytes(), f"{src.label}: {MANIFEST_NAME}")
            hint[0] = m.ref
            sig = self.keyring.check(m, allow_unsigned)
            install.check_min_edgetui(m)
            st = self.store.state()
            reused = self._reuse_existing(m)
            if reused:  # same manifest as the installed copy: its bytes must be the same too
                src.check_members(m)
                if problem := payload_problem(src, m):
                    raise Refused(f"{m.ref} is installed, but this copy is not the same bundle: {problem}")
            if not reused:
                install.check_not_downgrade(m, st)
                src.check_members(m)
                others = self.store.refs()
                install.check_disk(m, self._free(self.store.root), self.store.root, self.store.disk_usage(others),
                                   max(len(others) - 1, 0))
                self._stage_and_move_in(src, m, progress)
            entry = st.entry(m.ref)
            if not reused or "installed_at" not in entry:
                entry.update(status="installed", installed_at=self.now(), signer=sig.signer, unsigned=sig.unsigned,
                             digest=m.digest(), size=m.total_size, verified={"at": self.now(), "ok": True})
                self.store.save_state(st)
                why = "unsigned, allowed by --allow-unsigned" if sig.unsigned else f"signed by {sig.signer}"
                self.record("install", m.ref, f"installed from {source.name} ({why})",
                             detail={"signer": sig.signer, "unsigned": sig.unsigned, "digest": m.digest()})
        finally:
            src.close()
        msg = f"{m.ref} already installed" if reused else f"installed {m.ref}"
        if not activate:
            return Outcome(True, "install", m.ref, self.store.active_ref_str(), msg)
        out = self._activate(m.ref, smoke=smoke, checked=not reused, progress=progress)
        return Outcome(out.ok, "install", m.ref, out.active, f"{msg}; {out.message}", out.detail)

    def _reuse_existing(self, m: Manifest) -> bool:
        """True when this exact bundle is already installed intact (a retried install)."""
        if not self.store.is_installed(m.ref):
            return False
        b = self.store.get_ref(m.ref)
        if b.manifest.digest() != m.digest():
            raise Refused(f"{m.ref}: conflicting bundle: a different {m.ref} is already installed "
                          "(a new build needs a new version)")
        if not b.verify():
            return True
        if m.ref in (self.store.active_ref_str(), self.store.state().last_good):
            raise Refused(f"{m.ref}: the installed copy is damaged and in use: roll back first, then reinstall")
        self.store.remove_version(m.name, m.version)  # damaged and unused: install it afresh
        return False

    def _stage_and_move_in(self, src, m: Manifest, progress: Progress | None) -> None:
        staging = self.store.new_staging()
        total, done = m.total_size, [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress:
                progress("install", done[0], total)

        try:
            install.stage(src, m, staging, self._write, tick)
            if progress:
                progress("fingerprint", 0, 0)
            install.check_fingerprint(m, self.fingerprint(Bundle(staging, m)))
            why = assistant_payload.problem(staging)
            if why:
                raise Refused(f"{m.ref} cannot be installed: {why}")
            self.store.move_in(staging, m.name, m.version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- activation --------------------------------------------------------------------------
    def activate(self, ref: str, *, smoke: bool = False, progress: Progress | None = None) -> Outcome:
        return self._locked([ref], self._activate, ref, smoke=smoke, progress=progress)

    def _activate(self, ref: str, smoke: bool = False, checked: bool = False,
                  progress: Progress | None = None) -> Outcome:
        tell = progress or (lambda phase, done, total: None)
        name, version = split_ref(ref)
        b = self.store.get_ref(ref)
        st = self.store.state()
        prev = self.store.active_ref_str()
        if prev == ref and st.status(ref) == "good":
            return Outcome(True, "activate", ref, ref, f"{ref} is already active")
        floor = st.floor.get(name)
        if floor and version_key(version) < version_key(floor):
            raise Refused(f"{ref} is older than the committed {name}@{floor} (anti-rollback): to go back to a "
                          f"kept version use `edgetui bundle rollback {ref}`")
        self.keyring.check(b.manifest, allow_unsigned=bool(st.entry(ref).get("unsigned")))
        install.check_min_edgetui(b.manifest)
        if not checked:  # fresh installs were verified and fingerprinted in staging just now
            total, done = b.manifest.total_size, [0]

            def tick(n: int) -> None:
                done[0] += n
                tell("verify", done[0], total)

            problems = verify_files(b.root, b.manifest, tick)
            if problems:
                raise Refused(f"{ref} does not verify: {problems[0]}" + (f" (+{len(problems) - 1} more)"
                                                                           if len(problems) > 1 else ""))
            tell("fingerprint", 0, 0)
            install.check_fingerprint(b.manifest, self.fingerprint(b))
        why = assistant_payload.problem(b.root)
        if why:
            raise Refused(f"{ref} cannot be activated: {why}")
        st.trial = {"ref": ref, "previous": prev, "since": self.now(), "kind": "activate"}
        st.entry(ref)["status"] = "trial"
        self.store.save_state(st)
        try:
            self.store.set_active(name, version)
            self.record("activate", ref, "trial: smoke gate next" if smoke else "by the operator", from_ref=prev)
            detail: dict = {}
            if smoke:
                tell("smoke", 0, 0)
                res = self._run_smoke(b, st, prev)
                detail["smoke"] = res.to_dict()
                st.entry(ref)["smoke"] = {**res.to_dict(), "at": self.now()}
                if not res.passed:
                    return self._undo_trial(st, ref, prev, "; ".join(res.reasons) or "smoke gate failed", detail)
        except BaseException:
            self._undo_quietly(ref, prev)
            raise
        entry = st.entry(ref)  # commit: one STATE rename (a crash before it is undone by recover())
        entry["status"] = "good"
        entry.pop("reason", None)
        st.raise_floor(name, version)
        st.last_good, st.trial = ref, None
        st.activated(ref)
        self.store.save_state(st)
        self.record("commit", ref, "smoke gate passed" if smoke else "activated by the operator", from_ref=prev,
                     detail=detail)
        detail["pruned"] = self._prune()
        return Outcome(True, "activate", ref, ref, f"{ref} is active" + (" (smoke gate passed)" if smoke else ""),
                       detail)

    def _run_smoke(self, b: Bundle, st: State, prev: str | None) -> SmokeResult:
        baseline = None
        for cand in (st.last_good, prev):
            if cand and cand != b.ref and self.store.is_installed(cand):
                baseline = self.store.get_ref(cand)
                break
        try:
            return self._smoke(b, self.paths, baseline, self.smoke_timeout_s)
        except Exception as e:  # an injected or in-process gate that raises is a failure, not a crash
            return SmokeResult(False, (f"smoke eval raised {type(e).__name__}: {e}",))

    def _undo_trial(self, st: State, ref: str, prev: str | None, reason: str, detail: dict) -> Outcome:
        entry = st.entry(ref)
        entry.update(status="bad", reason=reason)
        st.trial = None
        if prev and prev != ref and self.store.is_installed(prev):
            self.store.set_active(*split_ref(prev))
            self.store.save_state(st)
            self.record("auto-rollback", prev, f"{ref} failed its smoke gate: {reason}", ok=False, from_ref=ref,
                         detail=detail)
            return Outcome(False, "activate", ref, prev, f"{ref} failed its smoke gate ({reason}): rolled back to "
                           f"{prev}", detail)
        self.store.save_state(st)
        self.record("smoke-failed", ref, f"{reason}; no previous version to roll back to", ok=False, detail=detail)
        return Outcome(False, "activate", ref, ref, f"{ref} failed its smoke gate ({reason}); no previous version "
                       "to roll back to, so it stays active, marked bad", detail)

    def _undo_quietly(self, ref: str, prev: str | None) -> None:
        """After an unexpected error mid-trial: put the pointer back (recover() finishes the job)."""
        try:
            if prev and self.store.active_ref_str() == ref and self.store.is_installed(prev):
                self.store.set_active(*split_ref(prev))
            st = self.store.state()
            if st.trial and st.trial.get("ref") == ref:
                st.entry(ref)["status"] = "interrupted"
                st.trial = None
                self.store.save_state(st)
        except Exception:
            pass

    # -- rollback, prune, delete -------------------------------------------------------------
    def rollback(self, ref: str | None = None) -> Outcome:
        return self._locked([ref], self._rollback, ref)

    def rollback_target(self, st: State | None = None) -> str | None:
        return (st or self.store.state()).rollback_target(self.store.active_ref_str(), set(self.store.refs()))

    def _rollback(self, ref: str | None) -> Outcome:
        st = self.store.state()
        cur = self.store.active_ref_str()
        target = ref or self.rollback_target(st)
        if target is None:
            raise Refused(f"nothing to roll back to: no earlier good version than {cur or '(none active)'} "
                          "is kept in the store")
        if target == cur:
            return Outcome(True, "rollback", target, cur, f"{target} is already active")
        b = self.store.get_ref(target)
        if st.status(target) == "bad":
            raise Refused(f"{target} failed its smoke gate ({st.entry(target).get('reason', '')}): "
                          "not a rollback target")
        problems = verify_files(b.root, b.manifest, hash_files=False)  # a stat per file: rollback stays instant
        if problems:
            raise Refused(f"{target} does not verify: {problems[0]}: not a rollback target")
        self.keyring.check(b.manifest, allow_unsigned=bool(st.entry(target).get("unsigned")))
        st.trial = {"ref": target, "previous": cur, "since": self.now(), "kind": "rollback"}
        self.store.save_state(st)  # the intent first: a crash after this point completes the rollback
        self.store.set_active(b.name, b.version)
        self._finish_rollback(st, cur, target, "operator rollback")
        return Outcome(True, "rollback", target, target, f"rolled back from {cur} to {target}")

    def _finish_rollback(self, st: State, cur: str | None, target: str, reason: str) -> None:
        if cur and cur != target:
            st.entry(cur)["status"] = "rolled-back"
        st.entry(target)["status"] = "good"
        st.last_good, st.trial = target, None
        st.activated(target)
        self.store.save_state(st)
        self.record("rollback", target, reason, from_ref=cur)

    def prune(self, keep: int | None = None) -> Outcome:
        removed = self._locked([None], self._prune, keep)
        return Outcome(True, "prune", None, self.store.active_ref_str(),
                       f"removed {', '.join(removed)}" if removed else "nothing to prune", {"removed": removed})

    def _prune(self, keep: int | None = None) -> list[str]:
        """Keep the active version plus `keep` others per name; remove the oldest first, never the
        active, the last good or a trial's previous version."""
        keep = self.keep_versions if keep is None else keep
        st = self.store.state()
        active = self.store.active_ref_str()
        removed = prune_plan(self.store.refs(), active, {st.last_good, (st.trial or {}).get("previous")}, keep)
        for r in removed:
            self.store.remove_version(*split_ref(r))
            st.versions.pop(r, None)
        if removed:
            self.store.save_state(st)
            for r in removed:
                self.record("prune", r, f"older than the {keep} kept versions")
        return removed

    def delete(self, ref: str) -> Outcome:
        return self._locked([ref], self._delete, ref)

    def _delete(self, ref: str) -> Outcome:
        self.store.get_ref(ref)
        st = self.store.state()
        if ref == self.store.active_ref_str():
            raise Refused(f"{ref} is active: activate or roll back to another version first")
        if ref == st.last_good:
            raise Refused(f"{ref} is the last good version (the rollback target): it is kept")
        self.store.remove_version(*split_ref(ref))
        st.versions.pop(ref, None)
        self.store.save_state(st)
        self.record("delete", ref, "deleted by the operator")
        return Outcome(True, "delete", ref, self.store.active_ref_str(), f"deleted {ref}")


def recover_if_interrupted(paths: Paths) -> str | None:
    """For app start: undo an activation a crash left uncommitted (a cheap read when there is none).
    Skipped while another process holds the store lock: its trial is still running."""
    store = Store(paths.store)
    if not (store.root / "STATE").is_file() or not store.state().trial:
        return None
    try:
        with store.lock(wait_s=0):
            return Ota(paths)._recover()
    except Busy:
        return None
