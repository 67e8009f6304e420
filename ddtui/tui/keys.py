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

from textual.binding import Binding, BindingType

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
# Screens opened for one image or job (no number key): (mode name, title). Their keys are listed like the
# main screens' in the help and the palette.
TOOL_SCREENS: tuple[tuple[str, str], ...] = (
    ("inpaint", "Inpaint"),
    ("explore", "Explore"),
)
ALL_SCREENS = SCREENS + TOOL_SCREENS


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
    # not priority: a dialog's or a screen's own Esc comes first
    KeySpec("app.leave_field", "escape", "leave_field", "Leave the text field", "app", show=False),
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
    # alt keys are priority: the prompt editor would otherwise type the letter (alt+e carries an "e")
    KeySpec("generate.enhance", "alt+e", "enhance", "Enhance", "generate", priority=True),
    KeySpec("generate.extract_styles", "alt+s", "extract_styles", "Styles from prompt", "generate",
            show=False, priority=True),
    KeySpec("generate.paste_params", "alt+p", "paste_params", "Paste parameters", "generate",
            show=False, priority=True),
    KeySpec("generate.snippets", "alt+i", "insert_snippet", "Snippet", "generate", show=False, priority=True),
    KeySpec("generate.explore", "alt+x", "explore_last", "Explore result", "generate", priority=True),
    KeySpec("generate.view", "alt+v", "view_results", "View results", "generate", show=False, priority=True),
    KeySpec("generate.hires", "alt+h", "toggle_hires", "Hires fix", "generate", show=False, priority=True),
    KeySpec("generate.lora_up", "alt+up", "lora_weight(0.05)", "LoRA weight +0.05", "generate",
            show=False, priority=True),
    KeySpec("generate.lora_down", "alt+down", "lora_weight(-0.05)", "LoRA weight -0.05", "generate",
            show=False, priority=True),
    KeySpec("generate.lora_up_big", "alt+shift+up", "lora_weight(0.1)", "LoRA weight +0.1", "generate",
            show=False, priority=True),
    KeySpec("generate.lora_down_big", "alt+shift+down", "lora_weight(-0.1)", "LoRA weight -0.1", "generate",
            show=False, priority=True),
    # inpaint: painting keys act on the image (they are off while a text field has the focus)
    KeySpec("inpaint.submit", "ctrl+g", "submit", "Inpaint", "inpaint"),
    KeySpec("inpaint.paint", "space", "paint", "Paint", "inpaint"),
    KeySpec("inpaint.erase", "x,shift+space", "erase", "Erase", "inpaint"),
    KeySpec("inpaint.bigger", "plus,equals_sign", "brush(1)", "Brush +", "inpaint"),
    KeySpec("inpaint.smaller", "minus", "brush(-1)", "Brush -", "inpaint", show=False),
    KeySpec("inpaint.rect", "r", "select('rect')", "Rectangle", "inpaint"),
    KeySpec("inpaint.ellipse", "o", "select('ellipse')", "Ellipse", "inpaint"),
    KeySpec("inpaint.confirm", "enter", "confirm", "Fill selection", "inpaint", show=False),
    KeySpec("inpaint.invert", "i", "invert", "Invert", "inpaint"),
    KeySpec("inpaint.clear", "c", "clear_mask", "Clear", "inpaint", show=False),
    KeySpec("inpaint.undo", "u,ctrl+z", "undo", "Undo", "inpaint"),
    KeySpec("inpaint.redo", "ctrl+y,U", "redo", "Redo", "inpaint", show=False),
    KeySpec("inpaint.feather_more", "right_square_bracket", "feather(1)", "Feather +", "inpaint", show=False),
    KeySpec("inpaint.feather_less", "left_square_bracket", "feather(-1)", "Feather -", "inpaint", show=False),
    KeySpec("inpaint.load", "l", "load_mask", "Load mask", "inpaint"),
    KeySpec("inpaint.fields", "tab", "focus_fields", "Prompt and strength", "inpaint", show=False),
    KeySpec("inpaint.back", "escape", "back", "Back", "inpaint"),
    KeySpec("inpaint.left", "left", "move(-1, 0)", "Brush left", "inpaint", show=False),
    KeySpec("inpaint.right", "right", "move(1, 0)", "Brush right", "inpaint", show=False),
    KeySpec("inpaint.up", "up", "move(0, -1)", "Brush up", "inpaint", show=False),
    KeySpec("inpaint.down", "down", "move(0, 1)", "Brush down", "inpaint", show=False),
    KeySpec("inpaint.left_far", "shift+left", "move(-4, 0)", "Brush 4 left", "inpaint", show=False),
    KeySpec("inpaint.right_far", "shift+right", "move(4, 0)", "Brush 4 right", "inpaint", show=False),
    KeySpec("inpaint.up_far", "shift+up", "move(0, -4)", "Brush 4 up", "inpaint", show=False),
    KeySpec("inpaint.down_far", "shift+down", "move(0, 4)", "Brush 4 down", "inpaint", show=False),
    # explore
    KeySpec("explore.promote", "enter", "promote", "Promote", "explore"),
    KeySpec("explore.again", "r", "again", "New grid", "explore"),
    KeySpec("explore.keep", "f", "keep", "Favorite", "explore"),
    KeySpec("explore.history", "o", "open_history", "In History", "explore"),
    KeySpec("explore.generate", "g", "open_generate", "To Generate", "explore"),
    KeySpec("explore.cancel", "x", "cancel_grid", "Stop grid", "explore"),
    KeySpec("explore.back", "escape", "back", "Back", "explore", show=False),
    KeySpec("explore.lock_prompt", "p", "toggle_lock('prompt')", "Lock prompt", "explore", show=False),
    KeySpec("explore.lock_seed", "s", "toggle_lock('seed')", "Lock seed", "explore", show=False),
    KeySpec("explore.lock_steps", "t", "toggle_lock('steps')", "Lock steps", "explore", show=False),
    KeySpec("explore.lock_cfg", "c", "toggle_lock('cfg')", "Lock CFG", "explore", show=False),
    KeySpec("explore.lock_sampler", "a", "toggle_lock('sampler')", "Lock sampler", "explore", show=False),
    KeySpec("explore.lock_scheduler", "d", "toggle_lock('scheduler')", "Lock scheduler", "explore", show=False),
    KeySpec("explore.left", "left", "move(-1, 0)", "Cell left", "explore", show=False),
    KeySpec("explore.right", "right", "move(1, 0)", "Cell right", "explore", show=False),
    KeySpec("explore.up", "up", "move(0, -1)", "Cell up", "explore", show=False),
    KeySpec("explore.down", "down", "move(0, 1)", "Cell down", "explore", show=False),
    KeySpec("explore.view", "v", "view_cell", "View", "explore"),
    KeySpec("explore.compare", "V", "compare_cell", "Compare with anchor", "explore", show=False),
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
    # the full-screen viewer (pushed over History, Generate or Explore)
    KeySpec("viewer.close", "escape,v", "close", "Back", "viewer"),
    KeySpec("viewer.next", "n,space,pagedown", "step(1)", "Next", "viewer"),
    KeySpec("viewer.previous", "p,backspace,pageup", "step(-1)", "Previous", "viewer"),
    KeySpec("viewer.zoom_in", "plus,equals_sign", "zoom(1)", "Zoom in", "viewer"),
    KeySpec("viewer.zoom_out", "minus", "zoom(-1)", "Zoom out", "viewer"),
    KeySpec("viewer.fit", "0", "fit", "Fit", "viewer"),
    KeySpec("viewer.compare", "c", "compare", "Compare", "viewer"),
    KeySpec("viewer.mark", "m", "mark", "Mark for compare", "viewer"),
    KeySpec("viewer.left", "left,h", "pan(-1, 0)", "Pan left", "viewer", show=False),
    KeySpec("viewer.right", "right,l", "pan(1, 0)", "Pan right", "viewer", show=False),
    KeySpec("viewer.up", "up,k", "pan(0, -1)", "Pan up", "viewer", show=False),
    KeySpec("viewer.down", "down,j", "pan(0, 1)", "Pan down", "viewer", show=False),
    KeySpec("viewer.left_far", "shift+left,H", "pan(-4, 0)", "Pan far left", "viewer", show=False),
    KeySpec("viewer.right_far", "shift+right,L", "pan(4, 0)", "Pan far right", "viewer", show=False),
    KeySpec("viewer.up_far", "shift+up,K", "pan(0, -4)", "Pan far up", "viewer", show=False),
    KeySpec("viewer.down_far", "shift+down,J", "pan(0, 4)", "Pan far down", "viewer", show=False),
    KeySpec("viewer.first", "home", "first", "First image", "viewer", show=False),
    KeySpec("viewer.last", "end", "last", "Last image", "viewer", show=False),
    KeySpec("errors.close", "escape", "close", "Close", "errors"),
    KeySpec("errors.clear", "x", "clear", "Clear log", "errors"),
)

