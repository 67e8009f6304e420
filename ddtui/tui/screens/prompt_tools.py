"""The Generate screen's prompt tools: the controller that runs them (`PromptTools`) and their dialogs.

The tools: LLM enhancement (streamed into a preview, accepted or not), style extraction (the LLM's proposals,
the chosen ones saved as styles), snippets from the prompt library, an AUTOMATIC1111 parameters block pasted
into the form, and LoRA tags inserted at the cursor with their trigger words once.

Each dialog only shows and answers (`dismiss`). `PromptTools` submits the LLM jobs through its screen (which
routes each job's events back to it), feeds tokens and answers into the dialogs (`add_text`, `finish`,
`fail`) and applies what was chosen to the form.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, SelectionList, Static, TextArea
from textual.widgets.option_list import Option
from textual.worker import Worker

from ...catalog.models import SAMPLERS, SCHEDULERS, Catalog, ModelEntry
from ...core.client import RequestFailed, ServiceUnavailable
from ...core.metadata import parse_parameters_text
from ...core.prompt_tools import (
    STYLES_SCHEMA,
    PromptToolError,
    enhance_messages,
    read_enhanced,
    read_styles,
    styles_messages,
)
from ...core.styles import StyleError, save_style
from ..host import Host
from ..messages import JobEvent, JobPreview, JobProgress
from ..prompt_library import SnippetData, count_snippet_use, list_snippets, list_styles
from ..prompt_text import lora_tag, missing_words
from ..widgets.generate_form import GenerateForm

CSS = Path(__file__).parent / "prompt_tools.tcss"


JobMessage = JobEvent | JobProgress | JobPreview


class ToolScreen(Protocol):
    """What the prompt tools need of the screen they work for."""

    @property
    def app(self) -> Host: ...

    @property
    def form(self) -> GenerateForm: ...

    def status(self, text: str) -> None: ...

    def run_worker(self, work: Any, *, group: str = ..., thread: bool = ..., exit_on_error: bool = ...
                   ) -> Worker[Any]: ...

    async def submit_job(self, kind: str, params: dict[str, Any], handler: Callable[[JobMessage], None],
                         priority: int = 0, on_queued: Callable[[str], bool] | None = None) -> dict[str, Any]: ...

    def forget_job(self, job_id: str) -> bool: ...

    def cancel_job(self, job_id: str, note: bool = True) -> Awaitable[None] | Any: ...


class PromptTools:
    """Runs the prompt tools for one Generate screen (see the module docstring)."""

    def __init__(self, screen: ToolScreen) -> None:
        self.screen = screen

    @property
    def app(self) -> Host:
        return self.screen.app

    @property
    def form(self) -> GenerateForm:
        return self.screen.form

    # ------------------------------------------------------------------ the LLM tools

    def _can_ask(self, prompt: str) -> bool:
        if not prompt.strip():
            self.app.notify("Write a prompt first.", severity="warning")
            return False
        if self.app.client is None:
            self.app.notify_error("The prompt tools need the service",
                                  f"the LLM runs in the ddtui service: {self.app.service_reason}")
            return False
        return True

    def _ask(self, messages: list[dict[str, str]], params: dict[str, Any], handler: Callable[[JobEvent], None],
             dialog: EnhanceDialog | StyleProposals) -> None:
        """Submit a chat job for `dialog`; its events go to `handler` (the last one is final)."""
        def route(message: JobMessage) -> None:
            if isinstance(message, JobEvent):
                handler(message)

        def queued(job_id: str) -> bool:
            dialog.job_id = job_id
            return dialog.is_attached  # closed before the service answered: nobody wants the answer

        async def submit() -> None:
            try:
                await self.screen.submit_job("chat", {"messages": messages, "params": params}, route, priority=5,
                                             on_queued=queued)
            except (RequestFailed, ServiceUnavailable) as exc:
                handler(JobEvent("", "failed", {"reason": "service", "message": str(exc)}))

        self.screen.run_worker(submit(), group="generate-llm", exit_on_error=False)

    def _closed(self, dialog: EnhanceDialog | StyleProposals) -> None:
        if dialog.job_id and self.screen.forget_job(dialog.job_id):  # the LLM still writes: stop it
            self.screen.cancel_job(dialog.job_id, note=False)

    def enhance(self) -> None:
        prompt = self.form.prompt_text().strip()
        if not self._can_ask(prompt):
            return
        dialog = EnhanceDialog(prompt)
        self.app.push_screen(dialog, partial(self._enhance_answer, dialog))
        system = self.app.cfg["llm"]["system_prompts"]["enhance"]
        self._ask(enhance_messages(system, prompt), {"max_tokens": 300, "temperature": 0.7, "stream": True},
                  partial(self._enhance_event, dialog, prompt), dialog)

    def _enhance_event(self, dialog: EnhanceDialog, original: str, message: JobEvent) -> None:
        if not dialog.is_attached:
            return
        d = message.data
        if message.event == "token":
            dialog.add_text(str(d.get("text", "")))
        elif message.event == "done":
            try:
                dialog.finish(read_enhanced(str(d.get("text", "")), original))
            except PromptToolError as exc:
                dialog.fail(str(exc))
        elif message.final:
            dialog.fail(f"the LLM job {message.event}: {d.get('message', '')}".strip(": "))

    def _enhance_answer(self, dialog: EnhanceDialog, enhanced: str | None) -> None:
        self._closed(dialog)
        if enhanced:
            self.form.replace_prompt(enhanced)
            self.screen.status("The prompt is the enhanced one; ctrl+z in the prompt brings yours back.")

    def extract_styles(self) -> None:
        prompt = self.form.prompt_text().strip()
        if not self._can_ask(prompt):
            return
        dialog = StyleProposals(prompt)
        self.app.push_screen(dialog, partial(self._styles_chosen, dialog))
        system = self.app.cfg["llm"]["system_prompts"]["styles"]
        self._ask(styles_messages(system, prompt), {"json_schema": STYLES_SCHEMA, "max_tokens": 900, "stream": False},
                  partial(self._styles_event, dialog), dialog)

    def _styles_event(self, dialog: StyleProposals, message: JobEvent) -> None:
        if not dialog.is_attached or not message.final:
            return
        if message.event != "done":
            dialog.fail(f"the LLM job {message.event}: {message.data.get('message', '')}")
            return
        try:
            dialog.show(read_styles(str(message.data.get("text", ""))))
        except PromptToolError as exc:
            dialog.fail(str(exc))

    def _styles_chosen(self, dialog: StyleProposals, chosen: list[dict[str, str]] | None) -> None:
        self._closed(dialog)
        if chosen:
            self.screen.run_worker(partial(self._save_styles, chosen), group="generate-styles", thread=True,
                                   exit_on_error=False)

    def _save_styles(self, chosen: list[dict[str, str]]) -> None:
        """Blocking (a thread worker): save the chosen styles, then show the style list again."""
        app = self.app
        saved, problems = [], []
        for style in chosen:
            try:
                save_style(app.db, style["name"], style["prompt"], style.get("negative_prompt", ""))
                saved.append(style["name"])
            except StyleError as exc:
                problems.append(str(exc))
        styles = [(s.name, s.prompt, s.negative_prompt) for s in list_styles(app.db)]
        app.call_from_thread(self._styles_saved, styles, saved, problems)

    def _styles_saved(self, styles: list[tuple[str, str, str]], saved: list[str], problems: list[str]) -> None:
        self.form.show_styles(styles)
        if saved:
            self.app.notify(f"Saved {', '.join(saved)}: toggle them in the style list.", title="Styles", markup=False)
        if problems:
            self.app.notify_error("Some styles were not saved", "\n".join(problems))

    # ------------------------------------------------------------------ the prompt library, parameters, LoRAs

    def insert_snippet(self) -> None:
        self.screen.run_worker(self._load_snippets, group="generate-snippets", thread=True, exit_on_error=False)

    def _load_snippets(self) -> None:
        snippets = list_snippets(self.app.db, "use")
        self.app.call_from_thread(self.app.push_screen, SnippetPicker(snippets), self._snippet_chosen)

    def _snippet_chosen(self, snippet: SnippetData | None) -> None:
        if snippet is None or snippet.id is None:
            return
        self.form.insert_at_cursor(snippet.content)
        self.screen.run_worker(partial(count_snippet_use, self.app.db, snippet.id), group="generate-snippets",
                               thread=True, exit_on_error=False)

    def paste_parameters(self) -> None:
        self.app.push_screen(PasteParameters(), self._parameters_pasted)

    def _parameters_pasted(self, text: str | None) -> None:
        if not text:
            return
        values, notes = fill_from_parameters(parse_parameters_text(text), SAMPLERS, SCHEDULERS)
        if not values.get("prompt"):
            self.app.notify_error("Nothing to fill", "the pasted text has no prompt")
            return
        self.form.load_params(values)
        self.form.focus_prompt()
        filled = ", ".join(k for k in ("steps", "cfg", "sampler", "scheduler", "seed", "width") if k in values)
        note = f" Left out: {'; '.join(notes)}." if notes else ""
        self.app.notify(f"Prompt, negative prompt{', ' + filled.replace('width', 'size') if filled else ''} "
                        f"filled.{note}", title="Parameters pasted", timeout=10, markup=False)
        self.screen.status(f"Pasted parameters.{note}")

    def insert_lora(self) -> None:
        self.app.push_screen(LoraPicker(self.app.catalog()), self._lora_chosen)

    def _lora_chosen(self, entry: ModelEntry | None) -> None:
        if entry is None:
            return
        sc = entry.sidecar
        words = missing_words(self.form.prompt_text(), sc.trigger_words if sc else [])
        # The trigger words go right after the tag, and only those the prompt lacks.
        self.form.insert_at_cursor(lora_tag(entry.name, sc.default_weight if sc else 1.0) +
                                   (f" {', '.join(words)}" if words else ""))


# ------------------------------------------------------------------ dialogs


class LoraPicker(ModalScreen[ModelEntry | None]):
    """Pick a LoRA from the catalog; answers its catalog entry (the tools insert the tag and trigger words)."""

    CSS_PATH = CSS
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="generate.lora.close")]

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.entries = [e for e in catalog.of_kind("lora") if e.usable]

    def compose(self) -> ComposeResult:
        with Vertical(id="lora-box"):
            yield Label("Insert a LoRA at the cursor  (enter: insert, esc: close)", id="lora-title")
            options = []
            for e in self.entries:
                sc = e.sidecar
                weight = sc.default_weight if sc else 1.0
                trigger = f" — trigger: {', '.join(sc.trigger_words)}" if sc and sc.trigger_words else ""
                options.append(Option(escape(f"{e.name}  (weight {weight:g}){trigger}"), id=e.rel_path))
            if not options:
                options.append(Option("No LoRA files in models/lora/", id="", disabled=True))
            yield OptionList(*options, id="lora-list")

    @on(OptionList.OptionSelected, "#lora-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(next((e for e in self.entries if e.rel_path == event.option.id), None))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


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
