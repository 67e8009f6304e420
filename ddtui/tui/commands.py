"""The command palette (ctrl+p): every main screen, every keyed action of every screen, and every theme.

Actions are read from the screens' `BINDINGS` (ids and descriptions), so a screen added by another module
is reachable here without this file knowing it; each hit shows the key that does the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .host import Host
from .keys import EXPLAIN, KEYS, SCREENS, TOOL_SCREENS, display_key
from .screens.base import every_screen_binding, screen_class


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    callback: Callable[[], Any]
    discover: bool = True


def key_of(app: Host, binding: Binding) -> str:
    keymap = app._keymap or {}
    key = keymap.get(binding.id, binding.key) if binding.id else binding.key
    return display_key(key)


def all_commands(app: Host) -> list[Command]:
    commands: list[Command] = []
    app_keys = {spec.id: spec for spec in KEYS if spec.scope == "app"}
    for mode, title in SCREENS:
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
            commands.append(Command(spec.description, f"{EXPLAIN.get(spec.id, spec.description)} "
                                    f"(key {key_of(app, spec.binding())})", partial(_run_app_action, app, action)))
    commands.append(Command("Theme picker", f"Choose a theme ({key_of(app, app_keys['app.theme'].binding())})",
                            app.search_themes))
    for mode, title, b, explain in _screen_actions():
        commands.append(Command(f"{title}: {b.description}", f"{explain} (on {title}, key {key_of(app, b)})",
                                partial(_run_screen_action, app, mode, b.action), discover=False))
    for name in sorted(app.available_themes):
        commands.append(Command(f"Theme: {name}", "Use this theme (remembered in ui.theme)",
                                partial(setattr, app, "theme", name), discover=False))
    commands.append(Command("Reconnect to the service", "Start the ddtui service if needed and attach to it",
                            partial(_reconnect, app), discover=False))
    return commands


def _screen_actions() -> Iterator[tuple[str, str, Binding, str]]:
    """(mode, title, binding, what it does in words) for every keyed action of every screen."""
    for mode, title, b in every_screen_binding():
        cls = screen_class(mode)[0]
        # A screen's own palette entry says it best ("History: reuse the parameters in Generate").
        palette = {action: text for text, action, _help in getattr(cls, "PALETTE", [])}
        explain = EXPLAIN.get(b.id or "") or palette.get(b.action, "").partition(": ")[2] or b.description
        yield mode, title, b, explain[:1].upper() + explain[1:]


async def _run_app_action(app: Host, action: str) -> None:
    await app.run_action(action)


def _run_screen_action(app: Host, mode: str, action: str) -> None:
    app.show_main(mode)
    screen = app.main_screens.get(mode)
    if screen is not None:
        # The screen may have just been made: let it mount before it runs the action.
        app.call_after_refresh(app.run_action, action, screen)


def _reconnect(app: Host) -> None:
    app.start_service()


class DdtuiCommands(Provider):
    """Screens, actions and themes of ddtui."""

    @property
    def host(self) -> Host:
        assert isinstance(self.app, Host)
        return self.app

    async def discover(self) -> Hits:
        for command in all_commands(self.host):
            if command.discover:
                yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in all_commands(self.host):
            score = max(matcher.match(command.title), matcher.match(command.help) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.callback, help=command.help)
