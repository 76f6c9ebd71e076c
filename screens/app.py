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
from screens.context import AppContext

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

    def __init__(self, paths: Paths | None = None, ctx: AppContext | None = None):
        self.MODES = {mode: _load(spec) for mode, spec, _, _ in SCREENS}
        super().__init__()
        self._paths = paths
        self.ctx: AppContext = ctx

    def on_mount(self) -> None:
        if self.ctx is None:
            self.ctx = AppContext.create(self._paths)
        self.sub_title = f"{self.ctx.bundle.ref}"
        self.switch_mode("chat")

    def action_help(self) -> None:
        lines = [f"{key.upper():>6}  {desc}" for _, _, key, desc in SCREENS]
        lines += ["CTRL+Q  Quit", "CTRL+P  Command palette", "   ESC  Cancel / back"]
        self.notify("\n".join(lines), title="Keys", timeout=8)

    def on_unmount(self) -> None:
        if self.ctx is not None:
            self.ctx.close()


def run_app() -> None:
    from edgetui.config import ConfigError

    try:
        ctx = AppContext.create()  # first run builds the default bundle before the screen opens
        EdgeApp(ctx=ctx).run()
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from e
