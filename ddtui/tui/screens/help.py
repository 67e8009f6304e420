"""The help screen (F1 or ?): every key of every screen, with its binding id for `ui.keys`, and notes on images.

Keys are read from the screens' bindings with the keymap applied, so a remapped key shows as remapped.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from ..app import screen_class
from ..commands import _bindings_of, key_of
from ..keys import KEYS, SCREENS, bindings_for


class HelpScreen(ModalScreen[None]):
    """All keys, grouped by where they work."""

    CSS_PATH = "help.tcss"
    BINDINGS = bindings_for("help") + [("q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(self._keys_table(), id="help-keys")
            yield Static(self._notes(), id="help-notes")
        yield Footer()

    def _keys_table(self) -> Table:
        app = self.app
        table = Table(title="ddtui keys", title_style="bold", expand=True, show_edge=False, pad_edge=False)
        table.add_column("Where", style="bold", no_wrap=True)
        table.add_column("Key", style="bold magenta", no_wrap=True)
        table.add_column("Does", ratio=2)
        table.add_column("Binding id (ui.keys)", style="dim", no_wrap=True)
        specs = [s for s in KEYS if s.scope == "app"]
        for spec in specs:
            if spec.id.startswith("screen.") and spec.id.endswith(".fkey"):
                continue
            binding = spec.binding()
            what = spec.description
            if spec.id.startswith("screen."):
                fkey = next(s for s in specs if s.id == spec.id + ".fkey").binding()
                table.add_row("everywhere", f"{key_of(app, binding)} / {key_of(app, fkey)}",  # type: ignore[arg-type]
                              f"show the {what} screen", f"{spec.id}, {spec.id}.fkey")
                continue
            table.add_row("everywhere", key_of(app, binding), what, spec.id)  # type: ignore[arg-type]
        table.add_row("everywhere", "^p", "command palette: every screen, action and theme", "(Textual)")
        table.add_row("text fields", "^z / ^y", "undo / redo", "(Textual)")
        for mode, title in SCREENS:
            cls, reason = screen_class(mode)
            bindings = _bindings_of(cls)
            if not bindings:
                table.add_row(title, "", Text(reason or "no keys of its own", style="dim"), "")
                continue
            table.add_section()
            for b in bindings:
                table.add_row(title, key_of(app, b), b.description or b.action, b.id or "")  # type: ignore[arg-type]
        table.add_section()
        for b in bindings_for("errors"):
            table.add_row("error log", key_of(app, b), b.description, b.id or "")  # type: ignore[arg-type]
        return table

    def _notes(self) -> Text:
        app = self.app
        protocol = getattr(app, "image_protocol", "?")
        note = getattr(app, "image_note", "")
        text = Text()
        text.append("\nImages: ", style="bold")
        text.append(f"{protocol}" + (f" — {note}" if note else "") + "\n")
        text.append("  Choose with ui.image_protocol in config.json or `ddtui --images kitty|sixel|halfcell|none`.\n"
                    "  In tmux, let graphics through with `set -g allow-passthrough on` in ~/.tmux.conf.\n")
        text.append("Keys: ", style="bold")
        text.append('remap in config.json, e.g. "ui": {"keys": {"generate.submit": "ctrl+s"}} '
                    "(the settings screen edits it too).\n")
        text.append("Digits switch screens only when no text field has the focus; F-keys always do.\n")
        text.append("Quitting leaves the service running: queued work goes on (`ddtui serve --stop` ends it).\n")
        return text

    def action_close(self) -> None:
        self.dismiss(None)
