"""The command palette (ctrl+p): every main screen, every keyed action of every screen, and every theme.

Actions are read from the screens' `BINDINGS` (ids and descriptions), so a screen added by another module
is reachable here without this file knowing it; each hit shows the key that does the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .keys import ALL_SCREENS, KEYS, SCREENS, TOOL_SCREENS, display_key

if TYPE_CHECKING:
    from .app import DdtuiApp


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    callback: Callable[[], Any]
    discover: bool = True


def _bindings_of(cls: type | None) -> list[Binding]:
    out = []
    for b in getattr(cls, "BINDINGS", []) if cls else []:
        if isinstance(b, Binding):
            out.append(b)
        elif isinstance(b, tuple) and len(b) >= 2:
            out.append(Binding(*b))
    return out


def screen_actions(app: "DdtuiApp") -> Iterator[tuple[str, str, Binding]]:
    """(mode, screen title, binding) for every action of every main and tool screen, once per action."""
    from .app import screen_class

    for mode, title in ALL_SCREENS:
        cls, _ = screen_class(mode)
        seen: set[str] = set()
        for b in _bindings_of(cls):
            if b.action in seen or not b.description:
                continue
            seen.add(b.action)
            yield mode, title, b


def key_of(app: "DdtuiApp", binding: Binding) -> str:
    keymap = getattr(app, "_keymap", {}) or {}
    key = keymap.get(binding.id, binding.key) if binding.id else binding.key
    return display_key(key)


def all_commands(app: "DdtuiApp") -> list[Command]:
    commands: list[Command] = []
    app_keys = {spec.id: spec for spec in KEYS if spec.scope == "app"}
    for n, (mode, title) in enumerate(SCREENS, start=1):
        spec = app_keys[f"screen.{mode}"]
        fkey = app_keys[f"screen.{mode}.fkey"]
        keys = f"{key_of(app, spec.binding())} or {key_of(app, fkey.binding())}"
        commands.append(Command(f"Go to {title}", f"Show the {title} screen ({keys})",
                                partial(app.show_main, mode)))
    for mode, title in TOOL_SCREENS:
        commands.append(Command(f"Go to {title}", f"Show the {title} screen (it works on the image sent to it)",
                                partial(app.show_main, mode), discover=False))
    for spec in KEYS:
        if spec.scope == "app" and not spec.id.startswith("screen.") and spec.show:
            action = spec.action
            commands.append(Command(spec.description, f"{_what(spec.id)} ({key_of(app, spec.binding())})",
                                    partial(_run_app_action, app, action)))
    commands.append(Command("Theme picker", f"Choose a theme ({key_of(app, app_keys['app.theme'].binding())})",
                            app.search_themes))
    for mode, title, b in screen_actions(app):
        commands.append(Command(f"{title}: {b.description}", f"{b.action} on {title} ({key_of(app, b)})",
                                partial(_run_screen_action, app, mode, b.action), discover=False))
    for name in sorted(app.available_themes):
        commands.append(Command(f"Theme: {name}", "Use this theme (remembered in ui.theme)",
                                partial(setattr, app, "theme", name), discover=False))
    commands.append(Command("Reconnect to the service", "Start the ddtui service if needed and attach to it",
                            partial(_reconnect, app), discover=False))
    return commands


def _what(binding_id: str) -> str:
    return {"app.help": "Every key, and how images are drawn", "app.errors": "The error log with details",
            "app.quit": "Quit the interface; the service keeps running queued work"}.get(binding_id, binding_id)


async def _run_app_action(app: "DdtuiApp", action: str) -> None:
    await app.run_action(action)


def _run_screen_action(app: "DdtuiApp", mode: str, action: str) -> None:
    app.show_main(mode)
    screen = app.main_screens.get(mode)
    if screen is not None:
        # The screen may have just been made: let it mount before it runs the action.
        app.call_after_refresh(app.run_action, action, screen)


def _reconnect(app: "DdtuiApp") -> None:
    app.start_service()


class DdtuiCommands(Provider):
    """Screens, actions and themes of ddtui."""

    async def discover(self) -> Hits:
        for command in all_commands(self.app):  # type: ignore[arg-type]
            if command.discover:
                yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in all_commands(self.app):  # type: ignore[arg-type]
            score = max(matcher.match(command.title), matcher.match(command.help) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.callback, help=command.help)
