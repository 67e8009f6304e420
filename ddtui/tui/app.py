"""The ddtui app shell: main screens as modes, the link to the core service, themes, keys and the error log.

Screens reach the app through the typed `Host` API (`ddtui/tui/host.py`, which documents it); this class
implements it. Screens share their pieces through `ddtui/tui/screens/base.py` and never import this module.

Core events reach every main screen as the messages of `ddtui.tui.messages` (`JobEvent`, `JobProgress`,
`JobPreview`, `ServiceState`, `CoreStatus`, `SettingsChanged`): handle `on_job_event` etc. in a screen.
Main screens are built by the app with no arguments; `HistoryScreen`, `PresetsScreen` and `StylesScreen`
are imported from `ddtui.tui.screens.{history,presets,styles}` when first shown. The tool screens (inpaint,
explore) are modes too, without a number key: they keep their state while the user looks elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pony.orm import Database
from rich.markup import escape
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.notifications import SeverityLevel
from textual.theme import Theme
from textual.widgets import Input, TextArea
from textual.worker import Worker, WorkerState

from themes import THEMES_DIR

from ..catalog.models import Catalog
from ..config import Config, Home
from ..core.client import CoreClient, RequestFailed, ServiceUnavailable
from ..db.schema import open_database
from ..db.store import Store
from .commands import DdtuiCommands
from .host import ErrorEntry, Host, ServiceLink
from .keys import ALL_SCREENS, bindings_for, keymap_from_config
from .messages import (
    CHANGE_TOPICS,
    CoreStatus,
    DataChanged,
    ErrorLogged,
    JobEvent,
    JobPreview,
    JobProgress,
    ServiceState,
    SettingsChanged,
)
from .screens.base import SCREEN_CLASSES, MissingScreen, ScreenNav, screen_class

if TYPE_CHECKING:
    from .screens.generate import GenerateScreen

log = logging.getLogger("ddtui.tui")

REPO_THEMES = THEMES_DIR
DEFAULT_THEME = "ddtui-dark"
STATUS_EVERY_S = 2.0
STATUS_TIMEOUT_S = 3.0

UPSCALER_SETTING = "tui.upscaler"
SEND_KINDS = ("img2img", "inpaint", "upscale", "explore")


# ------------------------------------------------------------------ themes

THEME_FIELDS = {"name", "primary", "secondary", "warning", "error", "success", "accent", "foreground",
                "background", "surface", "panel", "boost", "dark", "luminosity_spread", "text_alpha", "variables"}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the field."""


