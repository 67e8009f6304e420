"""The Presets screen: image presets (a catalog model with parameters) and LLM presets (model, projector,
context size and one system prompt per role).

An image preset starts from a catalog image model, prefilled from its sidecar (defaults, components, flags);
its parameters are checked by `catalog.check_params` before anything is saved, and the error is shown under
the form. Loading a preset hands `{"model": ..., **params, "preset": name}` to `app.open_in_generate`.
Database work runs in thread workers; the screen keeps no Pony objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pony.orm import db_session
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import (
    Checkbox,
    ContentSwitcher,
    Footer,
    Input,
    Label,
    OptionList,
    Select,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option

from ...catalog.models import FLAGS, PARAM_RULES, SAMPLERS, SCHEDULERS, Catalog, CatalogError, ModelEntry, check_params
from ...db.entities import utcnow
from .base import ConfirmDialog, MainScreen, ScreenPaletteCommands, title_bars

LLM_ROLES = ("tagging", "enhance", "variations", "styles")
# Form fields for the numeric parameters: (name, label, whole number?).
NUMBER_FIELDS = (("steps", "Steps", True), ("cfg", "CFG", False), ("guidance", "Guidance", False),
                 ("width", "Width", True), ("height", "Height", True), ("clip_skip", "CLIP skip", True))


class PresetError(ValueError):
    """A preset that cannot be saved; the message names the field and what is expected."""


@dataclass
class ImagePresetData:
    id: int | None
    name: str
    model: str
    components: dict[str, str] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def generate_params(self) -> dict[str, Any]:
        """What the Generate form receives when the preset is loaded."""
        return {"model": self.model, **self.params, "preset": self.name}


@dataclass
class LLMPresetData:
    id: int | None
    name: str
    model: str
    mmproj: str = ""
    context_size: int = 4096
    system_prompts: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ database (worker threads)


def list_presets(db: Any) -> tuple[list[ImagePresetData], list[LLMPresetData]]:
    with db_session:
        images = [ImagePresetData(p.id, p.name, p.model, dict(p.components), dict(p.flags), dict(p.params),
                                  p.description or "") for p in db.ImagePreset.select().order_by(lambda p: p.name)]
        llms = [LLMPresetData(p.id, p.name, p.model, p.mmproj or "", p.context_size, dict(p.system_prompts))
                for p in db.LLMPreset.select().order_by(lambda p: p.name)]
    return images, llms


def _unique_name_check(entity: Any, name: str, own_id: int | None, what: str) -> None:
    other = entity.get(name=name)
    if other is not None and other.id != own_id:
        raise PresetError(f"name: there is already an {what} named {name!r}")


def save_image_preset(db: Any, data: ImagePresetData) -> int:
    """Create or update an image preset; the parameters are checked first (PresetError on any problem)."""
    if not data.name.strip():
        raise PresetError("name: a preset needs a name")
    if not data.model:
        raise PresetError("model: choose an image model")
    try:
        params = check_params(data.params, "params")
    except CatalogError as exc:
        raise PresetError(str(exc)) from None
    unknown = sorted(set(data.flags) - set(FLAGS))
    if unknown:
        raise PresetError(f"flags: unknown flag(s) {', '.join(unknown)}")
    with db_session:
        _unique_name_check(db.ImagePreset, data.name.strip(), data.id, "image preset")
        values = dict(name=data.name.strip(), model=data.model, components=dict(data.components),
                      flags=dict(data.flags), params=params, description=data.description)
        if data.id is None:
            preset = db.ImagePreset(**values)
        else:
            preset = db.ImagePreset[data.id]
            preset.set(**values, updated=utcnow())
        preset.flush()
        return preset.id


def save_llm_preset(db: Any, data: LLMPresetData) -> int:
    if not data.name.strip():
        raise PresetError("name: a preset needs a name")
    if not data.model:
        raise PresetError("model: choose an LLM")
    if not 64 <= data.context_size <= 1_048_576:
        raise PresetError(f"context size must be from 64 to 1048576, got {data.context_size}")
    unknown = sorted(set(data.system_prompts) - set(LLM_ROLES))
    if unknown:
        raise PresetError(f"system prompts: unknown role(s) {', '.join(unknown)} (known: {', '.join(LLM_ROLES)})")
    with db_session:
        _unique_name_check(db.LLMPreset, data.name.strip(), data.id, "LLM preset")
        values = dict(name=data.name.strip(), model=data.model, mmproj=data.mmproj, context_size=data.context_size,
                      system_prompts=dict(data.system_prompts))
        if data.id is None:
            preset = db.LLMPreset(**values)
        else:
            preset = db.LLMPreset[data.id]
            preset.set(**values, updated=utcnow())
        preset.flush()
        return preset.id


def delete_preset(db: Any, kind: str, preset_id: int) -> None:
    with db_session:
        entity = db.ImagePreset if kind == "image" else db.LLMPreset
        preset = entity.get(id=preset_id)
        if preset is not None:
            preset.delete()


def preset_from_model(entry: ModelEntry, taken: set[str]) -> ImagePresetData:
    """A new image preset prefilled from a catalog model's sidecar (defaults, components, flags)."""
    name, n = entry.name, 2
    while name in taken:
        name, n = f"{entry.name} {n}", n + 1
    sc = entry.sidecar
    return ImagePresetData(None, name, entry.rel_path, dict(sc.components) if sc else {},
                           dict(sc.flags) if sc else {}, dict(sc.defaults) if sc else {},
                           sc.description if sc else "")


