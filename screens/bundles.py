"""Bundles screen (F4): installed versions, install with smoke-gated activation, verify, activate,
one-key rollback, delete; the OTA history below.

Everything shown comes from `edgetui.ota` (the same `Ota` object `edgetui bundle …` uses). Every
operation runs in a thread worker that posts progress messages; when the active version changes the
app's session switches to it (`session.switch_bundle`), so the next chat request uses the new model.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, ProgressBar, Static

from edgetui.ota.errors import OtaError
from edgetui.ota.history import events
from edgetui.ota.manager import Ota, Outcome
from edgetui.ota.report import VersionRow, verify, versions

PHASES = {"install": "copying and verifying", "verify": "verifying", "fingerprint": "checking the tokenizer",
          "smoke": "running the smoke eval"}


def short_time(iso: str | None) -> str:
    """`2026-01-02T03:04:05+00:00` → `01-02 03:04` (UTC, as stored)."""
    return iso[5:16].replace("T", " ") if iso else "—"


def version_cells(r: VersionRow) -> tuple[str, ...]:
    signer = "unsigned" if r.unsigned else (r.signer or "?")[:8]
    verified = "—" if not r.verified else ("ok" if r.verified.get("ok") else "FAIL")
    smoke = "—" if not r.smoke else ("pass" if r.smoke.get("passed") else "fail")
    return ("●" if r.active else "", r.ref, r.status, signer, verified, f"{r.size / (1 << 20):.1f}",
            short_time(r.installed_at), smoke)


class InstallPrompt(ModalScreen[tuple[str, bool] | None]):
    """Ask for the bundle file; enter installs it, activates it and runs the smoke gate."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static("[b]Install a bundle[/b] (archive .tar or directory)")
            yield Input(placeholder="/media/usb/field-policy-1.1.0.tar", id="path")
            yield Checkbox("allow unsigned (development only; recorded)", id="unsigned")
            yield Static("enter: install, activate, smoke eval · esc: cancel", classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.query_one(Input).focus()  # so that enter installs right after ticking the box

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if path:
            self.dismiss((path, self.query_one(Checkbox).value))


class Confirm(ModalScreen[bool]):
    """One question, answered with y or n."""

    BINDINGS = [Binding("y", "dismiss(True)", "Yes"), Binding("n,escape", "dismiss(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(escape(self.question))
            yield Static("y: yes · n/esc: no", classes="hint")


class BundlesScreen(Screen):
    CSS_PATH = "bundles.tcss"
    BINDINGS = [
        Binding("i", "install", "Install"),
        Binding("v", "verify", "Verify"),
        Binding("a", "activate", "Activate"),
        Binding("r", "rollback", "Rollback"),
        Binding("d", "delete", "Delete"),
    ]

    class Progress(Message):
        def __init__(self, phase: str, done: int, total: int) -> None:
            super().__init__()
            self.phase, self.done, self.total = phase, done, total

    class Done(Message):
        def __init__(self, label: str, outcome: Outcome | None, text: str, ok: bool) -> None:
            super().__init__()
            self.label, self.outcome, self.text, self.ok = label, outcome, text, ok

    def __init__(self, ota: Ota | None = None) -> None:
        super().__init__()
        self._ota = ota
        self.busy: str | None = None

    @property
    def ota(self) -> Ota:
        if self._ota is None:
            self._ota = Ota(self.app.session.paths)
        return self._ota

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="versions", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="progress-row"):
            yield Static("", id="status")
            yield ProgressBar(total=1, show_eta=False, id="progress")
        yield Static("", id="detail")
        yield Static("History", id="history-title")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#versions", DataTable).add_columns("", "bundle", "state", "signed", "verif", "MiB",
                                                           "installed", "smoke")
        self.query_one("#history", DataTable).add_columns("at", "event", "bundle", "reason")
        self.refresh_tables()
        self._status(f"active {self.ota.store.active_ref_str() or 'none'} · {len(self._rows)} installed · "
                     f"keeps {self.ota.keep_versions} more", 0, 1)
        self.query_one("#versions", DataTable).focus()

    def on_screen_resume(self) -> None:
        if not self.busy:  # another process (`edgetui bundle …`) may have changed the store meanwhile
            self.refresh_tables()

    # -- tables ------------------------------------------------------------------------------
    def refresh_tables(self, select: str | None = None) -> None:
        table = self.query_one("#versions", DataTable)
        keep = select or self.selected_ref()
        table.clear()
        self._rows = {r.ref: r for r in versions(self.ota)}
        for r in self._rows.values():
            table.add_row(*version_cells(r), key=r.ref)
        refs = list(self._rows)
        if refs:
            table.move_cursor(row=refs.index(keep) if keep in refs else next(
                (i for i, r in enumerate(self._rows.values()) if r.active), 0))
        hist = self.query_one("#history", DataTable)
        hist.clear()
        self._events = events(self.ota.paths, limit=100)
        for e in self._events:
            hist.add_row(short_time(e.at), e.event if e.ok else f"{e.event} ✗", e.ref or "", e.reason,
                         key=str(e.id))

    def selected_ref(self) -> str | None:
        table = self.query_one("#versions", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowHighlighted, "#versions")
    def _version_highlighted(self, event: DataTable.RowHighlighted) -> None:
        r = self._rows.get(event.row_key.value) if event.row_key else None
        if r is None:
            return
        bits = [f"{r.ref}: {r.status}"]
        if r.reason:
            bits.append(r.reason)
        if r.smoke:
            bits.append(f"smoke {'passed' if r.smoke.get('passed') else 'failed'}"
                        + (f" (run {r.smoke['run_id']})" if r.smoke.get("run_id") else ""))
        self.query_one("#detail", Static).update(escape(" · ".join(bits)))

    @on(DataTable.RowHighlighted, "#history")
    def _event_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not event.data_table.has_focus:  # a refresh moved the cursor, not the user
            return
        e = next((e for e in self._events if event.row_key and str(e.id) == event.row_key.value), None)
        if e is not None:
            self.query_one("#detail", Static).update(escape(f"{e.at} {e.event} {e.ref or ''}: {e.reason}"))

    # -- actions -----------------------------------------------------------------------------
    def _idle(self) -> bool:
        if self.busy:
            self.notify(f"{self.busy} is still running", severity="warning")
            return False
        return True

    def action_install(self) -> None:
        if self._idle():
            self.app.push_screen(InstallPrompt(), self._install_chosen)

    def _install_chosen(self, choice: tuple[str, bool] | None) -> None:
        if choice:
            path, unsigned = choice
            self._start("install", self.run_install, Path(path).expanduser(), unsigned)

    def action_verify(self) -> None:
        ref = self.selected_ref()
        if ref and self._idle():
            self._start(f"verify {ref}", self.run_verify, ref)

    def action_activate(self) -> None:
        ref = self.selected_ref()
        if ref and self._idle():
            if self._rows[ref].active:
                self.notify(f"{ref} is already active")
                return
            self._start(f"activate {ref}", self.run_activate, ref)

    def action_rollback(self) -> None:
        if not self._idle():
            return
        target = self.ota.rollback_target()
        if target is None:
            self.notify("nothing to roll back to: no earlier good version is kept", severity="warning")
            return
        active = self.ota.store.active_ref_str()
        self.app.push_screen(Confirm(f"Roll back from {active} to {target}?"),
                             lambda yes: yes and self._start("rollback", self.run_rollback, target))

    def action_delete(self) -> None:
        ref = self.selected_ref()
        if not ref or not self._idle():
            return
        if self._rows[ref].active:
            self.notify(f"{ref} is active: it cannot be deleted", severity="warning")
            return
        self.app.push_screen(Confirm(f"Delete {ref} from the store?"),
                             lambda yes: yes and self._start(f"delete {ref}", self.run_delete, ref))

    def _start(self, label: str, worker, *args) -> None:
        self.busy = label
        self._status(f"{label}…", 0, None)
        worker(label, *args)

    # -- workers (threads) -------------------------------------------------------------------
    def _tell(self, phase: str, done: int, total: int) -> None:
        self.post_message(self.Progress(phase, done, total))

    def _finish(self, label: str, fn) -> None:
        try:
            out = fn()
        except OtaError as e:
            self.post_message(self.Done(label, None, str(e), False))
            return
        except OSError as e:
            self.post_message(self.Done(label, None, f"{e.filename or 'store'}: {e.strerror or e}", False))
            return
        if isinstance(out, Outcome):
            self._follow_active(out.active)
            self.post_message(self.Done(label, out, out.message, out.ok))
        else:
            self.post_message(self.Done(label, None, *out))

    def _follow_active(self, active: str | None) -> None:
        """Point the app at the active bundle when it changed (closes the old engine child)."""
        session = self.app.session
        if active and active != session.bundle.ref:
            session.switch_bundle(self.ota.store.get_ref(active))

    @work(thread=True, exclusive=True, group="ota")
    def run_install(self, label: str, path: Path, unsigned: bool) -> None:
        self._finish(label, lambda: self.ota.install(path, activate=True, smoke=True, allow_unsigned=unsigned,
                                                     progress=self._tell))

    @work(thread=True, exclusive=True, group="ota")
    def run_activate(self, label: str, ref: str) -> None:
        self._finish(label, lambda: self.ota.activate(ref, progress=self._tell))

    @work(thread=True, exclusive=True, group="ota")
    def run_rollback(self, label: str, ref: str) -> None:
        self._finish(label, lambda: self.ota.rollback(ref))

    @work(thread=True, exclusive=True, group="ota")
    def run_delete(self, label: str, ref: str) -> None:
        self._finish(label, lambda: self.ota.delete(ref))

    @work(thread=True, exclusive=True, group="ota")
    def run_verify(self, label: str, ref: str) -> None:
        def go():
            rep = verify(self.ota, ref, lambda done, total: self._tell("verify", done, total))
            if rep.ok:
                mib = rep.bytes / (1 << 20)
                return f"{ref} verifies: {rep.files} files, {mib:.1f} MiB in {rep.seconds:.1f} s", True
            return f"{ref} DOES NOT VERIFY: " + "; ".join(rep.problems), False

        self._finish(label, go)

    # -- results -----------------------------------------------------------------------------
    def on_bundles_screen_progress(self, msg: Progress) -> None:
        what = PHASES.get(msg.phase, msg.phase)
        if msg.total:
            self._status(f"{self.busy or ''}: {what} {100 * msg.done // msg.total}%", msg.done, msg.total)
        else:
            self._status(f"{self.busy or ''}: {what}…", 0, None)

    def on_bundles_screen_done(self, msg: Done) -> None:
        self.busy = None
        self.app.sub_title = self.app.session.bundle.ref
        self._status(msg.text, 1 if msg.ok else 0, 1)
        self.notify(msg.text, title=msg.label, severity="information" if msg.ok else "error", timeout=8)
        self.refresh_tables(select=msg.outcome.ref if msg.outcome else None)

    def _status(self, text: str, done: int, total: int | None) -> None:
        self.query_one("#status", Static).update(escape(text))
        self.query_one("#progress", ProgressBar).update(total=total, progress=done)
