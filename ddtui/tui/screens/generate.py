"""The generate screen: the prompt form, submitting from the keyboard, live progress and preview, results.

Fields left empty use the chosen model's (or preset's) defaults, shown as placeholders. The form, with the
prompts submitted so far, is kept in the history database (`Setting` row `tui.generate.form`) so it comes
back the next time; ctrl+up / ctrl+down walk the submitted prompts, and the prompt editor's own undo (ctrl+z)
and redo (ctrl+y) work on top: every change this screen makes to the prompt is an edit, so ctrl+z takes it
back. Styles are applied here, before submitting, exactly as the CLI does; the final prompt is previewed
under the style list. The hires fix (a second, upscaled pass) is sent as the request's `hires` dict.

Prompt tools: LLM enhancement (streamed into a preview, accepted or not), style extraction (the LLM's
proposals, the chosen ones saved as styles), snippets from the prompt library, an AUTOMATIC1111 parameters
block pasted into the form, LoRA tags inserted at the cursor (with their trigger words once) and the weight of
the tag under the cursor nudged. The last result can be explored (a 3x3 grid) or, from History, inpainted.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any, Callable

from pony.orm import db_session
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, Footer, Header, Input, Label, OptionList, Select, SelectionList, Static, TextArea
from textual.widgets.option_list import Option

from ...catalog.models import SAMPLERS, SCHEDULERS, Catalog, ModelEntry
from ...core.client import RequestFailed, ServiceUnavailable
from ...core.metadata import parse_parameters_text
from ...core.params import MAX_BATCH, ParamError, parse_size
from ...core.prompt_tools import (
    STYLES_SCHEMA,
    PromptToolError,
    enhance_messages,
    read_enhanced,
    read_styles,
    styles_messages,
)
from ...core.styles import StyleError, apply_style, apply_styles, save_style
from ...core.thumbnails import thumbnail_path
from ..app import ReportsWorkerErrors, ScreenNav
from ..keys import bindings_for
from ..messages import JobEvent, JobPreview, JobProgress, ServiceState, SettingsChanged
from ..prompt_text import adjust_weight, format_weight, lora_tag, missing_words, separator_before
from ..widgets.image import ImageView
from ..widgets.progress import JobProgressBar
from .prompt_tools import EnhanceDialog, PasteParameters, SnippetPicker, StyleProposals, fill_from_parameters
from .styles import SnippetData, count_snippet_use, list_snippets

FORM_SETTING = "tui.generate.form"
PROMPT_HISTORY_KEEP = 100
HIRES_DEFAULTS = {"scale": "2", "steps": "10", "strength": "0.5"}


class ResultThumb(Vertical):
    """One finished image in the result strip: its thumbnail and its history id and seed."""

    def __init__(self, generation_id: int, thumb: Path, seed: Any) -> None:
        super().__init__(classes="result")
        self.generation_id = generation_id
        self.thumb = thumb
        self.seed = seed

    def compose(self) -> ComposeResult:
        yield ImageView("…", classes="result-image")
        yield Label(f"#{self.generation_id} · {self.seed}", classes="result-label")

    def on_mount(self) -> None:
        if self.thumb.exists():
            self.query_one(ImageView).show_file(self.thumb)


class LoraPicker(ModalScreen[ModelEntry | None]):
    """Pick a LoRA from the catalog; answers its catalog entry (the screen inserts the tag and trigger words)."""

    CSS_PATH = Path(__file__).parent / "generate.tcss"
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


class GenerateScreen(ReportsWorkerErrors, Screen):
    """Write a prompt, pick a model or preset, and generate; previews and results show as they come."""

    CSS_PATH = Path(__file__).parent / "generate.tcss"
    TITLE = "Generate"
    BINDINGS = bindings_for("generate")

    job_id: reactive[str] = reactive("")
    seed_locked: reactive[bool] = reactive(False, init=False)

    def __init__(self) -> None:
        super().__init__(name="generate")
        self.prompt_history: list[str] = []
        self._history_pos: int | None = None
        self._draft = ""
        self._my_jobs: set[str] = set()
        self._submitting = 0  # submits waiting for the service's answer
        self._early: list[JobEvent | JobProgress | JobPreview] = []
        self._results = 0
        self._pending_params: list[dict[str, Any]] = []
        self._init_image: Path | None = None
        self._init_generation: int | None = None
        self._defaults: dict[str, dict[str, Any]] = {}
        self._upscalers: list[str] = []
        self._style_texts: dict[str, tuple[str, str]] = {}  # style name -> (prompt, negative prompt)
        self._tool_jobs: dict[str, Callable[[JobEvent], None]] = {}  # LLM job id -> who reads its events
        self._ready = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield ScreenNav()
        with Horizontal(id="gen-main"):
            with VerticalScroll(id="gen-form"):
                yield Label("Prompt", classes="field-label", id="prompt-label")
                yield TextArea(id="prompt", soft_wrap=True, tab_behavior="focus", show_line_numbers=False)
                yield Label("Negative prompt", classes="field-label", id="negative-label")
                yield TextArea(id="negative", soft_wrap=True, tab_behavior="focus", show_line_numbers=False)
                with Horizontal(classes="row"):
                    yield Label("Model", classes="inline-label")
                    yield Select([], id="model", prompt="(default model)", allow_blank=True, compact=True)
                with Horizontal(classes="row"):
                    yield Label("Size", classes="inline-label")
                    yield Input(id="size", placeholder="model default", compact=True)
                    yield Label("Steps", classes="inline-label")
                    yield Input(id="steps", placeholder="model default", type="integer", compact=True)
                    yield Label("CFG", classes="inline-label")
                    yield Input(id="cfg", placeholder="model default", type="number", compact=True)
                with Horizontal(classes="row"):
                    yield Label("Sampler", classes="inline-label")
                    yield Select([(s, s) for s in SAMPLERS], id="sampler", prompt="model default", compact=True)
                    yield Label("Scheduler", classes="inline-label")
                    yield Select([(s, s) for s in SCHEDULERS], id="scheduler", prompt="model default",
                                 compact=True)
                with Horizontal(classes="row"):
                    yield Label("Seed", classes="inline-label")
                    yield Input(id="seed", placeholder="random", type="integer", compact=True)
                    yield Checkbox("lock (^r)", id="seed-lock", compact=True)
                    yield Label("Batch", classes="inline-label")
                    yield Input("1", id="batch", type="integer", compact=True)
                with Horizontal(classes="row"):
                    yield Checkbox("Hires fix", id="hires", compact=True)
                    yield Label("Scale", classes="inline-label hires-field")
                    yield Input(HIRES_DEFAULTS["scale"], id="hires-scale", type="number", compact=True,
                                classes="hires-field")
                    yield Label("Steps", classes="inline-label hires-field")
                    yield Input(HIRES_DEFAULTS["steps"], id="hires-steps", type="integer", compact=True,
                                classes="hires-field")
                    yield Label("Strength", classes="inline-label hires-field")
                    yield Input(HIRES_DEFAULTS["strength"], id="hires-strength", type="number", compact=True,
                                classes="hires-field")
                with Horizontal(classes="row hires-field", id="hires-upscaler-row"):
                    yield Label("Upscaler", classes="inline-label")
                    yield Select([], id="hires-upscaler", prompt="Lanczos resize (no model)", allow_blank=True,
                                 compact=True)
                with Horizontal(classes="row", id="init-row"):
                    yield Label("", id="init-label")
                    yield Input("0.75", id="strength", type="number", placeholder="strength", compact=True)
                yield Label("Styles  [dim](space: toggle)[/]", classes="field-label", id="styles-label")
                yield SelectionList[str](id="styles")
                yield Static("", id="styles-preview", markup=False)
                yield Static("", id="form-error", markup=False)
            with Vertical(id="gen-side"):
                yield ImageView("Live preview appears here", id="preview")
                yield JobProgressBar(id="progress")
                yield Static("", id="gen-status", markup=False)
        with Vertical(id="results-box"):
            yield Label("Results", id="results-title")
            yield HorizontalScroll(id="results")
        yield Footer()

    def on_mount(self) -> None:
        key = self.app.key_label  # type: ignore[attr-defined]
        self.query_one("#prompt-label", Label).update(
            f"Prompt  [dim]({key('generate.prompt_prev')}/{key('generate.prompt_next')} earlier · ^z undo · "
            f"{key('generate.lora')} LoRA · {key('generate.lora_up')}/{key('generate.lora_down')} its weight · "
            f"{key('generate.enhance')} enhance)[/]")
        self.query_one("#negative-label", Label).update(
            f"Negative prompt  [dim]({key('generate.paste_params')} paste parameters · "
            f"{key('generate.snippets')} snippet · {key('generate.extract_styles')} styles from the prompt)[/]")
        self.query_one("#hires", Checkbox).label = f"Hires fix ({key('generate.hires')})"
        self.query_one("#init-row").display = False
        self._show_hires(False)
        self.query_one("#styles-preview").display = False
        self.query_one("#prompt", TextArea).focus()
        self._show_service_state(self.app.link.connected, self.app.link.reason)  # type: ignore[attr-defined]
        self.load_form()

    @property
    def form_loaded(self) -> bool:
        """The saved form and the choices are in the fields (saving before that would lose the form)."""
        return self._ready

    def on_screen_suspend(self) -> None:
        if self._ready:
            self._save_form_in_background(self.form_for_saving())

    # ------------------------------------------------------------------ loading choices and the saved form

    @work(group="generate-load", thread=True, exit_on_error=False)
    def load_form(self) -> None:
        app = self.app
        catalog: Catalog = app.catalog()  # type: ignore[attr-defined]
        with db_session:
            presets = [(p.name, p.model, dict(p.params)) for p in app.db.ImagePreset.select().order_by(lambda p: p.name)]  # type: ignore[attr-defined]
            style_rows = app.db.Style.select().order_by(lambda s: s.name)  # type: ignore[attr-defined]
            styles = [(s.name, s.prompt, s.negative_prompt or "") for s in style_rows]
            row = app.db.Setting.get(key=FORM_SETTING)  # type: ignore[attr-defined]
            saved = dict(row.value) if row is not None and isinstance(row.value, dict) else {}
        app.call_from_thread(self._fill_choices, catalog, presets, styles, saved)

    def _fill_choices(self, catalog: Catalog, presets: list[tuple[str, str, dict]],
                      styles: list[tuple[str, str, str]], saved: dict[str, Any]) -> None:
        options: list[tuple[str, str]] = []
        self._defaults = {}
        for e in catalog.of_kind("image"):
            if not e.usable:
                continue
            value = f"model:{e.rel_path}"
            options.append((escape(f"model  {e.name}"), value))
            self._defaults[value] = dict(e.sidecar.defaults) if e.sidecar else {}
        for name, model, params in presets:
            value = f"preset:{name}"
            options.append((escape(f"preset {name}"), value))
            base = {}
            try:
                entry = catalog.find(model, kind="image")
                base = dict(entry.sidecar.defaults) if entry.sidecar else {}
            except Exception:  # noqa: BLE001 - a preset whose model is gone still lists; submit reports it
                pass
            self._defaults[value] = {**base, **params}
        model_select = self.query_one("#model", Select)
        model_select.set_options(options)
        default_model = self.app.cfg["sd"]["default_model"]  # type: ignore[attr-defined]
        if default_model and f"model:{default_model}" in self._defaults:
            self._defaults[Select.NULL] = self._defaults[f"model:{default_model}"]  # type: ignore[index]
        self._show_styles(styles)
        upscalers = [(escape(e.name), e.rel_path) for e in catalog.of_kind("esrgan") if e.usable]
        self._upscalers = [value for _, value in upscalers]
        self.query_one("#hires-upscaler", Select).set_options(upscalers)
        if not options:
            self._error("No image models found. Put models in models/stable-diffusion/ or run "
                        "`ddtui models demo`.")
        self.prompt_history = [p for p in saved.get("prompt_history", []) if isinstance(p, str)][-PROMPT_HISTORY_KEEP:]
        self._apply_form(saved)
        self._ready = True
        pending, self._pending_params = self._pending_params, []
        for params in pending:
            self.load_params(params)
        self._update_placeholders()
        self._update_styles_preview()

    def _show_styles(self, styles: list[tuple[str, str, str]]) -> None:
        style_list = self.query_one("#styles", SelectionList)
        chosen = set(style_list.selected)
        self._style_texts = {name: (prompt, negative) for name, prompt, negative in styles}
        style_list.clear_options()
        style_list.add_options([(Content(name), name, name in chosen) for name, _, _ in styles])
        style_list.display = bool(styles)
        self.query_one("#styles-label", Label).update(
            "Styles  [dim](space: toggle)[/]" if styles else "Styles  [dim]none saved yet (F6: the Styles screen)[/]")

    def _apply_form(self, form: dict[str, Any]) -> None:
        for area_id, key in (("prompt", "prompt"), ("negative", "negative")):
            area = self.query_one(f"#{area_id}", TextArea)
            if key in form and not area.text:  # text typed while the form loaded stays
                area.load_text(str(form.get(key) or ""))
        for field_id in ("size", "steps", "cfg", "seed", "batch"):
            if field_id in form and form[field_id] is not None:
                self.query_one(f"#{field_id}", Input).value = str(form[field_id])
        allowed = {"model": self._defaults, "sampler": SAMPLERS, "scheduler": SCHEDULERS}
        for field_id, values in allowed.items():
            value = form.get(field_id)
            if value and value in values:
                self.query_one(f"#{field_id}", Select).value = value
        if "seed_locked" in form:
            self.seed_locked = bool(form["seed_locked"])
        hires = form.get("hires")
        if isinstance(hires, dict):
            for key in ("scale", "steps", "strength"):
                if hires.get(key) not in (None, ""):
                    self.query_one(f"#hires-{key}", Input).value = str(hires[key])
            upscaler = self.query_one("#hires-upscaler", Select)
            if hires.get("upscaler") and hires["upscaler"] in self._upscalers:
                upscaler.value = hires["upscaler"]
            self.query_one("#hires", Checkbox).value = bool(hires.get("enabled"))
        styles = form.get("styles") or []
        style_list = self.query_one("#styles", SelectionList)
        for name in styles:
            try:
                style_list.select(name)
            except Exception:  # noqa: BLE001 - a style deleted since
                pass

    def form_for_saving(self) -> dict[str, Any]:
        """The form as plain data (the app saves it at exit too)."""
        def val(select_id: str) -> str:
            v = self.query_one(f"#{select_id}", Select).value
            return v if isinstance(v, str) else ""

        return {
            "prompt": self.query_one("#prompt", TextArea).text,
            "negative": self.query_one("#negative", TextArea).text,
            "model": val("model"), "sampler": val("sampler"), "scheduler": val("scheduler"),
            "size": self.query_one("#size", Input).value, "steps": self.query_one("#steps", Input).value,
            "cfg": self.query_one("#cfg", Input).value, "seed": self.query_one("#seed", Input).value,
            "batch": self.query_one("#batch", Input).value, "seed_locked": self.seed_locked,
            "hires": {"enabled": self.query_one("#hires", Checkbox).value,
                      **{key: self.query_one(f"#hires-{key}", Input).value for key in ("scale", "steps", "strength")},
                      "upscaler": val("hires-upscaler")},
            "styles": list(self.query_one("#styles", SelectionList).selected),
            "prompt_history": self.prompt_history[-PROMPT_HISTORY_KEEP:],
        }

    def save_form(self, form: dict[str, Any]) -> None:
        """Blocking: write the form to the Setting table (call from a thread)."""
        db = self.app.db  # type: ignore[attr-defined]
        with db_session:
            row = db.Setting.get(key=FORM_SETTING)
            if row is None:
                db.Setting(key=FORM_SETTING, value=form)
            else:
                row.value = form

    @work(group="generate-save", thread=True, exit_on_error=False, exclusive=True)
    def _save_form_in_background(self, form: dict[str, Any]) -> None:
        self.save_form(form)

    # ------------------------------------------------------------------ filling from elsewhere

    def load_params(self, params: dict[str, Any]) -> None:
        """Fill the form from a history item's params, a preset (`{"preset": name, ...}`) or insert a snippet
        (`{"insert": text}`). Only the fields named in `params` change; the prompt edits can be undone."""
        if not self._ready:
            self._pending_params.append(dict(params))
            return
        if "insert" in params:
            self.insert_at_cursor(str(params["insert"]))
            self.notify("Inserted at the cursor (ctrl+z undoes it).", title="Generate", timeout=3)
            return
        self._fill(params)
        self.query_one("#prompt", TextArea).focus()
        if params.get("preset"):
            self.notify(f"Preset {params['preset']!r} is chosen; its values are in the form.", title="Preset loaded")
        elif "prompt" in params:
            self.notify("The form holds the item's parameters; the seed is locked.", title="Loaded into Generate")

    def _fill(self, params: dict[str, Any]) -> None:
        if "prompt" in params:
            self._replace_text("#prompt", str(params.get("prompt") or ""))
            self.query_one("#batch", Input).value = "1"  # a whole item is loaded: one image, not the last batch
        if "negative_prompt" in params:
            self._replace_text("#negative", str(params.get("negative_prompt") or ""))
        select = self.query_one("#model", Select)
        preset, model = params.get("preset"), params.get("model")
        if preset and f"preset:{preset}" in self._defaults:
            select.value = f"preset:{preset}"
        elif model and f"model:{model}" in self._defaults:
            select.value = f"model:{model}"
        if params.get("width") and params.get("height"):
            self.query_one("#size", Input).value = f"{params['width']}x{params['height']}"
        for key in ("steps", "cfg"):
            if params.get(key) is not None:
                self.query_one(f"#{key}", Input).value = str(params[key])
        for key in ("sampler", "scheduler"):
            if params.get(key) in (SAMPLERS if key == "sampler" else SCHEDULERS):
                self.query_one(f"#{key}", Select).value = params[key]
        if params.get("seed") is not None:
            self.query_one("#seed", Input).value = str(params["seed"])
            self.seed_locked = True
        hires = params["hires"] if isinstance(params.get("hires"), dict) else {}
        enabled = bool(hires.get("enabled"))
        if "prompt" in params:  # a whole item: the hires fix is as it was made, on or off
            self.query_one("#hires", Checkbox).value = enabled
        if enabled:
            self.query_one("#hires", Checkbox).value = True
            for key in ("scale", "steps", "strength"):
                if hires.get(key) is not None:
                    self.query_one(f"#hires-{key}", Input).value = f"{hires[key]:g}" if isinstance(
                        hires[key], float) else str(hires[key])
            if hires.get("upscaler") in self._upscalers:
                self.query_one("#hires-upscaler", Select).value = hires["upscaler"]

    def _replace_text(self, selector: str, text: str) -> None:
        """Replace a text area's text as one edit of its own, so ctrl+z brings the old text back."""
        area = self.query_one(selector, TextArea)
        if area.text == text:
            return
        area.history.checkpoint()
        area.replace(text, (0, 0), area.document.end)
        area.history.checkpoint()

    def insert_at_cursor(self, text: str) -> None:
        """Insert `text` at the prompt's cursor, separated from the word before it."""
        area = self.query_one("#prompt", TextArea)
        row, col = area.cursor_location
        before = area.document.get_line(row)[:col]
        area.history.checkpoint()
        area.insert(separator_before(before) + text)
        area.history.checkpoint()
        area.focus()

    def prompt_text(self) -> str:
        """The prompt as typed (for `app.current_prompt`)."""
        return self.query_one("#prompt", TextArea).text

    def set_init_image(self, path: Path, generation_id: int | None = None, params: dict[str, Any] | None = None
                       ) -> None:
        self._init_image = Path(path)
        self._init_generation = generation_id
        label = f"#{generation_id}" if generation_id else Path(path).name
        self.query_one("#init-label", Label).update(f"Init image {label} (img2img) · strength:")
        self.query_one("#init-row").display = True
        if params and not self.query_one("#prompt", TextArea).text.strip():
            self.query_one("#prompt", TextArea).load_text(str(params.get("prompt") or ""))

    # ------------------------------------------------------------------ defaults shown as placeholders

    @on(Select.Changed, "#model")
    def _model_changed(self) -> None:
        self._update_placeholders()

    def _update_placeholders(self) -> None:
        value = self.query_one("#model", Select).value
        d = self._defaults.get(value, {})  # type: ignore[arg-type]
        size = f"{d['width']}x{d['height']}" if d.get("width") and d.get("height") else "model default"
        self.query_one("#size", Input).placeholder = size
        self.query_one("#steps", Input).placeholder = str(d.get("steps", "model default"))
        self.query_one("#cfg", Input).placeholder = str(d.get("cfg", "model default"))
        self.query_one("#sampler", Select).prompt = str(d.get("sampler", "model default"))
        self.query_one("#scheduler", Select).prompt = str(d.get("scheduler", "model default"))

    # ------------------------------------------------------------------ submitting

    def build_request(self) -> dict[str, Any]:
        """The generate request from the form; raises ParamError naming the field at fault."""
        prompt = self.query_one("#prompt", TextArea).text.strip()
        if not prompt:
            raise ParamError("the prompt is empty")
        req: dict[str, Any] = {"prompt": prompt}
        negative = self.query_one("#negative", TextArea).text.strip()
        if negative:
            req["negative_prompt"] = negative
        model = self.query_one("#model", Select).value
        if isinstance(model, str) and model.startswith("model:"):
            req["model"] = model[len("model:"):]
        elif isinstance(model, str) and model.startswith("preset:"):
            req["preset"] = model[len("preset:"):]
        size = self.query_one("#size", Input).value.strip()
        if size:
            req["width"], req["height"] = parse_size(size)
        for field_id, kind, name in (("steps", int, "steps"), ("cfg", float, "CFG")):
            text = self.query_one(f"#{field_id}", Input).value.strip()
            if text:
                try:
                    req[field_id] = kind(text)
                except ValueError:
                    raise ParamError(f"{name} must be a number, got {text!r}") from None
        for field_id in ("sampler", "scheduler"):
            value = self.query_one(f"#{field_id}", Select).value
            if isinstance(value, str):
                req[field_id] = value
        batch_text = self.query_one("#batch", Input).value.strip() or "1"
        try:
            batch = int(batch_text)
        except ValueError:
            raise ParamError(f"batch count must be a whole number, got {batch_text!r}") from None
        if not 1 <= batch <= MAX_BATCH:
            raise ParamError(f"batch count must be from 1 to {MAX_BATCH}, got {batch}")
        req["batch"] = batch
        seed_text = self.query_one("#seed", Input).value.strip()
        if self.seed_locked and seed_text:
            try:
                req["seed"] = int(seed_text)
            except ValueError:
                raise ParamError(f"seed must be a whole number, got {seed_text!r}") from None
        else:
            req["seed"] = -1
        if self.query_one("#hires", Checkbox).value:
            req["hires"] = self._hires_request()
        if self._init_image is not None:
            req["init_image"] = str(self._init_image)
            strength = self.query_one("#strength", Input).value.strip() or "0.75"
            try:
                req["strength"] = float(strength)
            except ValueError:
                raise ParamError(f"strength must be a number above 0 and at most 1, got {strength!r}") from None
            if self._init_generation:
                req["parent_id"] = self._init_generation
        return req

    def _hires_request(self) -> dict[str, Any]:
        """The `hires` dict from its fields; ParamError names the field at fault."""
        def number(key: str, kind: type, low: float, high: float, low_open: bool, what: str) -> Any:
            text = self.query_one(f"#hires-{key}", Input).value.strip() or HIRES_DEFAULTS[key]
            try:
                value = kind(text)
            except ValueError:
                raise ParamError(f"hires {key} must be {what}, got {text!r}") from None
            if (value <= low if low_open else value < low) or value > high:
                raise ParamError(f"hires {key} must be {what}, got {text}")
            return value

        hires: dict[str, Any] = {
            "enabled": True,
            "scale": number("scale", float, 1, 4, True, "above 1 and at most 4"),
            "steps": number("steps", int, 1, 200, False, "a whole number from 1 to 200"),
            "strength": number("strength", float, 0, 1, True, "above 0 and at most 1"),
        }
        upscaler = self.query_one("#hires-upscaler", Select).value
        hires["upscaler"] = upscaler if isinstance(upscaler, str) else ""
        return hires

    def action_submit(self) -> None:
        if not self._ready:
            self.notify("The form is still loading.", severity="warning", timeout=2)
            return
        try:
            request = self.build_request()
        except ParamError as exc:
            self._error(str(exc))
            self.notify(escape(str(exc)), title="Cannot generate", severity="error")
            return
        self._error("")
        styles = list(self.query_one("#styles", SelectionList).selected)
        self._remember_prompt(request["prompt"])
        self._save_form_in_background(self.form_for_saving())
        self.submit_request(request, styles)

    @work(group="generate-submit", exit_on_error=False)
    async def submit_request(self, request: dict[str, Any], styles: list[str]) -> None:
        app = self.app
        if styles:
            try:
                request["prompt"], negative = await asyncio.to_thread(
                    apply_styles, app.db, styles, request["prompt"], request.get("negative_prompt", ""))  # type: ignore[attr-defined]
            except StyleError as exc:
                self._error(str(exc))
                return
            if negative:
                request["negative_prompt"] = negative
        progress = self.query_one("#progress", JobProgressBar)
        self._submitting += 1
        try:
            job = await app.submit("generate", request)  # type: ignore[attr-defined]
        except RequestFailed as exc:
            self._error(str(exc))
            app.notify_error("The service refused the job", str(exc))  # type: ignore[attr-defined]
            return
        except ServiceUnavailable as exc:
            self._error(str(exc))
            app.notify_error("Cannot generate", str(exc))  # type: ignore[attr-defined]
            return
        finally:
            self._submitting -= 1
        job_id = str(job["id"])
        self._my_jobs.add(job_id)
        self.job_id = job_id
        progress.start("queued")
        seed = job.get("payload", {}).get("seed")
        if seed is not None and not self.seed_locked:
            self.query_one("#seed", Input).value = str(seed)
        batch = job.get("payload", {}).get("batch", 1)
        final = f"\nFinal prompt (with styles): {request['prompt']}" if styles else ""
        self._status(f"Job {job_id} queued: {batch} image(s), seed {seed}.{final}")
        # Events of this job may have come in before the service's answer did: handle them now, in order.
        early, self._early = [m for m in self._early if m.job_id == job_id], [
            m for m in self._early if m.job_id != job_id and self._submitting]
        for message in early:
            self._dispatch_job_message(message)

    def _remember_prompt(self, prompt: str) -> None:
        if prompt in self.prompt_history:
            self.prompt_history.remove(prompt)
        self.prompt_history.append(prompt)
        del self.prompt_history[:-PROMPT_HISTORY_KEEP]
        self._history_pos = None

    # ------------------------------------------------------------------ job events

    def _mine(self, message: JobEvent | JobProgress | JobPreview) -> bool:
        """Whether a job event is about this screen's jobs; kept for later while a submit is answered."""
        if message.job_id in self._my_jobs:
            return True
        if self._submitting:
            self._early.append(message)
            del self._early[:-500]
        return False

    def _dispatch_job_message(self, message: JobEvent | JobProgress | JobPreview) -> None:
        if isinstance(message, JobEvent):
            self._job_event(message)
        elif isinstance(message, JobProgress):
            self._job_progress(message)
        else:
            self._job_preview(message)

    def on_job_event(self, message: JobEvent) -> None:
        if message.job_id in self._tool_jobs:
            self._tool_event(message)
        elif self._mine(message):
            self._job_event(message)

    def on_job_progress(self, message: JobProgress) -> None:
        if message.job_id not in self._tool_jobs and self._mine(message):
            self._job_progress(message)

    def on_job_preview(self, message: JobPreview) -> None:
        if self._mine(message):
            self._job_preview(message)

    def _tool_event(self, message: JobEvent) -> None:
        handler = self._tool_jobs[message.job_id]
        if message.final:
            del self._tool_jobs[message.job_id]
        handler(message)

    def _job_event(self, message: JobEvent) -> None:
        progress = self.query_one("#progress", JobProgressBar)
        d = message.data
        if message.event == "started":
            if message.job_id == self.job_id:
                progress.start("running")
                self._status(f"Job {message.job_id} running on {d.get('worker', '?')} "
                             f"(attempt {d.get('attempt', 1)}).")
        elif message.event == "image":
            self._add_result(d)
        elif message.event == "retrying":
            self._status(f"Job {message.job_id}: attempt {d.get('attempts')} failed ({d.get('reason')}: "
                         f"{d.get('message')}); retrying.")
        elif message.final:
            if message.job_id == self.job_id:
                count = len(d.get("generation_ids", []) or [])
                note = {"done": f"{count} image(s)", "failed": f"{d.get('reason', '')}",
                        "cancelled": ""}.get(message.event, "")
                progress.finish(message.event, note)
                self._status(self._final_text(message))
            self._my_jobs.discard(message.job_id)

    def _final_text(self, message: JobEvent) -> str:
        d = message.data
        if message.event == "done":
            ids = d.get("generation_ids", []) or []
            return f"Job {message.job_id} finished: {len(ids)} image(s) " + " ".join(f"#{i}" for i in ids)
        if message.event == "failed":
            return f"Job {message.job_id} failed: {d.get('reason')}: {d.get('message')}"
        return f"Job {message.job_id} cancelled."

    def _job_progress(self, message: JobProgress) -> None:
        if message.job_id == self.job_id:
            self.query_one("#progress", JobProgressBar).advance(message)

    def _job_preview(self, message: JobPreview) -> None:
        if message.job_id == self.job_id:
            self.query_one("#preview", ImageView).show_png(message.png, f"preview · step {message.step}")

    def on_service_state(self, message: ServiceState) -> None:
        self._show_service_state(message.connected, message.reason)

    def on_settings_changed(self, message: SettingsChanged) -> None:
        if any(k.startswith(("paths.", "sd.")) for k in message.changed):
            self.load_form()

    def _show_service_state(self, connected: bool, reason: str) -> None:
        if connected:
            self._status("Ready. ctrl+g generates.")
        else:
            self._status(f"Service offline: {reason}. Generating needs the service; history still works.")

    def _add_result(self, data: dict[str, Any]) -> None:
        gid = int(data.get("generation_id", 0) or 0)
        uuid = str(data.get("uuid", ""))
        thumb = thumbnail_path(self.app.home.thumbnails, uuid)  # type: ignore[attr-defined]
        results = self.query_one("#results", HorizontalScroll)
        results.mount(ResultThumb(gid, thumb, data.get("seed", "")))
        self._results += 1
        self.query_one("#results-title", Label).update(f"Results ({self._results})  [dim]newest on the right[/]")
        results.scroll_end(animate=False)
        if thumb.exists():
            self.query_one("#preview", ImageView).show_file(thumb, f"#{gid}")

    # ------------------------------------------------------------------ keys

    def action_cancel_job(self) -> None:
        if not self.job_id or self.job_id not in self._my_jobs:
            self.notify("No job of this screen is running.", severity="warning")
            return
        self._cancel(self.job_id)

    @work(group="generate-cancel", exit_on_error=False)
    async def _cancel(self, job_id: str, note: bool = True) -> None:
        try:
            await self.app.request("cancel_job", {"job_id": job_id, "now": False})  # type: ignore[attr-defined]
        except (RequestFailed, ServiceUnavailable) as exc:
            self.app.notify_error(f"Cannot cancel job {job_id}", str(exc))  # type: ignore[attr-defined]
            return
        if note:
            self._status(f"Cancelling job {job_id} after the current image…")

    def _walk_prompts(self, step: int) -> None:
        if not self.prompt_history:
            self.notify("No earlier prompts yet.", timeout=2)
            return
        area = self.query_one("#prompt", TextArea)
        if self._history_pos is None:
            if step > 0:
                return
            self._draft = area.text
            pos = len(self.prompt_history) - 1
        else:
            pos = self._history_pos + step
        if pos >= len(self.prompt_history):
            self._history_pos = None
            text = self._draft
        else:
            self._history_pos = max(0, pos)
            text = self.prompt_history[self._history_pos]
        area.replace(text, (0, 0), area.document.end)  # an edit, so ctrl+z brings the previous text back
        area.focus()

    def action_prompt_prev(self) -> None:
        self._walk_prompts(-1)

    def action_prompt_next(self) -> None:
        self._walk_prompts(+1)

    def action_insert_lora(self) -> None:
        self.app.push_screen(LoraPicker(self.app.catalog()), self._lora_chosen)  # type: ignore[attr-defined]

    def _lora_chosen(self, entry: ModelEntry | None) -> None:
        if entry is None:
            return
        sc = entry.sidecar
        words = missing_words(self.prompt_text(), sc.trigger_words if sc else [])
        # The trigger words go right after the tag, and only those the prompt lacks.
        self.insert_at_cursor(lora_tag(entry.name, sc.default_weight if sc else 1.0) +
                              (f" {', '.join(words)}" if words else ""))

    def action_lora_weight(self, delta: float) -> None:
        area = self.query_one("#prompt", TextArea)
        row, col = area.cursor_location
        line = area.document.get_line(row)
        change = adjust_weight(line, col, delta)
        if change is None:
            self.notify("Put the cursor on a <lora:name:weight> tag to change its weight.", timeout=3)
            return
        area.replace(change.line, (row, 0), (row, len(line)))
        area.move_cursor((row, change.end))
        area.focus()
        self._status(f"LoRA {change.name}: weight {format_weight(change.weight)}.")

    # ------------------------------------------------------------------ prompt tools (the LLM and the library)

    def _llm_params(self, prompt: str) -> bool:
        if not prompt.strip():
            self.notify("Write a prompt first.", severity="warning")
            return False
        if self.app.client is None:  # type: ignore[attr-defined]
            self.app.notify_error("The prompt tools need the service",  # type: ignore[attr-defined]
                                  f"the LLM runs in the ddtui service: {self.app.service_reason}")  # type: ignore[attr-defined]
            return False
        return True

    @work(group="generate-llm", exit_on_error=False)
    async def _ask_llm(self, messages: list[dict[str, str]], params: dict[str, Any],
                       handler: Callable[[JobEvent], None], dialog: EnhanceDialog | StyleProposals) -> None:
        """Submit a chat job for `dialog`; its events go to `handler` (the last one is final)."""
        self._submitting += 1
        try:
            job = await self.app.submit("chat", {"messages": messages, "params": params}, priority=5)  # type: ignore[attr-defined]
        except (RequestFailed, ServiceUnavailable) as exc:
            handler(JobEvent("", "failed", {"reason": "service", "message": str(exc)}))
            return
        finally:
            self._submitting -= 1
        job_id = str(job["id"])
        dialog.job_id = job_id
        if not dialog.is_attached:  # closed before the service answered: nobody wants the answer
            self._cancel(job_id, note=False)
            return
        self._tool_jobs[job_id] = handler
        early, self._early = [m for m in self._early if m.job_id == job_id], [
            m for m in self._early if m.job_id != job_id and self._submitting]
        for message in early:
            if isinstance(message, JobEvent) and job_id in self._tool_jobs:
                self._tool_event(message)

    def action_enhance(self) -> None:
        prompt = self.prompt_text().strip()
        if not self._llm_params(prompt):
            return
        dialog = EnhanceDialog(prompt)
        self.app.push_screen(dialog, partial(self._enhance_answer, dialog))
        system = self.app.cfg["llm"]["system_prompts"]["enhance"]  # type: ignore[attr-defined]
        self._ask_llm(enhance_messages(system, prompt), {"max_tokens": 300, "temperature": 0.7, "stream": True},
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

    def _forget_tool_job(self, job_id: str) -> None:
        if job_id in self._tool_jobs:  # its dialog closed while the LLM still writes: stop it
            del self._tool_jobs[job_id]
            self._cancel(job_id, note=False)

    def _enhance_answer(self, dialog: EnhanceDialog, enhanced: str | None) -> None:
        self._forget_tool_job(dialog.job_id)
        if enhanced:
            self._replace_text("#prompt", enhanced)
            self.query_one("#prompt", TextArea).focus()
            self._status("The prompt is the enhanced one; ctrl+z in the prompt brings yours back.")

    def action_extract_styles(self) -> None:
        prompt = self.prompt_text().strip()
        if not self._llm_params(prompt):
            return
        dialog = StyleProposals(prompt)
        self.app.push_screen(dialog, partial(self._styles_chosen, dialog))
        system = self.app.cfg["llm"]["system_prompts"]["styles"]  # type: ignore[attr-defined]
        self._ask_llm(styles_messages(system, prompt),
                      {"json_schema": STYLES_SCHEMA, "max_tokens": 900, "stream": False},
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
        self._forget_tool_job(dialog.job_id)
        if chosen:
            self._save_styles(chosen)

    @work(group="generate-styles", thread=True, exit_on_error=False)
    def _save_styles(self, chosen: list[dict[str, str]]) -> None:
        app = self.app
        saved, problems = [], []
        for style in chosen:
            try:
                save_style(app.db, style["name"], style["prompt"], style.get("negative_prompt", ""))  # type: ignore[attr-defined]
                saved.append(style["name"])
            except StyleError as exc:
                problems.append(str(exc))
        with db_session:
            styles = [(s.name, s.prompt, s.negative_prompt or "")
                      for s in app.db.Style.select().order_by(lambda s: s.name)]  # type: ignore[attr-defined]
        app.call_from_thread(self._styles_saved, styles, saved, problems)

    def _styles_saved(self, styles: list[tuple[str, str, str]], saved: list[str], problems: list[str]) -> None:
        self._show_styles(styles)
        if saved:
            self.notify(f"Saved {', '.join(saved)}: toggle them in the style list.", title="Styles", markup=False)
        if problems:
            self.app.notify_error("Some styles were not saved", "\n".join(problems))  # type: ignore[attr-defined]

    @on(SelectionList.SelectedChanged, "#styles")
    @on(TextArea.Changed, "#prompt")
    @on(TextArea.Changed, "#negative")
    def _update_styles_preview(self) -> None:
        preview = self.query_one("#styles-preview", Static)
        chosen = [n for n in self.query_one("#styles", SelectionList).selected if n in self._style_texts]
        preview.display = bool(chosen)
        if not chosen:
            return
        prompt = self.prompt_text().strip()
        negative = self.query_one("#negative", TextArea).text.strip()
        for name in chosen:
            prompt, negative = apply_style(*self._style_texts[name], prompt, negative)
        preview.update(f"Final prompt: {prompt}" + (f"\nFinal negative: {negative}" if negative else ""))

    def action_insert_snippet(self) -> None:
        self._load_snippets()

    @work(group="generate-snippets", thread=True, exit_on_error=False)
    def _load_snippets(self) -> None:
        snippets = list_snippets(self.app.db, "use")  # type: ignore[attr-defined]
        self.app.call_from_thread(self.app.push_screen, SnippetPicker(snippets), self._snippet_chosen)

    def _snippet_chosen(self, snippet: SnippetData | None) -> None:
        if snippet is None or snippet.id is None:
            return
        self.insert_at_cursor(snippet.content)
        self._count_snippet(snippet.id)

    @work(group="generate-snippets", thread=True, exit_on_error=False)
    def _count_snippet(self, snippet_id: int) -> None:
        count_snippet_use(self.app.db, snippet_id)  # type: ignore[attr-defined]

    def action_paste_params(self) -> None:
        self.app.push_screen(PasteParameters(), self._parameters_pasted)

    def _parameters_pasted(self, text: str | None) -> None:
        if not text:
            return
        values, notes = fill_from_parameters(parse_parameters_text(text), SAMPLERS, SCHEDULERS)
        if not values.get("prompt"):
            self.app.notify_error("Nothing to fill", "the pasted text has no prompt")  # type: ignore[attr-defined]
            return
        self._fill(values)
        self.query_one("#prompt", TextArea).focus()
        filled = ", ".join(k for k in ("steps", "cfg", "sampler", "scheduler", "seed", "width") if k in values)
        note = f" Left out: {'; '.join(notes)}." if notes else ""
        self.notify(f"Prompt, negative prompt{', ' + filled.replace('width', 'size') if filled else ''} filled."
                    f"{note}", title="Parameters pasted", timeout=10, markup=False)
        self._status(f"Pasted parameters.{note}")

    def action_explore_last(self) -> None:
        results = list(self.query(ResultThumb))
        if not results:
            self.notify("No result yet: generate an image first (or press x on one in History).",
                        severity="warning")
            return
        self.app.send_to("explore", results[-1].generation_id)  # type: ignore[attr-defined]

    def action_toggle_hires(self) -> None:
        box = self.query_one("#hires", Checkbox)
        box.value = not box.value

    @on(Checkbox.Changed, "#hires")
    def _hires_changed(self, event: Checkbox.Changed) -> None:
        self._show_hires(event.value)

    def _show_hires(self, enabled: bool) -> None:
        for widget in self.query(".hires-field"):
            widget.display = enabled

    def action_toggle_seed_lock(self) -> None:
        self.seed_locked = not self.seed_locked

    def watch_seed_locked(self, locked: bool) -> None:
        box = self.query_one("#seed-lock", Checkbox)
        if box.value != locked:
            box.value = locked
        self.query_one("#seed", Input).placeholder = "seed" if locked else "random"

    @on(Checkbox.Changed, "#seed-lock")
    def _seed_box(self, event: Checkbox.Changed) -> None:
        self.seed_locked = event.value

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", TextArea).focus()

    def action_clear_init(self) -> None:
        self._init_image = None
        self._init_generation = None
        self.query_one("#init-row").display = False

    # ------------------------------------------------------------------ small helpers

    def _error(self, text: str) -> None:
        box = self.query_one("#form-error", Static)
        box.update(text)
        box.set_class(bool(text), "-shown")
        if text:
            box.scroll_visible(animate=False)

    def _status(self, text: str) -> None:
        self.query_one("#gen-status", Static).update(text)
