"""First screen: type a prompt, the active bundle's model streams the reply with TTFT and tokens/s."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from edgetui.engine.base import EngineError, GenParams, Stats


class ChatScreen(Screen):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    class Piece(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message):
        def __init__(self, stats: Stats | None, error: str | None = None) -> None:
            super().__init__()
            self.stats = stats
            self.error = error

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="log"):
            yield Static("Type a prompt and press Enter.", id="hint")
        yield Static("ready", id="status", classes="status")
        yield Input(placeholder="Ask the model…", id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._gen = None
        self._reply: Static | None = None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self._gen is not None:
            return
        event.input.value = ""
        log = self.query_one("#log", VerticalScroll)
        log.mount(Static(f"> {text}", classes="question"))
        self._reply = Static("", classes="answer")
        log.mount(self._reply)
        self._text = ""
        self.query_one("#status", Static).update("thinking…")
        self.stream(text)

    @work(thread=True, exclusive=True, group="generate")
    def stream(self, text: str) -> None:
        ctx = self.app.ctx
        try:
            self._gen = ctx.engine.generate(ctx.bundle.chat_prompt(text), GenParams(max_tokens=128))
            for tok in self._gen:
                self.post_message(self.Piece(tok.text))
            self.post_message(self.Done(self._gen.stats))
        except EngineError as e:
            self.post_message(self.Done(None, str(e)))

    def on_chat_screen_piece(self, msg: Piece) -> None:
        self._text += msg.text
        if self._reply is not None:
            self._reply.update(self._text)
        self.query_one("#log", VerticalScroll).scroll_end(animate=False)

    def on_chat_screen_done(self, msg: Done) -> None:
        self._gen = None
        status = self.query_one("#status", Static)
        if msg.error:
            status.update(f"error: {msg.error}")
            self.notify(msg.error, severity="error")
            return
        s = msg.stats
        status.update(
            f"TTFT {s.ttft_ms:.0f} ms · {s.decode_tps:.1f} tok/s · {s.decode_tokens} tok · {s.finish}"
        )

    def action_cancel(self) -> None:
        if self._gen is not None:
            self._gen.cancel()
