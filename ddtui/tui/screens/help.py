"""The help screen (F1 or ?): every key of every screen, with its binding id for `ui.keys`, and notes on images.

Keys are read from the screens' bindings with the keymap applied, so a remapped key shows as remapped.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from ..commands import key_of
from ..host import Host
from ..keys import ALL_SCREENS, KEYS, bindings_for
from .base import bindings_of, screen_class


class HelpScreen(ModalScreen[None]):
    """All keys, grouped by where they work."""

    CSS_PATH = Path(__file__).parent / "help.tcss"
    BINDINGS = bindings_for("help") + [("q", "close", "Close")]

    app = getters.app(Host)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(self._keys_table(), id="help-keys")
            yield Static(self._notes(), id="help-notes")
        yield Footer()

    def key_rows(self) -> list[tuple[str, str, str, str]]:
        """(where, key, what it does, binding id) for every key, remaps applied; `---` starts a group."""
        app = self.app
        rows: list[tuple[str, str, str, str]] = []
        specs = [s for s in KEYS if s.scope == "app"]
        for spec in specs:
            if spec.id.startswith("screen.") and spec.id.endswith(".fkey"):
                continue
            binding = spec.binding()
            if spec.id.startswith("screen."):
                fkey = next(s for s in specs if s.id == spec.id + ".fkey").binding()
                rows.append(("everywhere", f"{key_of(app, binding)} / {key_of(app, fkey)}",
                             f"show the {spec.description} screen", f"{spec.id}, {spec.id}.fkey"))
            else:
                where = "text fields" if spec.id == "app.leave_field" else "everywhere"
                rows.append((where, key_of(app, binding), spec.description, spec.id))
        rows.append(("everywhere", "^p", "command palette: every screen, action and theme", "(Textual)"))
        rows.append(("text fields", "^z / ^y", "undo / redo", "(Textual)"))
        for mode, title in ALL_SCREENS:
            cls, reason = screen_class(mode)
            bindings = bindings_of(cls)
            rows.append(("---", "", "", ""))
            if not bindings:
                rows.append((title, "", reason or "no keys of its own", ""))
            for b in bindings:
                rows.append((title, key_of(app, b), b.description or b.action, b.id or ""))
        rows.append(("---", "", "", ""))
        for spec in KEYS:
            if spec.scope == "viewer":
                rows.append(("viewer", key_of(app, spec.binding()), spec.description, spec.id))
        rows.append(("---", "", "", ""))
        for spec in KEYS:
            if spec.scope == "errors":
                rows.append(("error log", key_of(app, spec.binding()), spec.description, spec.id))
        return rows

    def _keys_table(self) -> Table:
        table = Table(title="ddtui keys", title_style="bold", expand=True, show_edge=False, pad_edge=False)
        table.add_column("Where", style="bold", no_wrap=True)
        table.add_column("Key", style="bold magenta", no_wrap=True)
        table.add_column("Does", ratio=2)
        table.add_column("Binding id (ui.keys)", style="dim", no_wrap=True)
        for row in self.key_rows():
            if row[0] == "---":
                table.add_section()
            else:
                table.add_row(*row)
        return table

    def _notes(self) -> Text:
        app = self.app
        protocol, note = app.image_protocol, app.image_note
        text = Text()
        text.append("\nImages: ", style="bold")
        text.append(f"{protocol}" + (f" — {note}" if note else "") + "\n")
        text.append("  Choose with ui.image_protocol in config.json or `ddtui --images kitty|sixel|halfcell|none`.\n"
                    "  In tmux, let graphics through with `set -g allow-passthrough on` in ~/.tmux.conf.\n")
        text.append("Keys: ", style="bold")
        text.append('remap in config.json, e.g. "ui": {"keys": {"generate.submit": "ctrl+s"}} '
                    "(the settings screen edits it too).\n")
        text.append("Digits switch screens only when no text field has the focus (and not on History, where 0-5 "
                    "rate); F-keys always do, and Esc leaves a text field.\n")
        text.append("Quitting leaves the service running: queued work goes on (`ddtui serve --stop` ends it).\n")
        return text

    def action_close(self) -> None:
        self.dismiss(None)
