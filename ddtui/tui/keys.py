"""Every key of the app shell and its screens: binding ids, default keys, descriptions, and remapping.

A binding id (`generate.submit`) names an action for good; the key is only its default. `ui.keys` in
config.json maps ids to other keys (`{"generate.submit": "ctrl+s"}`), applied with Textual's keymap, so the
footer, the help screen and the command palette always show the key that really works.
Screens built elsewhere (history, presets, styles) declare their own `Binding(id=...)`s; the same keymap
reaches them, and the help screen and palette read them from their classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from textual.binding import Binding

# The main screens, in the order of their number keys; (mode name, title).
SCREENS: tuple[tuple[str, str], ...] = (
    ("generate", "Generate"),
    ("history", "History"),
    ("queue", "Queue"),
    ("presets", "Presets"),
    ("styles", "Styles"),
    ("vram", "VRAM"),
    ("settings", "Settings"),
)


@dataclass(frozen=True)
class KeySpec:
    """One bindable action: where it lives, its default key, and what it does in the user's words."""

    id: str
    key: str
    action: str
    description: str
    scope: str  # "app", or the mode name of the screen that owns it
    show: bool = True
    priority: bool = False

    def binding(self) -> Binding:
        return Binding(self.key, self.action, self.description, show=self.show, priority=self.priority,
                       id=self.id)


def _screen_keys() -> list[KeySpec]:
    specs = []
    for n, (mode, title) in enumerate(SCREENS, start=1):
        specs.append(KeySpec(f"screen.{mode}", str(n), f"show_screen('{mode}')", title, "app", show=False))
        # F-keys work even while typing in a text field; digits only when no text field has the focus.
        specs.append(KeySpec(f"screen.{mode}.fkey", f"f{n + 1}", f"show_screen('{mode}')", title, "app",
                             show=False, priority=True))
    return specs


KEYS: tuple[KeySpec, ...] = (
    *_screen_keys(),
    KeySpec("app.help", "f1", "help", "Help", "app", priority=True),
    KeySpec("app.help.question", "question_mark", "help", "Help", "app", show=False),
    KeySpec("app.errors", "e", "errors", "Errors", "app"),
    KeySpec("app.theme", "ctrl+t", "pick_theme", "Theme", "app", show=False),
    KeySpec("app.quit", "q", "quit", "Quit", "app"),
    KeySpec("app.quit.ctrl", "ctrl+q", "quit", "Quit", "app", show=False, priority=True),
    # generate: not priority, so a key waits for the text typed before it to reach the prompt
    KeySpec("generate.submit", "ctrl+g", "submit", "Generate", "generate"),
    KeySpec("generate.submit.enter", "ctrl+enter", "submit", "Generate", "generate", show=False),
    KeySpec("generate.cancel", "ctrl+o", "cancel_job", "Stop", "generate"),
    KeySpec("generate.prompt_prev", "ctrl+up", "prompt_prev", "Older prompt", "generate", show=False),
    KeySpec("generate.prompt_next", "ctrl+down", "prompt_next", "Newer prompt", "generate", show=False),
    KeySpec("generate.lora", "ctrl+l", "insert_lora", "LoRA", "generate"),
    KeySpec("generate.seed_lock", "ctrl+r", "toggle_seed_lock", "Seed lock", "generate"),
    KeySpec("generate.focus_prompt", "ctrl+f", "focus_prompt", "Prompt", "generate", show=False, priority=True),
    KeySpec("generate.clear_init", "ctrl+n", "clear_init", "No init image", "generate", show=False),
    # queue
    KeySpec("queue.cancel", "c", "cancel", "Cancel", "queue"),
    KeySpec("queue.cancel_now", "C", "cancel_now", "Cancel now", "queue", show=False),
    KeySpec("queue.retry", "r", "retry", "Retry", "queue"),
    KeySpec("queue.priority_up", "plus", "priority(1)", "Priority +", "queue"),
    KeySpec("queue.priority_down", "minus", "priority(-1)", "Priority -", "queue", show=False),
    KeySpec("queue.pause", "p", "toggle_pause", "Pause/resume", "queue"),
    KeySpec("queue.show_all", "a", "toggle_all", "Finished jobs", "queue"),
    # vram
    KeySpec("vram.refresh", "r", "refresh_now", "Refresh", "vram"),
    # settings
    KeySpec("settings.save", "ctrl+s", "save", "Save", "settings"),
    KeySpec("settings.revert", "ctrl+r", "revert", "Revert", "settings"),
    # help and error log (modal)
    KeySpec("help.close", "escape", "close", "Close", "help"),
    KeySpec("errors.close", "escape", "close", "Close", "errors"),
    KeySpec("errors.clear", "x", "clear", "Clear log", "errors"),
)

BY_ID: dict[str, KeySpec] = {spec.id: spec for spec in KEYS}


def bindings_for(scope: str) -> list[Binding]:
    """The Textual bindings of one scope, for a class's `BINDINGS`."""
    return [spec.binding() for spec in KEYS if spec.scope == scope]


def keymap_from_config(raw: dict[str, str], known_ids: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """Split `ui.keys` into a keymap for Textual and the ids nobody declares (reported to the user)."""
    known = set(BY_ID) | set(known_ids)
    keymap = {bid: key.strip() for bid, key in raw.items() if isinstance(key, str) and key.strip()}
    unknown = sorted(bid for bid in keymap if bid not in known)
    return keymap, unknown


def display_key(key: str) -> str:
    """A key string as a person reads it: ctrl+g -> ^g, question_mark -> ?, plus -> +."""
    names = {"question_mark": "?", "plus": "+", "minus": "-", "escape": "esc", "enter": "⏎", "up": "↑",
             "down": "↓", "left": "←", "right": "→"}
    parts = []
    for one in key.split(","):
        one = one.strip()
        mods, _, base = one.rpartition("+")
        base = names.get(base, base)
        if base.startswith("f") and base[1:].isdigit():
            base = base.upper()
        if mods == "ctrl":
            parts.append("^" + base)
        elif mods:
            parts.append(f"{mods}+{base}")
        else:
            parts.append(base)
    return "/".join(parts)