BY_ID: dict[str, KeySpec] = {spec.id: spec for spec in KEYS}

# What an action does, in a sentence, where its short description is not enough (the command palette shows it).
EXPLAIN: dict[str, str] = {
    "app.help": "Every key, and how images are drawn",
    "app.errors": "The error log, with the whole message of every error",
    "app.theme": "Choose a theme (remembered in ui.theme)",
    "app.quit": "Quit the interface; the service keeps running queued work",
    "app.leave_field": "Leave the text field, so single-letter keys work again",
    "generate.submit": "Queue the form as a generate job",
    "generate.cancel": "Stop this screen's job after the image being made",
    "generate.prompt_prev": "Put an earlier prompt in the prompt field",
    "generate.prompt_next": "Put a newer prompt in the prompt field",
    "generate.lora": "Insert a LoRA tag (and its trigger words) at the cursor",
    "generate.seed_lock": "Keep the seed across runs",
    "generate.focus_prompt": "Move the cursor to the prompt",
    "generate.clear_init": "Forget the init image (back to text to image)",
    "generate.enhance": "Let the LLM write a richer prompt; you choose whether to use it",
    "generate.extract_styles": "Let the LLM find reusable styles in the prompt and save the ones you choose",
    "generate.paste_params": "Fill the form from a pasted parameters block (AUTOMATIC1111, Forge, sd.cpp)",
    "generate.snippets": "Insert a snippet of the prompt library at the cursor",
    "generate.explore": "A 3x3 grid of variations around the last result",
    "generate.hires": "Turn the hires fix (a second, upscaled pass) on or off",
    "generate.lora_up": "Raise the weight of the LoRA tag under the cursor",
    "generate.lora_down": "Lower the weight of the LoRA tag under the cursor",
    "inpaint.submit": "Queue the inpaint of the masked area",
    "inpaint.invert": "Swap the painted and the unpainted areas",
    "inpaint.load": "Use a mask from a file (white: repaint)",
    "inpaint.back": "Back to the History screen",
    "explore.promote": "Make the chosen cell the centre of a new grid",
    "explore.again": "A new grid around the same image, with the locks as they are",
    "explore.keep": "Mark the chosen cell's image as a favorite",
    "explore.history": "Show the chosen cell's image in History",
    "explore.generate": "Load the chosen cell's parameters into Generate",
    "explore.cancel": "Stop the grid's jobs that have not finished",
    "queue.cancel": "Cancel the selected job (a running batch stops after the current image)",
    "queue.cancel_now": "Cancel the selected job at once (its worker restarts with the model)",
    "queue.retry": "Queue a failed or cancelled job again",
    "queue.priority_up": "Raise the selected job's priority",
    "queue.priority_down": "Lower the selected job's priority",
    "queue.pause": "Pause the queue (running jobs finish) or resume it",
    "queue.show_all": "Show finished jobs too, or only the active ones",
    "vram.refresh": "Read the memory figures now",
    "settings.save": "Check every field and save config.json",
    "settings.revert": "Put back what config.json holds",
}


def bindings_for(scope: str) -> list[BindingType]:
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
             "down": "↓", "left": "←", "right": "→", "space": "space", "equals_sign": "=",
             "left_square_bracket": "[", "right_square_bracket": "]"}
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