def read_theme_file(path: Path) -> Theme:
    """A Textual theme from a .toml or .json file (the fields of `textual.theme.Theme`)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ThemeFileError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ThemeFileError(f"{path}: a theme must be a table of fields")
    unknown = sorted(set(data) - THEME_FIELDS)
    if unknown:
        raise ThemeFileError(f"{path}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(THEME_FIELDS))})")
    data.setdefault("name", path.stem)
    if not isinstance(data.get("primary"), str):
        raise ThemeFileError(f"{path}: 'primary' (a colour like \"#4f8cff\") is required")
    try:
        theme = Theme(**data)
        theme.to_color_system()  # parses every colour now, so a typo is reported with its file
    except Exception as exc:  # noqa: BLE001 - Textual raises several kinds for bad colours
        raise ThemeFileError(f"{path}: {exc}") from None
    return theme


def theme_dirs(home: Home) -> list[Path]:
    """Built-in themes first, then the user's: a user's file of the same name wins."""
    return [REPO_THEMES, home.root / "themes"]


def load_themes(home: Home) -> tuple[list[tuple[Theme, Path]], list[str]]:
    themes: list[tuple[Theme, Path]] = []
    problems: list[str] = []
    for folder in theme_dirs(home):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in (".toml", ".json"):
                try:
                    themes.append((read_theme_file(path), path))
                except ThemeFileError as exc:
                    problems.append(str(exc))
    return themes, problems


class DdtuiApp(Host):
    """The terminal interface of one ddtui home."""

    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "ddtui"
    BINDINGS = bindings_for("app")
    COMMANDS = App.COMMANDS | {DdtuiCommands}
    DEFAULT_MODE = "generate"
    NOTIFICATION_TIMEOUT = 6

    def __init__(self, home: Home, cfg: Config, *, image_protocol: str = "halfcell", connect: bool = True,
                 db: Database | None = None, service_note: str = "", image_note: str = "") -> None:
        super().__init__()
        self.home = home
        self.cfg = cfg
        self.image_protocol = image_protocol
        self.image_note = image_note
        self.db = db if db is not None else open_database(home.db_file)
        self._own_db = db is None
        self.store = Store(home.db_file, cfg.output_dir, db=self.db)  # every read goes through it
        self.client = None
        self.link = ServiceLink(reason=service_note or "not connected yet")
        self._connect = connect
        self._catalog: Catalog | None = None
        self.unknown_key_ids: list[str] = []
        self._upscales: dict[str, int] = {}  # upscale job id -> source generation id, for the "done" note
        for mode, _title in ALL_SCREENS:
            self.add_mode(mode, self._screen_factory(mode))
        self._setup_themes()
        self._apply_keymap()

    # ------------------------------------------------------------------ the Host API (see host.py)

    async def submit(self, kind: str, params: dict[str, Any], priority: int = 0, group: str = "",
                     request_id: str = "") -> dict[str, Any]:
        if self.client is None:
            raise ServiceUnavailable(f"the ddtui service is not connected: {self.link.reason}")
        try:
            return await self.client.submit(kind, params, priority=priority, group=group, request_id=request_id)
        except ServiceUnavailable as exc:
            self._service_lost(str(exc))
            raise

    async def request(self, msg_type: str, content: dict[str, Any] | None = None, request_id: str = "",
                      timeout: float = 15.0) -> dict[str, Any]:
        """A service request other than submit: every write (history.rate, style.save, config.save, ...) and the
        queue actions (cancel_job, retry_job, set_priority, pause_queue, ...)."""
        if self.client is None:
            raise ServiceUnavailable(f"the ddtui service is not connected: {self.link.reason}")
        try:
            return await self.client.request(msg_type, content or {}, timeout=timeout, request_id=request_id)
        except ServiceUnavailable as exc:
            self._service_lost(str(exc))
            raise

    def catalog(self, refresh: bool = False) -> Catalog:
        if self._catalog is None or refresh:
            self._catalog = Catalog.scan(self.cfg.model_dir)
        return self._catalog

    def notify_error(self, title: str, detail: str = "", severity: SeverityLevel = "error") -> None:
        entry = ErrorEntry(datetime.now(), title, detail or title)
        self.error_log.append(entry)
        del self.error_log[:-200]
        key = self.key_label("app.errors")
        first = escape(detail.splitlines()[0][:160]) if detail else ""
        self.notify(f"{first}\n[dim]{key}: details[/]".strip(), title=escape(title), severity=severity,
                    timeout=10 if severity == "error" else 6)
        self.post_message(ErrorLogged(title, entry.detail))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker) -> None:
        error = worker.error
        detail = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else str(error)
        short = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        self.notify_error(f"{(worker.group or worker.name or 'task').replace('-', ' ')} failed",
                          f"{short}\n\n{detail}")

    def _generate_screen(self) -> GenerateScreen | None:
        """The Generate screen once it exists and is not a stand-in."""
        from .screens.generate import GenerateScreen

        screen = self.main_screens.get("generate")
        return screen if isinstance(screen, GenerateScreen) else None

    def open_in_generate(self, params: dict[str, Any]) -> None:
        self.show_main("generate")
        if (generate := self._generate_screen()) is not None:
            generate.load_params(params)

    @property
    def current_prompt(self) -> str:
        generate = self._generate_screen()
        if generate is None or not generate.is_mounted:
            return ""
        return generate.form.prompt_text()

    def show_in_history(self, generation_id: int) -> None:
        self.show_main("history")
        screen = self.main_screens["history"]
        # A History screen made just now composes first: move its cursor once it has.
        self.call_after_refresh(getattr(screen, "go_to", lambda _id: None), generation_id)

    def open_viewer(self, source: Any, index: int = 0, compare: bool = False) -> None:
        from .screens.viewer import ViewerScreen

        self.push_screen(ViewerScreen(source, index, compare=compare))

    def send_to(self, kind: str, generation_id: int) -> None:
        if kind not in SEND_KINDS:
            raise ValueError(f"send_to kind must be one of {', '.join(SEND_KINDS)}, got {kind!r}")
        if kind == "upscale":
            self.upscale(generation_id)
        elif kind in ("inpaint", "explore"):
            self.show_main(kind)
            method = getattr(self.main_screens[kind], "load_source" if kind == "inpaint" else "explore_from", None)
            if method is not None:  # else the screen could not be loaded and says why itself
                method(generation_id)
        else:
            self._send_to_generate(kind, generation_id)

    # ------------------------------------------------------------------ screens

    def _screen_factory(self, mode: str) -> Callable[[], Screen]:
        def make() -> Screen:
            cls, reason = screen_class(mode)
            screen: Screen = cls() if cls is not None else MissingScreen(mode, reason)
            self.main_screens[mode] = screen
            return screen

        return make

    def show_main(self, mode: str) -> None:
        while isinstance(self.screen, ModalScreen):
            self.pop_screen()
        self.switch_mode(mode)

    def action_show_screen(self, mode: str) -> None:
        self.show_main(mode)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field":
            return isinstance(self.screen.focused, (Input, TextArea))
        return True

    def action_leave_field(self) -> None:
        """Esc in a text field: the field lets go of the keys, so screen and single-letter keys work again.
        (A screen with its own Esc key, or a dialog, handles Esc first.)"""
        self.screen.set_focus(None)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_errors(self) -> None:
        from .screens.errors import ErrorLogScreen

        if not isinstance(self.screen, ErrorLogScreen):
            self.push_screen(ErrorLogScreen())

    def action_pick_theme(self) -> None:
        self.search_themes()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # ours is in the ddtui provider, with its key
                yield command

    # ------------------------------------------------------------------ keys

    def _apply_keymap(self) -> None:
        keymap, _ = keymap_from_config(self.cfg["ui"]["keys"])
        self.set_keymap(keymap)

    def check_key_ids(self) -> list[str]:
        """The ids in ui.keys that no screen declares (reported once the app shows; imports every screen)."""
        known: set[str] = set()
        for mode in SCREEN_CLASSES:
            cls, _ = screen_class(mode)
            for b in getattr(cls, "BINDINGS", []) if cls else []:
                if isinstance(b, Binding) and b.id:
                    known.add(b.id)
        _, unknown = keymap_from_config(self.cfg["ui"]["keys"], known)
        if unknown and unknown != self.unknown_key_ids:
            self.notify_error("Unknown key ids in ui.keys", "These binding ids are not known: "
                              f"{', '.join(unknown)}. Press F1 for the ids.", severity="warning")
        self.unknown_key_ids = unknown
        return unknown

    # ------------------------------------------------------------------ themes

    def _setup_themes(self) -> None:
        themes, problems = load_themes(self.home)
        for theme, path in themes:
            self.register_theme(theme)
            css = path.with_suffix(".tcss")
            if css.is_file():  # rules scoped with App.-theme-<name>, so they apply only to their theme
                self.css_path.append(css)
        self._theme_problems = problems
        wanted = self.cfg["ui"]["theme"] or DEFAULT_THEME
        self._theme_missing = wanted if wanted not in self.available_themes else ""
        name = wanted if not self._theme_missing else (DEFAULT_THEME if DEFAULT_THEME in self.available_themes
                                                       else "textual-dark")
        self.theme = name
        self.add_class(f"-theme-{name}")

    def _on_theme_changed(self, theme: Theme) -> None:
        for cls in [c for c in self.classes if c.startswith("-theme-")]:
            self.remove_class(cls)
        self.add_class(f"-theme-{theme.name}")
        if self.cfg["ui"]["theme"] != theme.name:
            self._save_theme(theme.name)

    @work(group="save-config", exit_on_error=False, exclusive=True)
    async def _save_theme(self, name: str) -> None:
        try:
            await self.request("config.save", {"changes": {"ui.theme": name}})
        except (ServiceUnavailable, RequestFailed) as exc:
            self.notify_error("The theme is used but not saved", str(exc), severity="warning")

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        for problem in self._theme_problems:
            self.notify_error("A theme file was skipped", problem, severity="warning")
        if self._theme_missing:
            self.notify_error("Unknown theme", f"ui.theme is {self._theme_missing!r}; themes: "
                              f"{', '.join(sorted(self.available_themes))}", severity="warning")
        if self.cfg["ui"]["keys"]:
            self.set_timer(0.3, self.check_key_ids)  # after the first frame: it imports every screen
        self._update_sub_title()
        if self._connect:
            self.connect_service()
            self.set_interval(STATUS_EVERY_S, self._poll_status)
        elif self.link.reason:
            self.post_message(ServiceState(False, self.link.reason))

    async def action_quit(self) -> None:
        """Quit the interface; the service keeps running queued work."""
        generate = self._generate_screen()
        # Only a form that finished loading is saved: an early quit must not overwrite the saved one.
        if generate is not None and generate.is_mounted and generate.form_loaded:
            try:
                await asyncio.to_thread(generate.save_form, generate.form.saved())
            except Exception:  # noqa: BLE001 - the app is closing; a lost form is not worth a traceback
                log.exception("could not save the generate form")
        self.exit()

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self._own_db:
            self.db.disconnect()

    # ------------------------------------------------------------------ the service link

    @work(group="service-start", exclusive=True, exit_on_error=False)
    async def start_service(self) -> None:
        """Start the service when none answers (as launch does), then attach to it."""
        from ..core.client import ensure_service

        if self.client is not None:
            self.notify("Already connected to the service.")
            return
        self.notify("Starting the ddtui service…", timeout=3)
        try:
            await ensure_service(self.home)
        except ServiceUnavailable as exc:
            self.notify_error("The service could not start", str(exc))
            return
        self.connect_service()

    @work(group="service", exclusive=True, exit_on_error=False)
    async def connect_service(self) -> None:
        try:
            client = CoreClient(self.home)
        except ServiceUnavailable as exc:
            self._set_link(False, str(exc))
            return
        try:
            await client.subscribe()
            status = await client.request("core_status", timeout=STATUS_TIMEOUT_S)
        except (ServiceUnavailable, RequestFailed, OSError) as exc:
            await client.close()
            self._set_link(False, str(exc))
            return
        self.client = client
        self._set_link(True)
        self._take_status(status)
        self.read_events(client)

    @work(group="events", exclusive=True, exit_on_error=False)
    async def read_events(self, client: CoreClient) -> None:
        while True:
            event, buffers = await client.events.get()
            message = self._message_for(event, buffers)
            if message is not None:
                self.post_message(message)

    @staticmethod
    def _message_for(event: dict[str, Any], buffers: list[bytes]
                     ) -> JobEvent | JobProgress | JobPreview | DataChanged | None:
        kind = event.get("event", "")
        job_id = str(event.get("job_id", ""))
        data = event.get("data") or {}
        parent = str(event.get("parent") or "")
        if kind == "progress":
            return JobProgress.from_event(job_id, data, parent)
        if kind == "preview":
            if not buffers:
                return None
            return JobPreview(job_id, buffers[0], int(data.get("step", 0) or 0), int(data.get("width", 0) or 0),
                              int(data.get("height", 0) or 0), parent)
        if kind in CHANGE_TOPICS:
            ids = [int(i) for i in data.get("ids") or [] if isinstance(i, int)]
            return DataChanged(CHANGE_TOPICS[kind], ids, str(data.get("action", "")), parent, dict(data))
        return JobEvent(job_id, kind, dict(data), parent) if kind else None

    def _poll_status(self) -> None:
        self.poll_status()

    @work(group="status", exclusive=True, exit_on_error=False)
    async def poll_status(self) -> None:
        if self.client is None:
            from ..core.client import ping

            if await ping(self.home, timeout=1.0):
                self.connect_service()
            return
        try:
            status = await self.client.request("core_status", timeout=STATUS_TIMEOUT_S)
        except (ServiceUnavailable, RequestFailed) as exc:
            self._service_lost(str(exc))
            return
        self._take_status(status)

    def _service_lost(self, reason: str) -> None:
        if self.client is None:
            return
        client, self.client = self.client, None
        self.workers.cancel_group(self, "events")
        self.run_worker(client.close(), group="service-close", exit_on_error=False)
        self._set_link(False, f"{reason} (reconnecting when it answers again)")
        self.notify_error("Lost the ddtui service", reason, severity="warning")

    def _set_link(self, connected: bool, reason: str = "") -> None:
        self.link.connected = connected
        self.link.reason = reason
        self._update_sub_title()
        self.post_message(ServiceState(connected, reason))

    def _take_status(self, status: dict[str, Any]) -> None:
        self.link.status = status
        for worker in status.get("workers", []):
            name = worker.get("name", "?")
            restarts = int(worker.get("restarts", 0) or 0)
            # Crashes are counted apart from deliberate restarts (cancel now, unloading an idle LLM), which are
            # no news; a core that does not count them yet only has its restarts.
            crashes = int(worker["crashes"] or 0) if "crashes" in worker else restarts
            state = worker.get("state", "")
            before = self.link.crashes.get(name)
            error = worker.get("last_error", "") or ""
            if before is not None and crashes > before and "cancelled at once" not in error:
                self.notify_error(f"Worker {name} restarted", error or "it stopped answering", severity="warning")
            if state == "failed" and self.link.states.get(name) != "failed":
                self.notify_error(f"Worker {name} stopped", error or "too many crashes")
            self.link.restarts[name] = restarts
            self.link.crashes[name] = crashes
            self.link.states[name] = state
        self._update_sub_title()
        self.post_message(CoreStatus(status))

    def _update_sub_title(self) -> None:
        if not self.link.connected:
            self.sub_title = "service offline"
            return
        st = self.link.status
        running, queued = len(st.get("running", [])), int(st.get("queued", 0) or 0)
        workers = st.get("workers", [])
        ready = sum(1 for w in workers if w.get("state") in ("idle", "busy"))
        paused = " · PAUSED" if st.get("paused") else ""
        self.sub_title = f"{ready}/{len(workers)} workers · {running} running · {queued} queued{paused}"

    # ------------------------------------------------------------------ events in, forwarded

    def forward(self, message: JobEvent | JobProgress | JobPreview | ServiceState | CoreStatus | SettingsChanged
                ) -> None:
        """Post a copy of a shared message to every main screen that exists."""
        for screen in list(self.main_screens.values()):
            if screen.is_attached:
                screen.post_message(message.copy())

    def on_job_event(self, message: JobEvent) -> None:
        if message.event == "failed":
            d = message.data
            self.notify_error(f"Job {message.job_id} failed", f"{d.get('reason', '')}: {d.get('message', '')}"
                              f"\n(after {d.get('attempts', '?')} attempt(s))")
        elif message.event in ("queue_paused", "queue_resumed"):
            self.link.status["paused"] = message.event == "queue_paused"
            self._update_sub_title()
        elif message.job_id in self._upscales:
            if message.event == "image":
                d = message.data
                self.notify(f"#{self._upscales[message.job_id]} upscaled to {d.get('width')}x{d.get('height')}: "
                            f"#{d.get('generation_id')} (its child in the history).", title="Upscale done")
            if message.final:
                del self._upscales[message.job_id]
        self.forward(message)

    def on_data_changed(self, message: DataChanged) -> None:
        if message.topic == "settings" and message.action == "config":
            self._reload_config()
        self.forward(message)

    @work(group="config-reload", thread=True, exclusive=True, exit_on_error=False)
    def _reload_config(self) -> None:
        """config.json was saved through the service (here or by another client): read it again."""
        changed = self.cfg.reload()
        if changed:
            self.call_from_thread(self.post_message, SettingsChanged(changed))

    def on_job_progress(self, message: JobProgress) -> None:
        self.forward(message)

    def on_job_preview(self, message: JobPreview) -> None:
        self.forward(message)

    def on_service_state(self, message: ServiceState) -> None:
        if not message.connected and message.reason:
            self.notify(f"History browsing still works.\n{escape(message.reason)}", title="Service not connected",
                        severity="warning", timeout=8)
        self.forward(message)

    def on_core_status(self, message: CoreStatus) -> None:
        self.forward(message)

    def on_error_logged(self, message: ErrorLogged) -> None:
        if self.screen not in self.main_screens.values():  # the error log itself may be open
            self.screen.post_message(message.copy())

    @on(SettingsChanged)
    def _settings_changed(self, message: SettingsChanged) -> None:
        if any(key.startswith("ui.keys") for key in message.changed):
            self._apply_keymap()
            self.check_key_ids()
            for screen in self.main_screens.values():
                for nav in screen.query(ScreenNav):
                    nav.refresh_line()
        if "ui.theme" in message.changed and self.cfg["ui"]["theme"] in self.available_themes:
            self.theme = self.cfg["ui"]["theme"]
        if any(key.startswith("paths.") for key in message.changed):
            self._catalog = None
        self.forward(message)

    # ------------------------------------------------------------------ send-to

    @work(group="send-to", thread=True, exit_on_error=False)
    def _send_to_generate(self, kind: str, generation_id: int) -> None:
        gen = self.store.generation(generation_id)
        if gen is None:
            raise LookupError(f"no history item #{generation_id}")
        self.call_from_thread(self._init_image_ready, kind, generation_id, gen.file, gen.params)

    def _init_image_ready(self, kind: str, generation_id: int, path: Path, params: dict[str, Any]) -> None:
        self.show_main("generate")
        if (generate := self._generate_screen()) is not None:
            generate.set_init_image(path, generation_id, params)
        self.notify(f"#{generation_id} is the init image (img2img).", title="Sent to Generate")

    @work(group="upscale", exit_on_error=False)
    async def upscale(self, generation_id: int) -> None:
        """Queue an upscale of a history item; with several ESRGAN models, ask which (the last one first)."""
        from .screens.upscale import UpscalerPicker

        catalog = await asyncio.to_thread(self.catalog)
        entries = [e for e in catalog.of_kind("esrgan") if e.usable]
        if not entries:
            self.notify_error(f"Cannot upscale #{generation_id}",
                              f"no ESRGAN model in {catalog.model_dir / 'esrgan'}: put one there (.pth, "
                              ".safetensors or .gguf) or run `ddtui models demo`")
            return
        upscaler = entries[0].rel_path
        if len(entries) > 1:
            last = await asyncio.to_thread(self.store.setting, UPSCALER_SETTING)
            chosen = await self.push_screen_wait(UpscalerPicker(entries, last if isinstance(last, str) else ""))
            if not chosen:
                return
            upscaler = chosen
            if chosen != last:
                try:
                    await self.request("setting.set", {"key": UPSCALER_SETTING, "value": chosen})
                except (ServiceUnavailable, RequestFailed) as exc:
                    self.notify_error("The upscaler choice is not remembered", str(exc), severity="warning")
        try:
            job = await self.submit("upscale", {"generation_id": generation_id, "upscaler": upscaler})
        except (ServiceUnavailable, RequestFailed) as exc:
            self.notify_error(f"Cannot upscale #{generation_id}", str(exc))
            return
        self._upscales[str(job["id"])] = generation_id
        self.notify(f"Upscaling #{generation_id} with {Path(upscaler).stem}: job {job['id']} queued.",
                    title="Upscale", markup=False)


def build_app(home: Home, cfg: Config, **kwargs: Any) -> DdtuiApp:
    return DdtuiApp(home, cfg, **kwargs)


__all__ = ["DdtuiApp", "build_app"]
