"""Chat screen: ask a policy question, the answer streams in, cited sections open in a modal.

Input at the bottom; the answer streams into the log with TTFT and tokens/s in the status line; Esc
cancels; each answer lists its citations as buttons (Tab to reach them, Enter to open the section
text); abstentions, escalations and confidential answers carry a marker. History lives in SQLite
(`edgetui.assistant.store.ChatHistory`) and is reloaded at start; ctrl+n starts a new chat and ctrl+e
queues the last unanswered question for a supervisor. The assistant runs in a thread worker.
"""

from __future__ import annotations

import contextlib
import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Input, Static

from edgetui.assistant.pipeline import Answer
from edgetui.assistant.store import ChatHistory, EscalationQueue
from edgetui.engine.base import EngineError

QUESTION_SHOWN = 300  # characters of a question echoed in the log


def status_line(stats: dict) -> str:
    """What the technician waited for: the first words on screen (the quoted policy) and the complete
    validated answer; then the model's own TTFT and speed."""
    first, done = stats.get("first_token_ms"), stats.get("answer_ms") or stats.get("total_ms", 0)
    if stats.get("ttft_ms") is None:
        return f"answered without the model in {done:.0f} ms"
    lead = f"first {first:.0f} ms · " if first is not None else ""
    return (f"{lead}answer {done / 1000:.1f} s · TTFT {stats['ttft_ms']:.0f} ms · "
            f"{stats.get('decode_tps') or 0:.1f} tok/s · "
            f"{stats.get('prompt_recomputed', 0)}/{stats.get('prompt_tokens', 0)} prompt tok")


class SectionView(ModalScreen):
    """The text of one cited section; Esc or Enter closes it."""

    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, section) -> None:
        super().__init__()
        self.section = section

    def compose(self) -> ComposeResult:
        s = self.section
        with Vertical(id="section-box"):
            head = Text(f"[{s.id}] {s.title}", style="bold")
            yield Static(head, id="section-title")
            meta = f"{s.doc_id} {s.doc_title} · revision {s.revision} · {s.classification}"
            yield Static(Text(meta, style="italic"), id="section-meta")
            if s.confidential:
                yield Static("CONFIDENTIAL: do not share outside Meridian.", classes="marker confidential")
            with VerticalScroll(id="section-scroll"):
                yield Static(Text(s.text), id="section-text")
            yield Static("esc close", id="section-hint")

    def action_dismiss(self) -> None:
        self.dismiss()


class CitationButton(Button):
    def __init__(self, cid: str) -> None:
        super().__init__(cid, compact=True, classes="citation")
        self.cid = cid


class Turn(Vertical):
    """One question and its answer (streaming, then final)."""

    def __init__(self, question: str, answer: Answer | None = None, turn_id: int | None = None,
                 escalation_id: int | None = None, status: str = "answered", error: str | None = None) -> None:
        super().__init__(classes="turn")
        self.question = question
        self.answer = answer
        self.turn_id = turn_id
        self.escalation_id = escalation_id
        self.status = status
        self.error = error
        self._stream = ""
        self._quotes: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        q = self.question if len(self.question) <= QUESTION_SHOWN else self.question[:QUESTION_SHOWN] + "…"
        yield Static(Text("> " + " ".join(q.split())), classes="question")
        yield Static(Text(""), classes="markers")
        yield Static(Text("…"), classes="answer")
        yield Horizontal(classes="citations")

    def on_mount(self) -> None:
        if self.answer is not None or self.error is not None or self.status != "answered":
            self.show_final()

    def show_quotes(self, quotes: list[tuple[str, str]]) -> None:
        """The governing sentences, final and validated, shown before the model has written anything."""
        self._quotes = list(quotes)
        self._redraw()

    def stream(self, piece: str) -> None:
        """The model's draft, dimmed: it is replaced by the validated answer (a lead whose numbers are not
        in the quoted policy is dropped), so a draft value is never presented as the rule."""
        self._stream += piece
        self._redraw()

    def _redraw(self) -> None:
        out = Text()
        if self._stream or self._quotes:
            out.append(self._stream.strip() or "…", style="dim italic")
            out.append("  checking against the policy…", style="dim")
        for sid, sent in self._quotes:
            out.append(f'\n"{sent}" [{sid}]')
        self.query_one(".answer", Static).update(out)

    def finish(self, answer: Answer | None, turn_id: int | None, error: str | None = None) -> None:
        self.answer, self.turn_id, self.error = answer, turn_id, error
        if answer is not None and answer.cancelled:
            self.status = "cancelled"
        elif error is not None:
            self.status = "error"
        self.show_final()

    def show_final(self) -> None:
        a = self.answer
        body = self.query_one(".answer", Static)
        markers: list[tuple[str, str]] = []
        if self.error is not None or self.status == "error":
            body.update(Text(self.error or (a.answer if a else "error"), style="red"))
            markers.append(("ERROR", "error"))
        elif self.status == "cancelled" or (a is not None and a.cancelled):
            body.update(Text((self._stream + " " if self._stream else "") + "(cancelled)"))
            markers.append(("CANCELLED", "cancelled"))
        elif a is not None:
            body.update(Text(a.answer))
            if a.abstained and a.gate not in (None, "out_of_scope"):
                markers.append(("NOTICE", "notice"))
            elif a.abstained:
                markers.append(("NOT COVERED", "abstained"))
            if a.confidential:
                markers.append(("CONFIDENTIAL", "confidential"))
        if self.escalation_id is not None:
            markers.append((f"ESCALATED #{self.escalation_id}", "escalated"))
        elif a is not None and a.abstained and a.escalation_offered and self.status == "answered":
            markers.append(("ctrl+e to escalate", "offer"))
        line = Text()
        for label, style in markers:
            line.append(f" {label} ", style=_MARKER_STYLE[style])
            line.append(" ")
        mk = self.query_one(".markers", Static)
        mk.update(line)
        mk.display = bool(markers)
        row = self.query_one(".citations", Horizontal)
        row.remove_children()
        if a is not None and a.citations and not a.cancelled:
            row.mount(Static("sources:", classes="sources-label"))
            row.mount_all([CitationButton(c) for c in a.citations])
        row.display = bool(a is not None and a.citations and not a.cancelled)

    def set_escalated(self, escalation_id: int) -> None:
        self.escalation_id = escalation_id
        self.show_final()


