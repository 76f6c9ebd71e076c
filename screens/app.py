"""The edgetui Textual app: one mode per face (chat, telemetry, evals, bundles).

Keys are the manual: F1–F4 switch screens on every screen, ctrl+q quits, ? shows help, and
ctrl+p opens the command palette. Native work never runs on the event loop: screens call
`edgetui` objects from thread workers and post results back as messages.
"""

from __future__ import annotations

import importlib

from textual.app import App
from textual.binding import Binding

from edgetui.config import Paths
from edgetui.session import Session

# (mode, "module:Class", key, description). A part adds its screen here.
SCREENS: list[tuple[str, str, str, str]] = [
    ("chat", "screens.chat:ChatScreen", "f1", "Chat"),
    ("telemetry", "screens.telemetry:TelemetryScreen", "f2", "Telemetry"),
    ("evals", "screens.evals:EvalScreen", "f3", "Evals"),
    ("bundles", "screens.bundles:BundlesScreen", "f4", "Bundles"),
]


def _load(spec: str):
    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)


class EdgeApp(App):
    TITLE = "edgetui"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "help", "Help", show=False),
        *[Binding(key, f"switch_mode('{mode}')", desc) for mode, _, key, desc in SCREENS],
    ]

    def __init__(self, paths: Paths | None = None, session: Session | None = None):
        self.MODES = {mode: _load(spec) for mode, spec, _, _ in SCREENS}
        super().__init__()
        self._paths = paths
        self.session: Session = session  # what every screen shares: db, active bundle, engine, assistant

    def on_mount(self) -> None:
        if self.session is None:
            self.session = Session.open(self._paths)
        self.sub_title = f"{self.session.bundle.ref}"
        self.switch_mode("chat")

    def action_help(self) -> None:
        lines = [f"{key.upper():>6}  {desc}" for _, _, key, desc in SCREENS]
        lines += ["CTRL+Q  Quit", "CTRL+P  Command palette", "   ESC  Cancel / back"]
        self.notify("\n".join(lines), title="Keys", timeout=8)

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.close()


def run_app() -> None:
    from edgetui.config import ConfigError
    from edgetui.log import setup as setup_logging

    setup_logging(verbose=False)  # the log file only: stderr would draw over the screen
    try:
        session = Session.open()  # first run builds the default bundle before the screen opens
        EdgeApp(session=session).run()
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from e
