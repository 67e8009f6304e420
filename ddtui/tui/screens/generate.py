"""The generate screen: the prompt form, submitting from the keyboard, live progress and preview, results.

Fields left empty use the chosen model's (or preset's) defaults, shown as placeholders. The form, with the
prompts submitted so far, is kept in the history database (`Setting` row `tui.generate.form`) so it comes
back the next time; ctrl+up / ctrl+down walk the submitted prompts, and the prompt editor's own undo (ctrl+z)
and redo (ctrl+y) work on top. Styles are applied here, before submitting, exactly as the CLI does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pony.orm import db_session
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, Footer, Header, Input, Label, OptionList, Select, SelectionList, Static, TextArea
from textual.widgets.option_list import Option

from ...catalog.models import SAMPLERS, SCHEDULERS, Catalog
from ...core.client import RequestFailed, ServiceUnavailable
from ...core.params import MAX_BATCH, ParamError, parse_size
from ...core.styles import StyleError, apply_styles
from ...core.thumbnails import thumbnail_path
from ..app import ReportsWorkerErrors, ScreenNav
from ..keys import bindings_for
from ..messages import JobEvent, JobPreview, JobProgress, ServiceState, SettingsChanged
from ..widgets.image import ImageView
from ..widgets.progress import JobProgressBar

FORM_SETTING = "tui.generate.form"
PROMPT_HISTORY_KEEP = 100


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


class LoraPicker(ModalScreen[str | None]):
    """Pick a LoRA from the catalog; answers the text to insert (`<lora:name:weight>` and trigger words)."""

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
        entry = next((e for e in self.entries if e.rel_path == event.option.id), None)
        if entry is None:
            self.dismiss(None)
            return
        sc = entry.sidecar
        weight = sc.default_weight if sc else 1.0
        words = ", ".join(sc.trigger_words) if sc and sc.trigger_words else ""
        self.dismiss(f"<lora:{entry.name}:{weight:g}>" + (f" {words}" if words else ""))

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
        self._pending_params: dict[str, Any] | None = None
        self._init_image: Path | None = None
        self._init_generation: int | None = None
        self._defaults: dict[str, dict[str, Any]] = {}
        self._ready = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield ScreenNav()
        with Horizontal(id="gen-main"):
            with VerticalScroll(id="gen-form"):
                yield Label("Prompt", classes="field-label", id="prompt-label")
                yield TextArea(id="prompt", soft_wrap=True, tab_behavior="focus", show_line_numbers=False)
                yield Label("Negative prompt", classes="field-label")
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
                with Horizontal(classes="row", id="init-row"):
                    yield Label("", id="init-label")
                    yield Input("0.75", id="strength", type="number", placeholder="strength", compact=True)
                yield Label("Styles  [dim](space: toggle)[/]", classes="field-label", id="styles-label")
                yield SelectionList[str](id="styles")
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
            f"Prompt  [dim]({key('generate.prompt_prev')}/{key('generate.prompt_next')} earlier prompts · "
            f"^z undo · {key('generate.lora')} LoRA · {key('generate.submit')} generate)[/]")
        self.query_one("#init-row").display = False
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
            styles = [s.name for s in app.db.Style.select().order_by(lambda s: s.name)]  # type: ignore[attr-defined]
            row = app.db.Setting.get(key=FORM_SETTING)  # type: ignore[attr-defined]
            saved = dict(row.value) if row is not None and isinstance(row.value, dict) else {}
        app.call_from_thread(self._fill_choices, catalog, presets, styles, saved)

    def _fill_choices(self, catalog: Catalog, presets: list[tuple[str, str, dict]], styles: list[str],
                      saved: dict[str, Any]) -> None:
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
        style_list = self.query_one("#styles", SelectionList)
        style_list.clear_options()
        style_list.add_options([(escape(name), name) for name in styles])
        style_list.display = bool(styles)
        self.query_one("#styles-label", Label).update(
            "Styles  [dim](space: toggle)[/]" if styles else "Styles  [dim]none saved yet (F6: the Styles screen)[/]")
        if not options:
            self._error("No image models found. Put models in models/stable-diffusion/ or run "
                        "`ddtui models demo`.")
        self.prompt_history = [p for p in saved.get("prompt_history", []) if isinstance(p, str)][-PROMPT_HISTORY_KEEP:]
        self._apply_form(saved)
        if self._pending_params is not None:
            self.load_params(self._pending_params)
            self._pending_params = None
        self._ready = True
        self._update_placeholders()

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
        """Fill the form from a history item's params (re-run or tweak it)."""
        if not self._ready:
            self._pending_params = dict(params)
            return
        self.query_one("#prompt", TextArea).load_text(str(params.get("prompt") or ""))
        self.query_one("#negative", TextArea).load_text(str(params.get("negative_prompt") or ""))
        model = params.get("model")
        select = self.query_one("#model", Select)
        if model and f"model:{model}" in self._defaults:
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
        self.query_one("#batch", Input).value = "1"
        self.query_one("#prompt", TextArea).focus()
        self.notify("The form holds the item's parameters; the seed is locked.", title="Loaded into Generate")

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
        self._status(f"Job {job_id} queued: {batch} image(s), seed {seed}.")
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
        if self._mine(message):
            self._job_event(message)

    def on_job_progress(self, message: JobProgress) -> None:
        if self._mine(message):
            self._job_progress(message)

    def on_job_preview(self, message: JobPreview) -> None:
        if self._mine(message):
            self._job_preview(message)

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
    async def _cancel(self, job_id: str) -> None:
        try:
            await self.app.request("cancel_job", {"job_id": job_id, "now": False})  # type: ignore[attr-defined]
        except (RequestFailed, ServiceUnavailable) as exc:
            self.app.notify_error(f"Cannot cancel job {job_id}", str(exc))  # type: ignore[attr-defined]
            return
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
        def insert(text: str | None) -> None:
            if not text:
                return
            area = self.query_one("#prompt", TextArea)
            row, col = area.cursor_location
            line = area.document.get_line(row)
            before = line[:col]
            prefix = "" if not before or before.endswith((" ", ",")) else ", "
            area.insert(prefix + text)
            area.focus()

        self.app.push_screen(LoraPicker(self.app.catalog()), insert)  # type: ignore[attr-defined]

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
