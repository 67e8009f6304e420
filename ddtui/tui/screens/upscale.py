"""The ESRGAN model picker shown before an upscale when the catalog holds several; the app remembers the
choice (`Setting` row `tui.upscaler`) and offers it first next time."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...catalog.models import ModelEntry


class UpscalerPicker(ModalScreen[str | None]):
    """Choose the ESRGAN model for an upscale; answers its catalog path, or None when closed."""

    CSS_PATH = Path(__file__).parent / "upscale.tcss"
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="upscale.picker.close")]

    def __init__(self, entries: list[ModelEntry], last: str = "") -> None:
        super().__init__()
        self.entries = entries
        self.last = last

    def compose(self) -> ComposeResult:
        with Vertical(id="upscaler-box"):
            yield Label("Upscale with  (enter: upscale, esc: close)", id="upscaler-title")
            options = []
            for e in self.entries:
                note = f" — {e.sidecar.description}" if e.sidecar and e.sidecar.description else ""
                last = "  (last used)" if e.rel_path == self.last else ""
                options.append(Option(Content(f"{e.name}{last}{note}"), id=e.rel_path))
            yield OptionList(*options, id="upscaler-list")

    def on_mount(self) -> None:
        options = self.query_one("#upscaler-list", OptionList)
        paths = [e.rel_path for e in self.entries]
        options.highlighted = paths.index(self.last) if self.last in paths else 0
        options.focus()

    @on(OptionList.OptionSelected, "#upscaler-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
