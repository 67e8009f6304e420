"""The generate form: every field of a generate request, and the conversions to and from it.

`GenerateForm` owns its fields. It turns them into a request (`to_request`, a `ParamError` naming the field at
fault), fills them from a history item's or a preset's params (`load_params`), saves and restores itself as
plain data (`saved` / `restore`), and keeps the prompts submitted so far (ctrl+up / ctrl+down walk them).
Every change it makes to the prompt is an edit of the prompt editor, so ctrl+z takes it back.

Fields left empty use the chosen model's (or preset's) defaults, shown as placeholders. A seed in the seed
field is used as typed; an empty one is random. The lock keeps the seed across runs: unlocked, the field
empties after a run (the seed used is shown in the placeholder); locked, it keeps (or takes) that seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import getters, on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Checkbox, Input, Label, Select, SelectionList, Static, TextArea

from ...catalog.models import SAMPLERS, SCHEDULERS, Catalog
from ...core.params import MAX_BATCH, ParamError, parse_size
from ...core.styles import apply_style
from ..host import Host
from ..prompt_text import adjust_weight, format_weight, separator_before

PROMPT_HISTORY_KEEP = 100
HIRES_DEFAULTS = {"scale": "2", "steps": "10", "strength": "0.5"}
NO_STYLES = "Styles  [dim]none saved yet (F6: the Styles screen)[/]"


class GenerateForm(VerticalScroll):
    """Prompt, negative prompt, model or preset, sizes and sampling, seed, batch, hires fix, init image, styles."""

    app = getters.app(Host)

    seed_locked: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, id: str | None = "gen-form") -> None:
        super().__init__(id=id)
        self.prompt_history: list[str] = []
        self._history_pos: int | None = None
        self._draft = ""
        self.defaults: dict[Any, dict[str, Any]] = {}  # model-select value -> its default params
        self._upscalers: list[str] = []
        self.style_texts: dict[str, tuple[str, str]] = {}  # style name -> (prompt, negative prompt)
        self.init_image: Path | None = None
        self.init_generation: int | None = None
        self.last_seed: int | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
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
            yield Select([(s, s) for s in SCHEDULERS], id="scheduler", prompt="model default", compact=True)
        with Horizontal(classes="row"):
            yield Label("Seed", classes="inline-label")
            yield Input(id="seed", placeholder="random", type="integer", compact=True)
            yield Checkbox("lock", id="seed-lock", compact=True)
            yield Label("Batch", classes="inline-label")
            yield Input("1", id="batch", type="integer", compact=True)
        with Horizontal(classes="row"):
            yield Checkbox("Hires fix", id="hires", compact=True)
            for key, label, whole in (("scale", "Scale", False), ("steps", "Steps", True),
                                      ("strength", "Strength", False)):
                yield Label(label, classes="inline-label hires-field")
                yield Input(HIRES_DEFAULTS[key], id=f"hires-{key}", type="integer" if whole else "number",
                            compact=True, classes="hires-field")
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

    def on_mount(self) -> None:
        key = self.app.key_label
        self.query_one("#prompt-label", Label).update(
            f"Prompt  [dim]({key('generate.prompt_prev')}/{key('generate.prompt_next')} earlier · ^z undo · "
            f"{key('generate.lora')} LoRA · {key('generate.lora_up')}/{key('generate.lora_down')} its weight · "
            f"{key('generate.enhance')} enhance)[/]")
        self.query_one("#negative-label", Label).update(
            f"Negative prompt  [dim]({key('generate.paste_params')} paste parameters · "
            f"{key('generate.snippets')} snippet · {key('generate.extract_styles')} styles from the prompt)[/]")
        self.query_one("#hires", Checkbox).label = f"Hires fix ({key('generate.hires')})"
        self.query_one("#seed-lock", Checkbox).label = f"lock ({key('generate.seed_lock')})"
        self.query_one("#init-row").display = False
        self._show_hires(False)
        self.query_one("#styles-preview").display = False

    # ------------------------------------------------------------------ small accessors

    @property
    def prompt_area(self) -> TextArea:
        return self.query_one("#prompt", TextArea)

    def _input(self, field_id: str) -> Input:
        return self.query_one(f"#{field_id}", Input)

    def _select(self, field_id: str) -> Select[str]:
        return self.query_one(f"#{field_id}", Select)

    def _chosen(self, field_id: str) -> str:
        value = self._select(field_id).value
        return value if isinstance(value, str) else ""

    def prompt_text(self) -> str:
        """The prompt as typed."""
        return self.prompt_area.text

    @property
    def chosen_styles(self) -> list[str]:
        return list(self.query_one("#styles", SelectionList).selected)

    def focus_prompt(self) -> None:
        self.prompt_area.focus()

    def show_error(self, text: str) -> None:
        box = self.query_one("#form-error", Static)
        box.update(text)
        box.set_class(bool(text), "-shown")
        if text:
            box.scroll_visible(animate=False)

    # ------------------------------------------------------------------ choices

    def set_choices(self, catalog: Catalog, presets: list[tuple[str, str, dict[str, Any]]],
                    styles: list[tuple[str, str, str]], default_model: str) -> bool:
        """Models and presets for the model list, the styles, the hires upscalers; False when no image
        model can be chosen."""
        options: list[tuple[str, str]] = []
        self.defaults = {}
        for e in catalog.of_kind("image"):
            if not e.usable:
                continue
            value = f"model:{e.rel_path}"
            options.append((escape(f"model  {e.name}"), value))
            self.defaults[value] = dict(e.sidecar.defaults) if e.sidecar else {}
        for name, model, params in presets:
            value = f"preset:{name}"
            options.append((escape(f"preset {name}"), value))
            base: dict[str, Any] = {}
            try:
                entry = catalog.find(model, kind="image")
                base = dict(entry.sidecar.defaults) if entry.sidecar else {}
            except Exception:  # noqa: BLE001 - a preset whose model is gone still lists; submit reports it
                pass
            self.defaults[value] = {**base, **params}
        model_select = self._select("model")
        chosen = model_select.value
        model_select.set_options(options)
        if chosen in self.defaults:  # a reload (a new preset, say) keeps the model the user chose
            model_select.value = chosen
        if default_model and f"model:{default_model}" in self.defaults:
            self.defaults[Select.NULL] = self.defaults[f"model:{default_model}"]
        self.show_styles(styles)
        upscalers = [(escape(e.name), e.rel_path) for e in catalog.of_kind("esrgan") if e.usable]
        self._upscalers = [value for _, value in upscalers]
        upscaler = self._select("hires-upscaler")
        chosen = upscaler.value
        upscaler.set_options(upscalers)
        if chosen in self._upscalers:
            upscaler.value = chosen
        self.update_placeholders()
        return bool(options)

    def show_styles(self, styles: list[tuple[str, str, str]]) -> None:
        """The style list (name, prompt, negative prompt); the chosen styles stay chosen."""
        style_list = self.query_one("#styles", SelectionList)
        chosen = set(style_list.selected)
        self.style_texts = {name: (prompt, negative) for name, prompt, negative in styles}
        style_list.clear_options()
        style_list.add_options([(Content(name), name, name in chosen) for name, _, _ in styles])
        style_list.display = bool(styles)
        self.query_one("#styles-label", Label).update("Styles  [dim](space: toggle)[/]" if styles else NO_STYLES)
        self.update_styles_preview()

    @on(Select.Changed, "#model")
    def update_placeholders(self) -> None:
        d = self.defaults.get(self._select("model").value, {})
        size = f"{d['width']}x{d['height']}" if d.get("width") and d.get("height") else "model default"
        self._input("size").placeholder = size
        self._input("steps").placeholder = str(d.get("steps", "model default"))
        self._input("cfg").placeholder = str(d.get("cfg", "model default"))
        self._select("sampler").prompt = str(d.get("sampler", "model default"))
        self._select("scheduler").prompt = str(d.get("scheduler", "model default"))

    @on(SelectionList.SelectedChanged, "#styles")
    @on(TextArea.Changed, "#prompt")
    @on(TextArea.Changed, "#negative")
    def update_styles_preview(self) -> None:
        """The prompt and negative prompt as the chosen styles will make them."""
        preview = self.query_one("#styles-preview", Static)
        chosen = [n for n in self.chosen_styles if n in self.style_texts]
        preview.display = bool(chosen)
        if not chosen:
            return
        prompt = self.prompt_text().strip()
        negative = self.query_one("#negative", TextArea).text.strip()
        for name in chosen:
            prompt, negative = apply_style(*self.style_texts[name], prompt, negative)
        preview.update(f"Final prompt: {prompt}" + (f"\nFinal negative: {negative}" if negative else ""))

    # ------------------------------------------------------------------ to a request

    def to_request(self) -> dict[str, Any]:
        """The generate request the form describes; raises ParamError naming the field at fault."""
        prompt = self.prompt_text().strip()
        if not prompt:
            raise ParamError("the prompt is empty")
        req: dict[str, Any] = {"prompt": prompt}
        negative = self.query_one("#negative", TextArea).text.strip()
        if negative:
            req["negative_prompt"] = negative
        model = self._chosen("model")
        if model.startswith("model:"):
            req["model"] = model[len("model:"):]
        elif model.startswith("preset:"):
            req["preset"] = model[len("preset:"):]
        size = self._input("size").value.strip()
        if size:
            req["width"], req["height"] = parse_size(size)
        for field_id, kind, name in (("steps", int, "steps"), ("cfg", float, "CFG")):
            text = self._input(field_id).value.strip()
            if text:
                try:
                    req[field_id] = kind(text)
                except ValueError:
                    raise ParamError(f"{name} must be a number, got {text!r}") from None
        for field_id in ("sampler", "scheduler"):
            if value := self._chosen(field_id):
                req[field_id] = value
        batch_text = self._input("batch").value.strip() or "1"
        try:
            batch = int(batch_text)
        except ValueError:
            raise ParamError(f"batch count must be a whole number, got {batch_text!r}") from None
        if not 1 <= batch <= MAX_BATCH:
            raise ParamError(f"batch count must be from 1 to {MAX_BATCH}, got {batch}")
        req["batch"] = batch
        seed_text = self._input("seed").value.strip()
        try:
            req["seed"] = int(seed_text) if seed_text else -1  # a seed typed is a seed used
        except ValueError:
            raise ParamError(f"seed must be a whole number, got {seed_text!r}") from None
        if self.query_one("#hires", Checkbox).value:
            req["hires"] = self._hires_request()
        if self.init_image is not None:
            req["init_image"] = str(self.init_image)
            strength = self._input("strength").value.strip() or "0.75"
            try:
                req["strength"] = float(strength)
            except ValueError:
                raise ParamError(f"strength must be a number above 0 and at most 1, got {strength!r}") from None
            if self.init_generation:
                req["parent_id"] = self.init_generation
        return req

    def _hires_request(self) -> dict[str, Any]:
        """The `hires` dict from its fields; ParamError names the field at fault."""
        def number(key: str, kind: type, low: float, high: float, low_open: bool, what: str) -> Any:
            text = self._input(f"hires-{key}").value.strip() or HIRES_DEFAULTS[key]
            try:
                value = kind(text)
            except ValueError:
                raise ParamError(f"hires {key} must be {what}, got {text!r}") from None
            if (value <= low if low_open else value < low) or value > high:
                raise ParamError(f"hires {key} must be {what}, got {text}")
            return value

        return {
            "enabled": True,
            "scale": number("scale", float, 1, 4, True, "above 1 and at most 4"),
            "steps": number("steps", int, 1, 200, False, "a whole number from 1 to 200"),
            "strength": number("strength", float, 0, 1, True, "above 0 and at most 1"),
            "upscaler": self._chosen("hires-upscaler"),
        }

    # ------------------------------------------------------------------ from params

    def load_params(self, params: dict[str, Any]) -> None:
        """Fill the fields named in `params` (a history item's, a preset's `{"preset": name, ...}`, pasted
        parameters); the prompt edits can be undone. A seed given is locked, so re-runs keep it."""
        if "prompt" in params:
            self.replace_text("#prompt", str(params.get("prompt") or ""))
            self._input("batch").value = "1"  # a whole item is loaded: one image, not the last batch
        if "negative_prompt" in params:
            self.replace_text("#negative", str(params.get("negative_prompt") or ""))
        select = self._select("model")
        preset, model = params.get("preset"), params.get("model")
        if preset and f"preset:{preset}" in self.defaults:
            select.value = f"preset:{preset}"
        elif model and f"model:{model}" in self.defaults:
            select.value = f"model:{model}"
        if params.get("width") and params.get("height"):
            self._input("size").value = f"{params['width']}x{params['height']}"
        for key in ("steps", "cfg"):
            if params.get(key) is not None:
                self._input(key).value = str(params[key])
        for key in ("sampler", "scheduler"):
            if params.get(key) in (SAMPLERS if key == "sampler" else SCHEDULERS):
                self._select(key).value = params[key]
        if params.get("seed") is not None:
            self._input("seed").value = str(params["seed"])
            self.seed_locked = True
        hires = params["hires"] if isinstance(params.get("hires"), dict) else {}
        enabled = bool(hires.get("enabled"))
        if "prompt" in params:  # a whole item: the hires fix is as it was made, on or off
            self.query_one("#hires", Checkbox).value = enabled
        if enabled:
            self.query_one("#hires", Checkbox).value = True
            for key in ("scale", "steps", "strength"):
                if hires.get(key) is not None:
                    self._input(f"hires-{key}").value = f"{hires[key]:g}" if isinstance(
                        hires[key], float) else str(hires[key])
            if hires.get("upscaler") in self._upscalers:
                self._select("hires-upscaler").value = hires["upscaler"]

    # ------------------------------------------------------------------ saved as plain data

    def saved(self) -> dict[str, Any]:
        """The form as plain data, with the prompt history (what `restore` takes back)."""
        return {
            "prompt": self.prompt_text(),
            "negative": self.query_one("#negative", TextArea).text,
            "model": self._chosen("model"), "sampler": self._chosen("sampler"),
            "scheduler": self._chosen("scheduler"),
            **{key: self._input(key).value for key in ("size", "steps", "cfg", "seed", "batch")},
            "seed_locked": self.seed_locked,
            "hires": {"enabled": self.query_one("#hires", Checkbox).value,
                      **{key: self._input(f"hires-{key}").value for key in ("scale", "steps", "strength")},
                      "upscaler": self._chosen("hires-upscaler")},
            "styles": self.chosen_styles,
            "prompt_history": self.prompt_history[-PROMPT_HISTORY_KEEP:],
        }

    def restore(self, form: dict[str, Any]) -> None:
        """Put a saved form back (call after `set_choices`: a model or style no longer there is skipped)."""
        self.prompt_history = [p for p in form.get("prompt_history", []) if isinstance(p, str)][-PROMPT_HISTORY_KEEP:]
        for area_id, key in (("prompt", "prompt"), ("negative", "negative")):
            area = self.query_one(f"#{area_id}", TextArea)
            if key in form and not area.text:  # text typed while the form loaded stays
                area.load_text(str(form.get(key) or ""))
        for field_id in ("size", "steps", "cfg", "seed", "batch"):
            if field_id in form and form[field_id] is not None:
                self._input(field_id).value = str(form[field_id])
        allowed: dict[str, Any] = {"model": self.defaults, "sampler": SAMPLERS, "scheduler": SCHEDULERS}
        for field_id, values in allowed.items():
            value = form.get(field_id)
            if value and value in values:
                self._select(field_id).value = value
        if "seed_locked" in form:
            self.seed_locked = bool(form["seed_locked"])
        hires = form.get("hires")
        if isinstance(hires, dict):
            for key in ("scale", "steps", "strength"):
                if hires.get(key) not in (None, ""):
                    self._input(f"hires-{key}").value = str(hires[key])
            if hires.get("upscaler") and hires["upscaler"] in self._upscalers:
                self._select("hires-upscaler").value = hires["upscaler"]
            self.query_one("#hires", Checkbox).value = bool(hires.get("enabled"))
        style_list = self.query_one("#styles", SelectionList)
        for name in form.get("styles") or []:
            if name in self.style_texts:  # a style deleted since is skipped
                style_list.select(name)
        self.update_placeholders()
        self.update_styles_preview()

    # ------------------------------------------------------------------ the prompt

    def replace_text(self, selector: str, text: str) -> None:
        """Replace a text area's text as one edit of its own, so ctrl+z brings the old text back."""
        area = self.query_one(selector, TextArea)
        if area.text == text:
            return
        area.history.checkpoint()
        area.replace(text, (0, 0), area.document.end)
        area.history.checkpoint()

    def replace_prompt(self, text: str) -> None:
        self.replace_text("#prompt", text)
        self.prompt_area.focus()

    def insert_at_cursor(self, text: str) -> None:
        """Insert `text` at the prompt's cursor, separated from the word before it."""
        area = self.prompt_area
        row, col = area.cursor_location
        before = area.document.get_line(row)[:col]
        area.history.checkpoint()
        area.insert(separator_before(before) + text)
        area.history.checkpoint()
        area.focus()

    def remember_prompt(self, prompt: str) -> None:
        if prompt in self.prompt_history:
            self.prompt_history.remove(prompt)
        self.prompt_history.append(prompt)
        del self.prompt_history[:-PROMPT_HISTORY_KEEP]
        self._history_pos = None

    def walk_prompts(self, step: int) -> bool:
        """An older (-1) or newer (+1) submitted prompt into the prompt; False when there are none."""
        if not self.prompt_history:
            return False
        area = self.prompt_area
        if self._history_pos is None:
            if step > 0:
                return True
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
        return True

    def nudge_lora_weight(self, delta: float) -> str | None:
        """Change the weight of the LoRA tag under the cursor; what was done, or None off a tag."""
        area = self.prompt_area
        row, col = area.cursor_location
        line = area.document.get_line(row)
        change = adjust_weight(line, col, delta)
        if change is None:
            return None
        area.replace(change.line, (row, 0), (row, len(line)))
        area.move_cursor((row, change.end))
        area.focus()
        return f"LoRA {change.name}: weight {format_weight(change.weight)}."

    # ------------------------------------------------------------------ init image, hires, seed

    def set_init_image(self, path: Path, generation_id: int | None = None,
                       params: dict[str, Any] | None = None) -> None:
        self.init_image = Path(path)
        self.init_generation = generation_id
        label = f"#{generation_id}" if generation_id else Path(path).name
        self.query_one("#init-label", Label).update(f"Init image {label} (img2img) · strength:")
        self.query_one("#init-row").display = True
        if params and not self.prompt_text().strip():
            self.prompt_area.load_text(str(params.get("prompt") or ""))

    def clear_init(self) -> None:
        self.init_image = None
        self.init_generation = None
        self.query_one("#init-row").display = False

    def toggle_hires(self) -> None:
        box = self.query_one("#hires", Checkbox)
        box.value = not box.value

    @on(Checkbox.Changed, "#hires")
    def _hires_changed(self, event: Checkbox.Changed) -> None:
        self._show_hires(event.value)

    def _show_hires(self, enabled: bool) -> None:
        for widget in self.query(".hires-field"):
            widget.display = enabled

    def seed_used(self, seed: int | None) -> None:
        """A job was queued with `seed`: the lock keeps it in the field; unlocked, the field empties."""
        if seed is None:
            return
        self.last_seed = int(seed)
        if self.seed_locked:
            self._input("seed").value = str(seed)
        else:
            self._input("seed").value = ""
        self._seed_placeholder()

    def watch_seed_locked(self, locked: bool) -> None:
        box = self.query_one("#seed-lock", Checkbox)
        if box.value != locked:
            box.value = locked
        seed = self._input("seed")
        if locked and not seed.value.strip() and self.last_seed is not None:
            seed.value = str(self.last_seed)  # locking right after a run keeps that run's seed
        self._seed_placeholder()

    def _seed_placeholder(self) -> None:
        last = f" (last {self.last_seed})" if self.last_seed is not None else ""
        self._input("seed").placeholder = ("seed" if self.seed_locked else "random") + last

    @on(Checkbox.Changed, "#seed-lock")
    def _seed_box(self, event: Checkbox.Changed) -> None:
        self.seed_locked = event.value