_MARKER_STYLE = {
    "abstained": "bold black on yellow",
    "notice": "bold black on grey70",
    "confidential": "bold white on red",
    "escalated": "bold white on blue",
    "offer": "italic",
    "cancelled": "bold black on grey70",
    "error": "bold white on red",
}


class ChatScreen(Screen):
    CSS_PATH = "chat.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+n", "new_chat", "New chat", priority=True),
        Binding("ctrl+e", "escalate", "Escalate", priority=True),  # over the input's end-of-line (End works)
        Binding("ctrl+l", "focus_input", "Input", show=False),
        Binding("pageup", "scroll_log(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll down", show=False),
    ]
    WARM = True  # evaluate the prompt prefix at start so the first question reuses it

    class Piece(Message):
        def __init__(self, turn: Turn, text: str) -> None:
            super().__init__()
            self.turn, self.text = turn, text

    class Quotes(Message):
        def __init__(self, turn: Turn, quotes: list[tuple[str, str]]) -> None:
            super().__init__()
            self.turn, self.quotes = turn, quotes

    class Done(Message):
        def __init__(self, turn: Turn, answer: Answer | None, error: str | None = None) -> None:
            super().__init__()
            self.turn, self.answer, self.error = turn, answer, error

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="log"):
            yield Static(Text("Ask about a maintenance policy, e.g. \"p-201 seal leaking, what now?\". "
                              "Answers quote the policy and cite the sections (Tab, Enter to open)."),
                         id="hint")
        yield Static("ready", id="status")
        yield Input(placeholder="Ask a policy question…  (Enter to send, Esc to cancel)", id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self._cancel: threading.Event | None = None
        self._busy: Turn | None = None
        self.history = ChatHistory(self.app.session.db)
        self.chat_id = self.history.current_chat()
        self._load_history()
        self.query_one("#log", VerticalScroll).can_focus = False  # Tab goes input → citations
        self.query_one(Input).focus()
        if self.WARM:
            self.warm()

    def _load_history(self) -> None:
        from edgetui.config import load_settings

        log = self.query_one("#log", VerticalScroll)
        try:
            limit = load_settings(self.app.session.paths).history_limit
        except Exception:  # a broken settings file must not hide the history
            limit = 200
        turns = []
        for t in self.history.turns(self.chat_id, limit):
            turns.append(Turn(t["question"], t["data"], t["id"], t["escalation_id"], t["status"],
                              t["answer"] if t["status"] == "error" else None))
        if turns:
            self.query_one("#hint").display = False
            log.mount_all(turns)
            log.scroll_end(animate=False)
            self.query_one("#status", Static).update(f"ready · {len(turns)} earlier question(s) in this chat")

    @work(thread=True, exclusive=True, group="warm")
    def warm(self) -> None:
        with contextlib.suppress(Exception):  # an optimisation; the first question reports real errors
            self.app.session.assistant.warm()

    # -- asking --------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._busy is not None:
            self.notify("Still answering: Esc cancels.", severity="warning")
            return
        text = event.value
        event.input.value = ""
        turn = Turn(text)
        self.query_one("#hint").display = False
        log = self.query_one("#log", VerticalScroll)
        log.mount(turn)
        log.scroll_end(animate=False)
        self._busy = turn
        self._cancel = threading.Event()
        self.query_one("#status", Static).update("thinking… (Esc cancels)")
        self.answer(turn, text, self._cancel)

    @work(thread=True, group="answer")
    def answer(self, turn: Turn, question: str, cancel: threading.Event) -> None:
        try:
            ans = self.app.session.assistant.ask(
                question, on_token=lambda t: self.post_message(self.Piece(turn, t)), cancel=cancel,
                on_quotes=lambda q: self.post_message(self.Quotes(turn, q)))
            self.post_message(self.Done(turn, ans))
        except EngineError as e:
            self.post_message(self.Done(turn, None, f"The engine failed: {e}"))
        except Exception as e:  # never lose the screen or the history to one bad answer
            self.post_message(self.Done(turn, None, f"{type(e).__name__}: {e}"))

    def on_chat_screen_piece(self, msg: Piece) -> None:
        msg.turn.stream(msg.text)
        self.query_one("#log", VerticalScroll).scroll_end(animate=False)

    def on_chat_screen_quotes(self, msg: Quotes) -> None:
        msg.turn.show_quotes(msg.quotes)
        self.query_one("#log", VerticalScroll).scroll_end(animate=False)

    def on_chat_screen_done(self, msg: Done) -> None:
        self._busy, self._cancel = None, None
        ref = self.app.session.bundle.ref
        status = self.query_one("#status", Static)
        turn_id = None
        try:
            if msg.answer is not None:
                turn_id = self.history.add(self.chat_id, msg.answer, ref)
            else:
                turn_id = self.history.add_error(self.chat_id, msg.turn.question, msg.error or "error", ref)
        except Exception as e:  # the answer is still shown when the database is busy or full
            self.notify(f"history not saved: {e}", severity="warning")
        msg.turn.finish(msg.answer, turn_id, msg.error)
        if msg.error is not None:
            status.update(Text(f"error: {msg.error}"))
            self.notify(msg.error, severity="error")
        elif msg.answer.cancelled:
            status.update("cancelled")
        else:
            status.update(status_line(msg.answer.stats))
        self.query_one("#log", VerticalScroll).scroll_end(animate=False)

    # -- actions -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.query_one("#status", Static).update("cancelling…")

    def action_scroll_log(self, direction: int) -> None:
        log = self.query_one("#log", VerticalScroll)
        (log.scroll_page_down if direction > 0 else log.scroll_page_up)(animate=False)

    def action_focus_input(self) -> None:
        self.query_one(Input).focus()

    def action_new_chat(self) -> None:
        if self._busy is not None:
            self.notify("Still answering: Esc cancels first.", severity="warning")
            return
        self.chat_id = self.history.new_chat()
        log = self.query_one("#log", VerticalScroll)
        log.query(Turn).remove()
        self.query_one("#hint").display = True
        self.query_one("#status", Static).update("new chat")
        self.query_one(Input).focus()

    def action_escalate(self) -> None:
        turns = [t for t in self.query(Turn) if t.answer is not None and t.answer.abstained
                 and t.answer.escalation_offered and t.escalation_id is None and t.status == "answered"]
        if not turns:
            self.notify("Nothing to escalate: only unanswered questions are queued.", severity="information")
            return
        turn = turns[-1]
        session = self.app.session
        esc_id = EscalationQueue(session.db).add(turn.answer, session.bundle.ref)
        if turn.turn_id is not None:
            self.history.mark_escalated(turn.turn_id, esc_id)
        turn.set_escalated(esc_id)
        self.notify(f"Escalation #{esc_id} queued for a supervisor. It is not a call: phone for Severity 1 and 2.")

    @on(Button.Pressed, ".citation")
    def open_citation(self, event: Button.Pressed) -> None:
        section = self.app.session.assistant.section(event.button.cid)
        if section is not None:
            self.app.push_screen(SectionView(section))
