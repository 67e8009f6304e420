"""The Generate screen: the form, submitting from the keyboard, live progress and preview, results.

The parts: `GenerateForm` (widgets/generate_form.py) owns the fields and converts them to a request and back;
`ResultsStrip` (widgets/results.py) shows what this screen made; `PromptTools` (prompt_tools.py) runs the LLM
and library tools. The screen loads the form's choices, keeps the form in the history database (`Setting`
row `tui.generate.form`) so it comes back next time, submits jobs and routes each job's events to whoever
asked for it: the form's generate jobs to the progress bar, preview and results, chat jobs to the tools.

Styles are applied here, before submitting, exactly as the CLI does; the final prompt is previewed under the
style list. The hires fix (a second, upscaled pass) is sent as the request's `hires` dict.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from pony.orm import db_session
from rich.markup import escape
from textual import events, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Footer, Static

from ...catalog.models import Catalog
from ...core.client import RequestFailed, ServiceUnavailable
from ...core.params import ParamError
from ...core.styles import StyleError, apply_styles
from ...core.thumbnails import thumbnail_path
from ..keys import bindings_for
from ..messages import JobEvent, JobPreview, JobProgress, ServiceState, SettingsChanged
from ..prompt_library import list_styles
from ..viewing import results_viewing
from ..widgets.generate_form import GenerateForm
from ..widgets.image import ImageView
from ..widgets.progress import JobProgressBar
from ..widgets.results import ResultsStrip
from .base import MainScreen, title_bars
from .prompt_tools import JobMessage, PromptTools

FORM_SETTING = "tui.generate.form"
EARLY_KEEP = 500
SHORT_TERMINAL = 36  # rows; below it the results strip and the prompt shrink so the form's fields show


class GenerateScreen(MainScreen[None]):
    """Write a prompt, pick a model or preset, and generate; previews and results show as they come."""

    CSS_PATH = Path(__file__).parent / "generate.tcss"
    TITLE = "Generate"
    BINDINGS = bindings_for("generate")

    job_id: reactive[str] = reactive("")

    def __init__(self) -> None:
        super().__init__(name="generate")
        self.tools = PromptTools(self)
        self._routes: dict[str, Callable[[JobMessage], None]] = {}  # job id -> who reads its events
        self._submitting = 0  # submits waiting for the service's answer
        self._early: list[JobMessage] = []  # events of jobs not named yet (their submit is still answered)
        self._pending_params: list[dict[str, Any]] = []
        self._ready = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield from title_bars()
        with Horizontal(id="gen-main"):
            yield GenerateForm()
            with Vertical(id="gen-side"):
                yield ImageView("Live preview appears here", id="preview")
                yield JobProgressBar(id="progress")
                yield Static("", id="gen-status", markup=False)
        yield ResultsStrip()
        yield Footer()

    @property
    def form(self) -> GenerateForm:
        return self.query_one(GenerateForm)

    @property
    def results(self) -> ResultsStrip:
        return self.query_one(ResultsStrip)

    @property
    def progress(self) -> JobProgressBar:
        return self.query_one("#progress", JobProgressBar)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.height < SHORT_TERMINAL, "-short")

    def on_mount(self) -> None:
        self.set_class(self.size.height < SHORT_TERMINAL, "-short")
        self.form.focus_prompt()
        self._show_service_state(self.app.link.connected, self.app.link.reason)
        self.load_form()

    @property
    def form_loaded(self) -> bool:
        """The saved form and the choices are in the fields (saving before that would lose the form)."""
        return self._ready

    def on_screen_suspend(self) -> None:
        if self._ready:
            self._save_form_in_background(self.form.saved())

    # ------------------------------------------------------------------ loading choices and the saved form

    @work(group="generate-load", thread=True, exit_on_error=False)
    def load_form(self) -> None:
        app = self.app
        catalog = app.catalog()
        with db_session:
            presets = [(p.name, p.model, dict(p.params))
                       for p in app.db.ImagePreset.select().order_by(lambda p: p.name)]
            row = app.db.Setting.get(key=FORM_SETTING)
            saved = dict(row.value) if row is not None and isinstance(row.value, dict) else {}
        styles = [(s.name, s.prompt, s.negative_prompt) for s in list_styles(app.db)]
        app.call_from_thread(self._fill_choices, catalog, presets, styles, saved)

    def _fill_choices(self, catalog: Catalog, presets: list[tuple[str, str, dict[str, Any]]],
                      styles: list[tuple[str, str, str]], saved: dict[str, Any]) -> None:
        form = self.form
        if not form.set_choices(catalog, presets, styles, self.app.cfg["sd"]["default_model"]):
            form.show_error("No image models found. Put models in models/stable-diffusion/ or run "
                            "`ddtui models demo`.")
        if not self._ready:  # the saved form only once: a reload of the choices keeps what is typed
            form.restore(saved)
            self._ready = True
        pending, self._pending_params = self._pending_params, []
        for params in pending:
            self.load_params(params)

    def save_form(self, form: dict[str, Any]) -> None:
        """Blocking: write the form to the Setting table (call from a thread)."""
        db = self.app.db
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
        form = self.form
        if "insert" in params:
            form.insert_at_cursor(str(params["insert"]))
            self.notify("Inserted at the cursor (ctrl+z undoes it).", title="Generate", timeout=3)
            return
        form.load_params(params)
        form.focus_prompt()
        if params.get("preset"):
            self.notify(f"Preset {params['preset']!r} is chosen; its values are in the form.", title="Preset loaded")
        elif "prompt" in params:
            self.notify("The form holds the item's parameters; the seed is locked.", title="Loaded into Generate")

    def set_init_image(self, path: Path, generation_id: int | None = None, params: dict[str, Any] | None = None
                       ) -> None:
        self.form.set_init_image(path, generation_id, params)

    # ------------------------------------------------------------------ submitting

    def action_submit(self) -> None:
        if not self._ready:
            self.notify("The form is still loading.", severity="warning", timeout=2)
            return
        form = self.form
        try:
            request = form.to_request()
        except ParamError as exc:
            form.show_error(str(exc))
            self.notify(escape(str(exc)), title="Cannot generate", severity="error")
            return
        form.show_error("")
        form.remember_prompt(request["prompt"])
        self._save_form_in_background(form.saved())
        self.submit_request(request, form.chosen_styles)

    @work(group="generate-submit", exit_on_error=False)
    async def submit_request(self, request: dict[str, Any], styles: list[str]) -> None:
        app, form = self.app, self.form
        if styles:
            try:
                request["prompt"], negative = await asyncio.to_thread(
                    apply_styles, app.db, styles, request["prompt"], request.get("negative_prompt", ""))
            except StyleError as exc:
                form.show_error(str(exc))
                return
            if negative:
                request["negative_prompt"] = negative

        def queued(job_id: str) -> bool:
            self.job_id = job_id
            self.progress.start("queued")
            return True

        try:
            job = await self.submit_job("generate", request, self._generate_message, on_queued=queued)
        except RequestFailed as exc:
            form.show_error(str(exc))
            app.notify_error("The service refused the job", str(exc))
            return
        except ServiceUnavailable as exc:
            form.show_error(str(exc))
            app.notify_error("Cannot generate", str(exc))
            return
        payload = job.get("payload", {})
        seed = payload.get("seed")
        form.seed_used(seed)
        final = f"\nFinal prompt (with styles): {request['prompt']}" if styles else ""
        if self.progress.state == "queued":  # its first events may have told more already
            self.status(f"Job {job['id']} queued: {payload.get('batch', 1)} image(s), seed {seed}.{final}")

    # ------------------------------------------------------------------ routing job events

    async def submit_job(self, kind: str, params: dict[str, Any], handler: Callable[[JobMessage], None],
                         priority: int = 0, on_queued: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """Queue a job whose events go to `handler` (its final `JobEvent` last). `on_queued(job_id)` runs once
        the service named the job, before any of its events; answering False cancels the job."""
        self._submitting += 1
        try:
            job = await self.app.submit(kind, params, priority=priority)
        finally:
            self._submitting -= 1
        job_id = str(job["id"])
        if on_queued is not None and not on_queued(job_id):
            self.cancel_job(job_id, note=False)
            return job
        self._routes[job_id] = handler
        # Events of this job may have come in before the service's answer did: handle them now, in order.
        early = [m for m in self._early if m.job_id == job_id]
        self._early = [m for m in self._early if m.job_id != job_id] if self._submitting else []
        for message in early:
            self._route(message)
        return job

    def forget_job(self, job_id: str) -> bool:
        """Stop routing a job's events (its reader went away); whether it was still routed."""
        return self._routes.pop(job_id, None) is not None

    def _route(self, message: JobMessage) -> None:
        handler = self._routes.get(message.job_id)
        if handler is None:
            if self._submitting:
                self._early.append(message)
                del self._early[:-EARLY_KEEP]
            return
        if isinstance(message, JobEvent) and message.final:
            del self._routes[message.job_id]
        handler(message)

    def on_job_event(self, message: JobEvent) -> None:
        self._route(message)

    def on_job_progress(self, message: JobProgress) -> None:
        self._route(message)

    def on_job_preview(self, message: JobPreview) -> None:
        self._route(message)

    def _generate_message(self, message: JobMessage) -> None:
        """An event of a generate job this screen submitted."""
        current = message.job_id == self.job_id
        if isinstance(message, JobProgress):
            if current:
                self.progress.advance(message)
            return
        if isinstance(message, JobPreview):
            if current:
                self.query_one("#preview", ImageView).show_png(message.png, f"preview · step {message.step}")
            return
        d = message.data
        if message.event == "started":
            if current:
                self.progress.start("running")
                self.status(f"Job {message.job_id} running on {d.get('worker', '?')} (attempt {d.get('attempt', 1)}).")
        elif message.event == "image":
            self._add_result(d)
        elif message.event == "retrying" and d.get("state") != "cancelled":  # a cancel's lost attempt: no retry
            self.status(f"Job {message.job_id}: attempt {d.get('attempts')} failed ({d.get('reason')}: "
                        f"{d.get('message')}); retrying.")
        elif message.final and current:
            count = len(d.get("generation_ids", []) or [])
            note = {"done": f"{count} image(s)", "failed": f"{d.get('reason', '')}", "cancelled": ""}.get(
                message.event, "")
            self.progress.finish(message.event, note)
            self.status(self._final_text(message))

    def _final_text(self, message: JobEvent) -> str:
        d = message.data
        if message.event == "done":
            ids = d.get("generation_ids", []) or []
            return f"Job {message.job_id} finished: {len(ids)} image(s) " + " ".join(f"#{i}" for i in ids)
        if message.event == "failed":
            return f"Job {message.job_id} failed: {d.get('reason')}: {d.get('message')}"
        return f"Job {message.job_id} cancelled."

    def _add_result(self, data: dict[str, Any]) -> None:
        gid = int(data.get("generation_id", 0) or 0)
        thumb = thumbnail_path(self.app.home.thumbnails, str(data.get("uuid", "")))
        self.results.add(gid, thumb, data.get("seed", ""))
        if thumb.exists():
            self.query_one("#preview", ImageView).show_file(thumb, f"#{gid}")

    def on_service_state(self, message: ServiceState) -> None:
        self._show_service_state(message.connected, message.reason)

    def on_settings_changed(self, message: SettingsChanged) -> None:
        if any(k.startswith(("paths.", "sd.")) for k in message.changed):
            self.load_form()

    def _show_service_state(self, connected: bool, reason: str) -> None:
        if connected:
            self.status(f"Ready. {self.app.key_label('generate.submit')} generates.")
        else:
            self.status(f"Service offline: {reason}. Generating needs the service; history still works.")

    def status(self, text: str) -> None:
        self.query_one("#gen-status", Static).update(text)

    # ------------------------------------------------------------------ keys

    def action_cancel_job(self) -> None:
        if not self.job_id or self.job_id not in self._routes:
            self.notify("No job of this screen is running.", severity="warning")
            return
        self.cancel_job(self.job_id)

    @work(group="generate-cancel", exit_on_error=False)
    async def cancel_job(self, job_id: str, note: bool = True) -> None:
        try:
            await self.app.request("cancel_job", {"job_id": job_id, "now": False})
        except (RequestFailed, ServiceUnavailable) as exc:
            self.app.notify_error(f"Cannot cancel job {job_id}", str(exc))
            return
        if note:
            self.status(f"Cancelling job {job_id} after the current image…")

    def action_prompt_prev(self) -> None:
        if not self.form.walk_prompts(-1):
            self.notify("No earlier prompts yet.", timeout=2)

    def action_prompt_next(self) -> None:
        if not self.form.walk_prompts(+1):
            self.notify("No earlier prompts yet.", timeout=2)

    def action_lora_weight(self, delta: float) -> None:
        done = self.form.nudge_lora_weight(delta)
        if done is None:
            self.notify("Put the cursor on a <lora:name:weight> tag to change its weight.", timeout=3)
        else:
            self.status(done)

    def action_insert_lora(self) -> None:
        self.tools.insert_lora()

    def action_enhance(self) -> None:
        self.tools.enhance()

    def action_extract_styles(self) -> None:
        self.tools.extract_styles()

    def action_insert_snippet(self) -> None:
        self.tools.insert_snippet()

    def action_paste_params(self) -> None:
        self.tools.paste_parameters()

    def action_explore_last(self) -> None:
        last = self.results.last_generation_id
        if last is None:
            self.notify("No result yet: generate an image first (or press x on one in History).",
                        severity="warning")
            return
        self.app.send_to("explore", last)

    def action_view_results(self) -> None:
        if (viewing := results_viewing(self, self.results.generation_ids)) is not None:
            self.app.open_viewer(*viewing)

    def action_toggle_hires(self) -> None:
        self.form.toggle_hires()

    def action_toggle_seed_lock(self) -> None:
        self.form.seed_locked = not self.form.seed_locked

    def action_focus_prompt(self) -> None:
        self.form.focus_prompt()

    def action_clear_init(self) -> None:
        self.form.clear_init()
