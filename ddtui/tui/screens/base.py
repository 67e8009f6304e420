"""What every screen shares: the base class with typed app access, the title and screen bars, the registry of
screens, the screen's own palette entries, and the yes/no dialog.

Screens import this module, `ddtui.tui.host`, widgets and the core; never each other, never the app module.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any, ClassVar, Iterable, TypeVar

from textual import events, getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Static
from textual.worker import Worker, WorkerState

from ..host import Host
from ..keys import ALL_SCREENS, SCREENS, TOOL_SCREENS, display_key

ResultType = TypeVar("ResultType")

# Mode name -> (module, class) of each main and tool screen; imported when first shown.
SCREEN_CLASSES: dict[str, tuple[str, str]] = {
    "generate": ("ddtui.tui.screens.generate", "GenerateScreen"),
    "history": ("ddtui.tui.screens.history", "HistoryScreen"),
    "queue": ("ddtui.tui.screens.queue", "QueueScreen"),
    "presets": ("ddtui.tui.screens.presets", "PresetsScreen"),
    "styles": ("ddtui.tui.screens.styles", "StylesScreen"),
    "vram": ("ddtui.tui.screens.vram", "VramScreen"),
    "settings": ("ddtui.tui.screens.settings", "SettingsScreen"),
    "inpaint": ("ddtui.tui.screens.inpaint", "InpaintScreen"),
    "explore": ("ddtui.tui.screens.explore", "ExploreScreen"),
}
SCREEN_TITLES = dict(ALL_SCREENS)
HINT = "  F1 help · ^p commands"


def screen_class(mode: str) -> tuple[type[Screen[Any]] | None, str]:
    """The class of a main screen, or None with the reason it cannot be loaded."""
    module_name, class_name = SCREEN_CLASSES[mode]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name), ""
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None, f"{module_name} is not part of this build yet"
        return None, f"{module_name}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one broken screen must not stop the others
        return None, f"{module_name}: {type(exc).__name__}: {exc}"


class ScreenNav(Static):
    """The row of screens under the header, this screen highlighted, each with the key that shows it from here;
    shorter when narrow."""

    DEFAULT_CSS = """
    ScreenNav {
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text-muted;
    }
    """

    app = getters.app(Host)

    def on_mount(self) -> None:
        self.refresh_line()

    def on_resize(self, event: events.Resize) -> None:
        self.refresh_line()

    def refresh_line(self) -> None:
        self.update(self._line(self.size.width or 200))

    @property
    def current(self) -> str:
        """The mode of the screen this row sits on (highlighted in it)."""
        return next((m for m, s in self.app.main_screens.items() if s is self.screen), "")

    def _line(self, width: int) -> Content:
        mine = self.current
        keymap = self.app._keymap or {}
        # A screen may use the digits itself (History rates with 0-5): there the row shows the F-keys.
        taken = {key.strip() for b in bindings_of(type(self.screen))
                 for key in (keymap.get(b.id, b.key) if b.id else b.key).split(",")}
        digits = [keymap.get(f"screen.{mode}", str(n)) for n, (mode, _t) in enumerate(SCREENS, start=1)]
        fkeys = [keymap.get(f"screen.{mode}.fkey", f"f{n + 1}") for n, (mode, _t) in enumerate(SCREENS, start=1)]
        keys = [display_key(k) for k in (fkeys if taken & set(digits) else digits)]
        tool = SCREEN_TITLES[mine] if mine in dict(TOOL_SCREENS) else ""
        # Full titles with the hint, then without it, then short titles: the row always fits one line.
        for short, hint in ((False, True), (False, False), (True, False)):
            parts: list[Content | str] = []
            for key, (mode, title) in zip(keys, SCREENS):
                label = title[:4] if short and mode != mine else title
                parts.append(Content.styled(f" {key} {label} ", "reverse bold" if mode == mine else ""))
            if tool:
                parts.append(Content.styled(f" {tool} ", "reverse bold"))
            if hint:
                parts.append(Content.styled(HINT, "dim"))
            line = Content.assemble(*parts)
            if line.cell_length <= width:
                break
        return line


def title_bars() -> ComposeResult:
    """The header (the screen's title, the service's state) and the row of screens: on top of every screen."""
    yield Header()
    yield ScreenNav()


class MainScreen(Screen[ResultType]):
    """A main or tool screen: typed access to the app (`self.app` is the `Host`), the same bars on top
    (`title_bars()` in `compose`), and failed workers reported in the app's one place."""

    app = getters.app(Host)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.worker_failed(event.worker)


class MissingScreen(MainScreen[None]):
    """Stands in for a main screen whose module is not installed (yet), saying why."""

    def __init__(self, mode: str, reason: str) -> None:
        super().__init__(name=mode)
        self.title = SCREEN_TITLES.get(mode, mode)
        self._reason = reason

    def compose(self) -> ComposeResult:
        yield from title_bars()
        yield Static(f"The {SCREEN_TITLES.get(self.name or '', self.name)} screen is not available.\n\n"
                     f"{self._reason}", id="missing")
        yield Footer()


class ScreenPaletteCommands(Provider):
    """Command palette entries of the screen it was opened from: its `PALETTE` entries that no binding of
    the screen reaches (the app's palette already lists every described binding, with its key)."""

    def _entries(self) -> list[tuple[str, str, str]]:
        bound = {b.action for b in getattr(type(self.screen), "BINDINGS", []) if isinstance(b, Binding)}
        return [e for e in getattr(self.screen, "PALETTE", []) if e[1] not in bound]

    async def discover(self) -> Hits:
        for title, action, help_text in self._entries():
            yield DiscoveryHit(title, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.screen.run_action, action), help=help_text)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question (y confirms, n or escape keeps things as they are)."""

    DEFAULT_CSS = """
    ConfirmDialog {
        align: center middle;
    }
    #confirm-dialog {
        width: 70;
        height: auto;
        max-height: 80%;
        padding: 1 2;
        background: $surface;
        border: thick $error;
    }
    #confirm-buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    #confirm-buttons Button {
        margin-left: 2;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self.question, id="confirm-question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="confirm-yes")
                yield Button("Keep (n)", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def bindings_of(cls: type | None) -> list[Binding]:
    """A screen class's bindings as `Binding`s (tuples in `BINDINGS` included)."""
    out = []
    for b in getattr(cls, "BINDINGS", []) if cls else []:
        if isinstance(b, Binding):
            out.append(b)
        elif isinstance(b, tuple) and len(b) >= 2:
            out.append(Binding(*b))
    return out


def every_screen_binding() -> Iterable[tuple[str, str, Binding]]:
    """(mode, screen title, binding) for every described action of every main and tool screen, once each."""
    for mode, title in ALL_SCREENS:
        cls, _ = screen_class(mode)
        seen: set[str] = set()
        for b in bindings_of(cls):
            if b.action in seen or not b.description:
                continue
            seen.add(b.action)
            yield mode, title, b


__all__ = ["ConfirmDialog", "MainScreen", "MissingScreen", "SCREEN_CLASSES", "SCREEN_TITLES", "ScreenNav",
           "ScreenPaletteCommands", "bindings_of", "every_screen_binding", "screen_class", "title_bars"]
