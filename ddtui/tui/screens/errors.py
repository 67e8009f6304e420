"""The error log (`e`): every error and worker alert of this session, newest first, with its full detail.

Notifications show one line where the user is looking; the whole message (a job's reason, a traceback) is
kept here.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import getters, on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..host import Host
from ..keys import bindings_for
from ..messages import ErrorLogged


class ErrorLogScreen(ModalScreen[None]):
    """Errors of this session; pick one to read all of it."""

    CSS_PATH = Path(__file__).parent / "errors.tcss"
    BINDINGS = bindings_for("errors")

    app = getters.app(Host)

    def compose(self) -> ComposeResult:
        with Horizontal(id="errors-box"):
            yield OptionList(id="error-list")
            with VerticalScroll(id="error-detail-box"):
                yield Label("", id="error-title")
                yield Static("", id="error-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._fill()
        self.query_one("#error-list", OptionList).focus()

    def _fill(self) -> None:
        entries = list(reversed(self.app.error_log))
        options = self.query_one("#error-list", OptionList)
        options.clear_options()
        if not entries:
            options.add_option(Option("No errors in this session.", disabled=True))
            self._show(None)
            return
        options.add_options([Option(f"{e.when:%H:%M:%S}  {escape(e.title)}", id=str(i)) for i, e in enumerate(entries)])
        options.highlighted = 0
        self._show(0)

    def _show(self, index: int | None) -> None:
        entries = list(reversed(self.app.error_log))
        if index is None or not 0 <= index < len(entries):
            self.query_one("#error-title", Label).update("")
            self.query_one("#error-detail", Static).update("")
            return
        entry = entries[index]
        self.query_one("#error-title", Label).update(f"[b]{escape(entry.title)}[/b]  [dim]{entry.when:%Y-%m-%d %H:%M:%S}[/]")
        self.query_one("#error-detail", Static).update(entry.detail)

    @on(OptionList.OptionHighlighted, "#error-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show(event.option_index)

    def on_error_logged(self, message: ErrorLogged) -> None:
        self._fill()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_clear(self) -> None:
        self.app.error_log.clear()
        self._fill()
