"""The generate screen's prompt-tool dialogs: the streamed LLM enhancement, the LLM's style proposals, the
prompt library's snippets, and a box to paste an AUTOMATIC1111 parameters block into.

Each dialog only shows and answers (`dismiss`); the generate screen submits the LLM jobs, feeds their tokens
and answers in (`add_text`, `finish`, `fail`) and applies what was chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, SelectionList, Static, TextArea
from textual.widgets.option_list import Option

from .styles import SnippetData

CSS = Path(__file__).parent / "prompt_tools.tcss"


class EnhanceDialog(ModalScreen[str | None]):
    """The enhanced prompt as the LLM writes it; enter uses it, escape keeps the prompt as it was."""

    CSS_PATH = CSS
    BINDINGS = [
        Binding("enter", "accept", "Use it", id="generate.enhance.accept"),
        Binding("escape", "reject", "Keep mine", id="generate.enhance.reject"),
    ]

    def __init__(self, original: str) -> None:
        super().__init__()
        self.original = original
        self.job_id = ""  # the chat job, once the service named it
        self.streamed = ""
        self.result: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="tool-box"):
            yield Label("Enhanced prompt", classes="tool-title")
            yield Static(f"Yours: {self.original}", id="enhance-original", markup=False)
            yield Static("The LLM is writing…", id="enhance-preview", markup=False)
            yield Label("esc: keep yours", id="enhance-note", classes="tool-note")

    def add_text(self, text: str) -> None:
        """More streamed tokens."""
        self.streamed += text
        self.query_one("#enhance-preview", Static).update(self.streamed + " ▌")

    def finish(self, enhanced: str) -> None:
        self.result = enhanced
        self.query_one("#enhance-preview", Static).update(enhanced)
        self.query_one("#enhance-note", Label).update(
            "enter: use it (ctrl+z in the prompt undoes it) · esc: keep yours")

    def fail(self, message: str) -> None:
        self.query_one("#enhance-preview", Static).update(self.streamed or "(nothing usable)")
        self.query_one("#enhance-note", Label).update(Content.assemble((message, "bold"), " · esc: close"))

    def action_accept(self) -> None:
        if self.result is None:
            self.notify("The LLM has not finished yet.", timeout=2)
            return
        self.dismiss(self.result)

    def action_reject(self) -> None:
        self.dismiss(None)


class StyleProposals(ModalScreen[list[dict[str, str]] | None]):
    """The styles the LLM found in the prompt; space toggles one, ctrl+s saves the chosen ones."""

    CSS_PATH = CSS
    BINDINGS = [
        Binding("ctrl+s", "save", "Save chosen", id="generate.styles.save"),
        Binding("escape", "close", "Close", id="generate.styles.close"),
    ]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt
        self.job_id = ""
        self.proposals: list[dict[str, str]] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="tool-box"):
            yield Label("Styles in this prompt", classes="tool-title")
            yield Static(self.prompt, id="styles-prompt", markup=False)
            yield Static("Asking the LLM…", id="styles-wait", markup=False)
            yield SelectionList[int](id="style-proposals")
            with Horizontal(classes="tool-buttons"):
                yield Button("Save chosen (ctrl+s)", variant="primary", id="styles-save")
                yield Button("Close (esc)", id="styles-close")

    def on_mount(self) -> None:
        self.query_one("#style-proposals").display = False

    def show(self, proposals: list[dict[str, str]]) -> None:
        self.proposals = proposals
        self.query_one("#styles-wait", Static).update("space toggles a style; the chosen ones are saved as styles.")
        options = self.query_one("#style-proposals", SelectionList)
        for i, p in enumerate(proposals):
            # Plain content, never markup: an LLM's text may hold brackets.
            negative = (f"  (negative: {p['negative_prompt']})", "dim") if p.get("negative_prompt") else ""
            options.add_option((Content.assemble((p["name"], "bold"), f": {p['prompt']}", negative), i, True))
        options.display = True
        options.focus()

    def fail(self, message: str) -> None:
        self.query_one("#styles-wait", Static).update(f"No styles: {message}")

    @on(Button.Pressed, "#styles-save")
    def action_save(self) -> None:
        chosen = [self.proposals[i] for i in self.query_one("#style-proposals", SelectionList).selected]
        if not chosen:
            self.notify("Choose at least one style (space), or close with esc.", severity="warning")
            return
        self.dismiss(chosen)

    @on(Button.Pressed, "#styles-close")
    def action_close(self) -> None:
        self.dismiss(None)


class SnippetPicker(ModalScreen[SnippetData | None]):
    """The prompt library, most used first; enter inserts the snippet at the prompt's cursor."""

    CSS_PATH = CSS
    BINDINGS = [Binding("escape", "close", "Close", id="generate.snippets.close")]

    def __init__(self, snippets: list[SnippetData]) -> None:
        super().__init__()
        self.snippets = snippets

    def compose(self) -> ComposeResult:
        with Vertical(classes="tool-box"):
            yield Label("Insert a snippet at the cursor  (enter: insert, esc: close)", classes="tool-title")
            options = [Option(Content(f"{s.label}  ({s.use_count} uses, {s.category}) — "
                                      f"{' '.join(s.content.split())[:60]}"), id=str(i))
                       for i, s in enumerate(self.snippets)]
            if not options:
                options.append(Option("The prompt library is empty: add snippets on the Styles screen (F6, t).",
                                      disabled=True))
            yield OptionList(*options, id="snippet-list")

    @on(OptionList.OptionSelected, "#snippet-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.snippets[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)


class PasteParameters(ModalScreen[str | None]):
    """A box for an AUTOMATIC1111 parameters block (prompt, "Negative prompt:", "Steps: ..., Seed: ...")."""

    CSS_PATH = CSS
    BINDINGS = [
        Binding("ctrl+s", "fill", "Fill the form", id="generate.paste.fill"),
        Binding("escape", "close", "Close", id="generate.paste.close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="tool-box"):
            yield Label("Paste a parameters block (AUTOMATIC1111, Forge, sd.cpp)", classes="tool-title")
            yield TextArea(id="paste-text", soft_wrap=True, show_line_numbers=False)
            yield Label("ctrl+s: fill the form · esc: close. Values ddtui does not know are left out, with a note.",
                        classes="tool-note")

    def on_mount(self) -> None:
        self.query_one("#paste-text", TextArea).focus()

    def action_fill(self) -> None:
        text = self.query_one("#paste-text", TextArea).text
        if not text.strip():
            self.notify("Paste a parameters block first.", severity="warning")
            return
        self.dismiss(text)

    def action_close(self) -> None:
        self.dismiss(None)


def fill_from_parameters(parsed: dict[str, Any], samplers: tuple[str, ...], schedulers: tuple[str, ...]
                         ) -> tuple[dict[str, Any], list[str]]:
    """The form values from `parse_parameters_text`'s answer, and notes on what was left out and why."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    if parsed.get("prompt"):
        values["prompt"] = parsed["prompt"]
    values["negative_prompt"] = parsed.get("negative_prompt") or ""
    for key in ("steps", "cfg", "seed"):
        if parsed.get(key) is not None:
            values[key] = parsed[key]
    if parsed.get("width") and parsed.get("height"):
        w, h = int(parsed["width"]), int(parsed["height"])
        if w % 8 or h % 8 or not (64 <= w <= 4096 and 64 <= h <= 4096):
            notes.append(f"size {w}x{h} (not a multiple of 8 from 64 to 4096)")
        else:
            values["width"], values["height"] = w, h
    for key, known in (("sampler", samplers), ("scheduler", schedulers)):
        label = parsed.get(f"{key}_label")
        if parsed.get(key) in known:
            values[key] = parsed[key]
        elif label:
            notes.append(f"{key} {label!r} (no stable-diffusion.cpp equivalent)")
    if parsed.get("model"):
        notes.append(f"model {parsed['model']!r} (choose a model of yours)")
    for key in ("strength", "clip_skip", "guidance"):
        if parsed.get(key) is not None:
            notes.append(f"{key.replace('_', ' ')} {parsed[key]}")
    extra = parsed.get("extra") or {}
    shown = [k for k in extra if k not in ("sdcpp", "Version")]
    if shown:
        notes.append("other settings: " + ", ".join(shown[:8]) + (" …" if len(shown) > 8 else ""))
    return values, notes