def parse_number(name: str, text: str, whole: bool) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise PresetError(f"'params.{name}' must be {kind}, got {text!r}") from None


def _preset_label(name: str, model: str) -> Content:
    """A preset in the lists: its name, and its model when the name does not already say it."""
    stem = Path(model).stem
    return Content(name) if stem in name else Content.assemble(name, (f"  {stem}", "dim"))


# ------------------------------------------------------------------ dialogs


class ModelPicker(ModalScreen[str | None]):
    """Choose a catalog model (enter picks, escape cancels)."""

    CSS_PATH = "presets.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="model_picker.cancel")]

    def __init__(self, title: str, entries: list[ModelEntry]) -> None:
        super().__init__()
        self.title_text = title
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog"):
            yield Label(self.title_text, id="picker-title")
            options = [Option(Content(f"{e.rel_path}" + ("" if e.usable else "  (has problems)")), id=e.rel_path,
                              disabled=not e.usable) for e in self.entries]
            if not options:
                options = [Option("no models of this kind in the catalog", disabled=True)]
            yield OptionList(*options, id="picker-list")

    def on_mount(self) -> None:
        self.query_one("#picker-list", OptionList).focus()

    @on(OptionList.OptionSelected, "#picker-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


# ------------------------------------------------------------------ the screen


class PresetsScreen(MainScreen[None]):
    """Image and LLM presets: create from the catalog, edit with validation, load into Generate, delete."""

    CSS_PATH = "presets.tcss"
    TITLE = "Presets"
    COMMANDS = {ScreenPaletteCommands}

    BINDINGS = [
        Binding("n", "new_image", "New image preset", id="presets.new_image"),
        Binding("N", "new_llm", "New LLM preset", id="presets.new_llm"),
        Binding("ctrl+s", "save", "Save", priority=True, id="presets.save"),
        Binding("l", "load", "Load in Generate", id="presets.load"),
        Binding("d,delete", "delete", "Delete", id="presets.delete"),
        Binding("escape", "focus_list", "Back to the lists", show=False, id="presets.lists"),
    ]

    PALETTE: ClassVar[list[tuple[str, str, str]]] = [
        ("Presets: new image preset from a catalog model", "new_image", "key n"),
        ("Presets: new LLM preset", "new_llm", "key N"),
        ("Presets: save the preset", "save", "ctrl+s"),
        ("Presets: load the image preset in Generate", "load", "key l"),
        ("Presets: delete the preset", "delete", "key d"),
        ("Presets: back to the lists", "focus_list", "escape"),
    ]

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.image_presets: list[ImagePresetData] = []
        self.llm_presets: list[LLMPresetData] = []
        self.catalog_entries: list[ModelEntry] = []
        self.editing: ImagePresetData | LLMPresetData | None = None
        self._select_after_load: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        yield from title_bars()
        with Horizontal(id="presets-body"):
            with Vertical(id="presets-lists"):
                yield Label("Image presets", classes="presets-heading")
                yield OptionList(id="image-presets")
                yield Label("LLM presets", classes="presets-heading")
                yield OptionList(id="llm-presets")
            with ContentSwitcher(initial="preset-empty", id="preset-forms"):
                yield Static("Choose a preset, or press n for a new image preset from a catalog model "
                             "(N for an LLM preset).", id="preset-empty", markup=False)
                with VerticalScroll(id="image-form"):
                    yield Label("", id="ip-title", classes="preset-form-title")
                    yield Label("Name")
                    yield Input(id="ip-name")
                    yield Label("Model")
                    yield Select([], prompt="choose an image model", id="ip-model")
                    yield Static("", id="ip-components", markup=False)
                    yield Label("Description")
                    yield Input(id="ip-description")
                    with Horizontal(classes="preset-row"):
                        for key, label, _whole in NUMBER_FIELDS:
                            with Vertical(classes="preset-cell"):
                                yield Label(label)
                                yield Input(id=f"ip-{key}", placeholder="default")
                    with Horizontal(classes="preset-row"):
                        with Vertical(classes="preset-cell"):
                            yield Label("Sampler")
                            yield Select([(s, s) for s in SAMPLERS], prompt="model default", id="ip-sampler")
                        with Vertical(classes="preset-cell"):
                            yield Label("Scheduler")
                            yield Select([(s, s) for s in SCHEDULERS], prompt="model default", id="ip-scheduler")
                    yield Label("Negative prompt")
                    yield Input(id="ip-negative_prompt")
                    yield Label("Flags")
                    with Horizontal(classes="preset-row", id="ip-flags"):
                        for flag in FLAGS:
                            yield Checkbox(flag, id=f"ip-flag-{flag}")
                    yield Label("", id="ip-error", classes="preset-error")
                with VerticalScroll(id="llm-form"):
                    yield Label("", id="lp-title", classes="preset-form-title")
                    yield Label("Name")
                    yield Input(id="lp-name")
                    yield Label("Model")
                    yield Select([], prompt="choose an LLM", id="lp-model")
                    yield Label("Vision projector (mmproj)")
                    yield Select([], prompt="none", id="lp-mmproj")
                    yield Label("Context size")
                    yield Input(id="lp-context", type="integer")
                    for role in LLM_ROLES:
                        yield Label(f"System prompt: {role}")
                        yield TextArea(id=f"lp-prompt-{role}", classes="preset-system-prompt")
                    yield Label("", id="lp-error", classes="preset-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#image-presets", OptionList).focus()
        self._load_catalog()
        self._reload()

    # ------------------------------------------------------------------ loading

    @work(thread=True, group="presets-catalog", exit_on_error=False)
    def _load_catalog(self) -> None:
        catalog = self.app.catalog()  # scans the model folder: not on the UI thread
        self.app.call_from_thread(self._catalog_loaded, catalog)

    def _catalog_loaded(self, catalog: Catalog) -> None:
        self.catalog_entries = list(catalog.entries)
        images = [(e.rel_path, e.rel_path) for e in catalog.of_kind("image") if e.usable]
        llms = [(e.rel_path, e.rel_path) for e in catalog.of_kind("llm") if e.usable]
        projectors = [(e.rel_path, e.rel_path) for e in catalog.of_kind("mmproj") if e.usable]
        self.query_one("#ip-model", Select).set_options(images)
        self.query_one("#lp-model", Select).set_options(llms)
        self.query_one("#lp-mmproj", Select).set_options(projectors)
        if self.editing is not None:
            self._fill_form(self.editing)

    def _reload(self, select: tuple[str, str] | None = None) -> None:
        self._select_after_load = select
        self._load_presets()

    @work(thread=True, group="presets-load", exclusive=True, exit_on_error=False)
    def _load_presets(self) -> None:
        images, llms = list_presets(self.app.db)
        self.app.call_from_thread(self._presets_loaded, images, llms)

    def _presets_loaded(self, images: list[ImagePresetData], llms: list[LLMPresetData]) -> None:
        self.image_presets, self.llm_presets = images, llms
        image_list = self.query_one("#image-presets", OptionList)
        llm_list = self.query_one("#llm-presets", OptionList)
        image_list.clear_options()
        image_list.add_options([Option(_preset_label(p.name, p.model), id=f"image-{p.id}") for p in images])
        llm_list.clear_options()
        llm_list.add_options([Option(_preset_label(p.name, p.model), id=f"llm-{p.id}") for p in llms])
        if self._select_after_load is not None:
            kind, option_id = self._select_after_load
            target = image_list if kind == "image" else llm_list
            try:
                target.highlighted = target.get_option_index(option_id)
            except Exception:  # noqa: BLE001 - the preset was deleted meanwhile
                pass
            self._select_after_load = None
        elif self.editing is None:  # nothing chosen yet: show the first preset rather than an empty form
            for listing in (image_list, llm_list):
                if listing.option_count:
                    listing.highlighted = 0
                    break

    # ------------------------------------------------------------------ choosing

    @on(OptionList.OptionHighlighted, "#image-presets")
    @on(OptionList.OptionSelected, "#image-presets")
    def _image_chosen(self, event: OptionList.OptionHighlighted | OptionList.OptionSelected) -> None:
        preset = self._find(self.image_presets, event.option.id)
        if preset is not None and (self.editing is None or self.editing.id != preset.id
                                   or not isinstance(self.editing, ImagePresetData)):
            self._edit(preset)

    @on(OptionList.OptionHighlighted, "#llm-presets")
    @on(OptionList.OptionSelected, "#llm-presets")
    def _llm_chosen(self, event: OptionList.OptionHighlighted | OptionList.OptionSelected) -> None:
        preset = self._find(self.llm_presets, event.option.id)
        if preset is not None and (self.editing is None or self.editing.id != preset.id
                                   or not isinstance(self.editing, LLMPresetData)):
            self._edit(preset)

    @staticmethod
    def _find(presets: list[Any], option_id: str | None) -> Any:
        if not option_id:
            return None
        wanted = int(option_id.split("-", 1)[1])
        return next((p for p in presets if p.id == wanted), None)

    def _edit(self, preset: ImagePresetData | LLMPresetData) -> None:
        self.editing = preset
        self._fill_form(preset)

    def _fill_form(self, preset: ImagePresetData | LLMPresetData) -> None:
        forms = self.query_one("#preset-forms", ContentSwitcher)
        if isinstance(preset, ImagePresetData):
            forms.current = "image-form"
            title = f"Image preset {preset.name!r}" if preset.id else "New image preset (not saved yet: ctrl+s)"
            self.query_one("#ip-title", Label).update(Content(title))
            self.query_one("#ip-name", Input).value = preset.name
            self._set_select("#ip-model", preset.model)
            self.query_one("#ip-description", Input).value = preset.description
            for key, _label, _whole in NUMBER_FIELDS:
                value = preset.params.get(key)
                self.query_one(f"#ip-{key}", Input).value = "" if value is None else str(value)
            self._set_select("#ip-sampler", preset.params.get("sampler"))
            self._set_select("#ip-scheduler", preset.params.get("scheduler"))
            self.query_one("#ip-negative_prompt", Input).value = preset.params.get("negative_prompt", "")
            for flag in FLAGS:
                self.query_one(f"#ip-flag-{flag}", Checkbox).value = bool(preset.flags.get(flag))
            self._show_components(preset.components)
            self.query_one("#ip-error", Label).update("")
        else:
            forms.current = "llm-form"
            title = f"LLM preset {preset.name!r}" if preset.id else "New LLM preset (not saved yet: ctrl+s)"
            self.query_one("#lp-title", Label).update(Content(title))
            self.query_one("#lp-name", Input).value = preset.name
            self._set_select("#lp-model", preset.model)
            self._set_select("#lp-mmproj", preset.mmproj)
            self.query_one("#lp-context", Input).value = str(preset.context_size)
            for role in LLM_ROLES:
                self.query_one(f"#lp-prompt-{role}", TextArea).text = preset.system_prompts.get(role, "")
            self.query_one("#lp-error", Label).update("")

    def _set_select(self, selector: str, value: Any) -> None:
        select = self.query_one(selector, Select)
        with select.prevent(Select.Changed):
            try:
                select.value = value if value else Select.NULL
            except Exception:  # noqa: BLE001 - a value the catalog no longer has: leave it blank
                select.value = Select.NULL

    def _show_components(self, components: dict[str, str]) -> None:
        text = ", ".join(f"{k}: {v}" for k, v in sorted(components.items())) or "no components"
        self.query_one("#ip-components", Static).update(f"Components (from the model's sidecar): {text}")

    @on(Select.Changed, "#ip-model")
    def _model_changed(self, event: Select.Changed) -> None:
        # Components belong to the model: a new model brings its own from its sidecar.
        if not isinstance(self.editing, ImagePresetData) or not isinstance(event.value, str):
            return
        entry = next((e for e in self.catalog_entries if e.rel_path == event.value), None)
        if entry is not None and event.value != self.editing.model:
            self.editing.components = dict(entry.sidecar.components) if entry.sidecar else {}
            self._show_components(self.editing.components)

    # ------------------------------------------------------------------ reading the form

    def image_form(self) -> ImagePresetData:
        """The image preset the form describes (PresetError for a field that cannot be read)."""
        assert isinstance(self.editing, ImagePresetData)
        params: dict[str, Any] = {}
        for key, _label, whole in NUMBER_FIELDS:
            value = parse_number(key, self.query_one(f"#ip-{key}", Input).value, whole)
            if value is not None:
                params[key] = value
        for key in ("sampler", "scheduler"):
            value = self.query_one(f"#ip-{key}", Select).value
            if isinstance(value, str):
                params[key] = value
        negative = self.query_one("#ip-negative_prompt", Input).value
        if negative:
            params["negative_prompt"] = negative
        extra = {k: v for k, v in self.editing.params.items() if k not in PARAM_RULES}  # keep what the form lacks
        model = self.query_one("#ip-model", Select).value
        flags = {f: True for f in FLAGS if self.query_one(f"#ip-flag-{f}", Checkbox).value}
        return ImagePresetData(self.editing.id, self.query_one("#ip-name", Input).value,
                               model if isinstance(model, str) else "", dict(self.editing.components), flags,
                               {**extra, **params}, self.query_one("#ip-description", Input).value)

    def llm_form(self) -> LLMPresetData:
        assert isinstance(self.editing, LLMPresetData)
        text = self.query_one("#lp-context", Input).value.strip()
        try:
            context = int(text)
        except ValueError:
            raise PresetError(f"context size must be a whole number, got {text!r}") from None
        model = self.query_one("#lp-model", Select).value
        mmproj = self.query_one("#lp-mmproj", Select).value
        prompts = {role: self.query_one(f"#lp-prompt-{role}", TextArea).text for role in LLM_ROLES}
        return LLMPresetData(self.editing.id, self.query_one("#lp-name", Input).value,
                             model if isinstance(model, str) else "", mmproj if isinstance(mmproj, str) else "",
                             context, {r: p for r, p in prompts.items() if p.strip()})

    # ------------------------------------------------------------------ actions

    def action_new_image(self) -> None:
        entries = [e for e in self.catalog_entries if e.kind == "image"]
        self.app.push_screen(ModelPicker("New image preset from which model?", entries), self._new_image_from)

    def _new_image_from(self, rel_path: str | None) -> None:
        entry = next((e for e in self.catalog_entries if e.rel_path == rel_path), None)
        if entry is None:
            return
        self._edit(preset_from_model(entry, {p.name for p in self.image_presets}))
        self.query_one("#ip-name", Input).focus()

    def action_new_llm(self) -> None:
        entries = [e for e in self.catalog_entries if e.kind == "llm"]
        self.app.push_screen(ModelPicker("New LLM preset for which model?", entries), self._new_llm_from)

    def _new_llm_from(self, rel_path: str | None) -> None:
        entry = next((e for e in self.catalog_entries if e.rel_path == rel_path), None)
        if entry is None:
            return
        cfg_llm = self.app.cfg["llm"]
        sc = entry.sidecar
        taken = {p.name for p in self.llm_presets}
        name, n = entry.name, 2
        while name in taken:
            name, n = f"{entry.name} {n}", n + 1
        self._edit(LLMPresetData(None, name, entry.rel_path, (sc.mmproj if sc else "") or "",
                                 (sc.context_size if sc and sc.context_size else cfg_llm["context_size"]),
                                 dict(cfg_llm["system_prompts"])))
        self.query_one("#lp-name", Input).focus()

    def action_save(self) -> None:
        error_label = "#ip-error" if isinstance(self.editing, ImagePresetData) else "#lp-error"
        if self.editing is None:
            self.notify("Nothing to save: choose or create a preset first.", severity="warning")
            return
        try:
            data: ImagePresetData | LLMPresetData = (self.image_form() if isinstance(self.editing, ImagePresetData)
                                                     else self.llm_form())
        except PresetError as exc:
            self.query_one(error_label, Label).update(Content(str(exc)))
            return
        self.query_one(error_label, Label).update("")
        self._save(data)

    @work(thread=True, group="presets-save", exit_on_error=False)
    def _save(self, data: ImagePresetData | LLMPresetData) -> None:
        try:
            if isinstance(data, ImagePresetData):
                preset_id = save_image_preset(self.app.db, data)
            else:
                preset_id = save_llm_preset(self.app.db, data)
        except PresetError as exc:
            self.app.call_from_thread(self._save_failed, data, str(exc))
            return
        self.app.call_from_thread(self._saved, data, preset_id)

    def _save_failed(self, data: ImagePresetData | LLMPresetData, message: str) -> None:
        label = "#ip-error" if isinstance(data, ImagePresetData) else "#lp-error"
        self.query_one(label, Label).update(Content(message))

    def _saved(self, data: ImagePresetData | LLMPresetData, preset_id: int) -> None:
        data.id = preset_id
        self.editing = data
        kind = "image" if isinstance(data, ImagePresetData) else "llm"
        self.notify(f"Saved preset {data.name!r}")
        self._fill_form(data)
        self._reload((kind, f"{kind}-{preset_id}"))

    def action_load(self) -> None:
        preset = self.editing if isinstance(self.editing, ImagePresetData) else None
        if preset is None or preset.id is None:
            self.notify("Choose a saved image preset to load.", severity="warning")
            return
        self.run_worker(self._open_in_generate(preset.generate_params()), group="presets-load-generate",
                        exit_on_error=False)

    async def _open_in_generate(self, params: dict[str, Any]) -> None:
        self.app.open_in_generate(params)

    def action_delete(self) -> None:
        preset = self.editing
        if preset is None or preset.id is None:
            self.notify("Choose a saved preset to delete.", severity="warning")
            return
        kind = "image" if isinstance(preset, ImagePresetData) else "llm"
        what = "image preset" if kind == "image" else "LLM preset"
        self.app.push_screen(ConfirmDialog(f"Delete the {what} {preset.name!r}?"),
                             partial(self._delete_confirmed, kind, preset.id))

    def _delete_confirmed(self, kind: str, preset_id: int, confirmed: bool | None) -> None:
        if confirmed:
            self._delete(kind, preset_id)

    @work(thread=True, group="presets-delete", exit_on_error=False)
    def _delete(self, kind: str, preset_id: int) -> None:
        delete_preset(self.app.db, kind, preset_id)
        self.app.call_from_thread(self._deleted)

    def _deleted(self) -> None:
        self.editing = None
        self.query_one("#preset-forms", ContentSwitcher).current = "preset-empty"
        self.notify("Preset deleted")
        self._reload()

    def action_focus_list(self) -> None:
        target = "#llm-presets" if isinstance(self.editing, LLMPresetData) else "#image-presets"
        self.query_one(target, OptionList).focus()
