"""The settings screen: every config.json value as a field, checked with `ddtui.config.validate` on save.

A value that cannot be used is reported next to its field with the validator's own words, and nothing is
written until every field is right. Interface settings (theme, keys, image protocol) apply at once; the
service reads the rest when it starts again.
"""

from __future__ import annotations

from pathlib import Path

import json
import re
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Checkbox, Footer, Input, Label, Select, Static, TextArea

from ...config import DEFAULTS, ConfigError, get_dotted, leaves, set_dotted, validate
from ...core.client import RequestFailed, ServiceUnavailable
from ..keys import bindings_for
from ..messages import SettingsChanged
from ..widgets.image import CHOICES as IMAGE_CHOICES
from .base import MainScreen, title_bars

HELP: dict[str, str] = {
    "paths.model_dir": "empty: <home>/models",
    "paths.output_dir": "empty: <home>/outputs",
    "sd.default_model": "relative to the model folder, e.g. stable-diffusion/x.safetensors",
    "sd.threads": "0: chosen from the CPU count",
    "sd.preview_interval": "a live preview every N steps; 0 turns previews off",
    "sd.preview_size": "pixels, at least 16",
    "llm.threads": "0: chosen from the CPU count",
    "llm.idle_timeout": "seconds before an idle LLM is unloaded; 0 keeps it",
    "workers.remote": "JSON list of {name, endpoint: tcp://host:port, server_key, kind: sd|llm}",
    "ui.theme": "also ctrl+t, or 'Theme' in the command palette",
    "ui.image_protocol": "auto, kitty, sixel, halfcell or none; applies at the next start",
    "ui.keys": 'JSON object: binding id -> key, e.g. {"generate.submit": "ctrl+s"} (ids: F1)',
}
SERVICE_SECTIONS = ("paths", "llm", "sd", "workers", "queue", "timeouts")


def field_id(dotted: str) -> str:
    return "f-" + dotted.replace(".", "--")


def error_id(dotted: str) -> str:
    return "e-" + dotted.replace(".", "--")


class SettingsScreen(MainScreen[None]):
    """Edit config.json; ctrl+s checks and saves, ctrl+r goes back to what is saved."""

    CSS_PATH = Path(__file__).parent / "settings.tcss"
    TITLE = "Settings"
    BINDINGS = bindings_for("settings")

    def __init__(self) -> None:
        super().__init__(name="settings")
        self.keys = [key for key, _ in leaves(DEFAULTS)]
        self._checked: dict[str, object] = {}  # field -> the value its shown error is about

    def compose(self) -> ComposeResult:
        yield from title_bars()
        yield Static("", id="settings-summary")
        with VerticalScroll(id="settings-form"):
            section = ""
            for dotted, default in leaves(DEFAULTS):
                head = dotted.split(".")[0]
                if head != section:
                    section = head
                    note = "  [dim](read by the service when it starts)[/]" if head in SERVICE_SECTIONS else ""
                    yield Label(f"[b]{head}[/b]{note}", classes="section")
                with Vertical(classes="setting"):
                    with Horizontal(classes="setting-row"):
                        yield Label(dotted, classes="setting-label")
                        yield self._field(dotted, default)
                        yield Label(HELP.get(dotted, ""), classes="setting-hint")
                    yield Static("", id=error_id(dotted), classes="field-error", markup=False)
        yield Footer()

    def _field(self, dotted: str, default: Any) -> Widget:
        fid = field_id(dotted)
        if dotted == "ui.image_protocol":
            return Select([(c, c) for c in IMAGE_CHOICES], id=fid, allow_blank=False, compact=True)
        if dotted == "ui.theme":
            names = sorted(self.app.available_themes)
            return Select([(n, n) for n in names], id=fid, allow_blank=False, compact=True)
        if isinstance(default, bool):
            return Checkbox("on", id=fid, compact=True)
        if isinstance(default, str) and len(default) > 60:
            return TextArea(id=fid, soft_wrap=True, classes="long", tab_behavior="focus", compact=True)
        if isinstance(default, (dict, list)):
            return Input(id=fid, placeholder="JSON", compact=True)
        if isinstance(default, int):
            return Input(id=fid, type="integer", compact=True)
        if isinstance(default, float):
            return Input(id=fid, type="number", compact=True)
        return Input(id=fid, compact=True)

    def on_mount(self) -> None:
        self.fill(self.app.cfg.data)
        self.query_one("#settings-summary", Static).update(
            f"{escape(str(self.app.cfg.path))}  [dim]ctrl+s: check and save · ctrl+r: revert[/]")

    def fill(self, data: dict[str, Any]) -> None:
        for dotted in self.keys:
            value = get_dotted(data, dotted)
            widget = self.query_one(f"#{field_id(dotted)}")
            if isinstance(widget, Checkbox):
                widget.value = bool(value)
            elif isinstance(widget, Select):
                if value in [v for v in (IMAGE_CHOICES if dotted == "ui.image_protocol"
                                         else sorted(self.app.available_themes))]:
                    widget.value = value
            elif isinstance(widget, TextArea):
                widget.load_text(str(value))
            elif isinstance(widget, Input):
                widget.value = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            self._field_error(dotted, "")

    # ------------------------------------------------------------------ reading and checking

    def read_form(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The form as config data, and per-field errors for values that are not even the right type."""
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for dotted, default in leaves(DEFAULTS):
            widget = self.query_one(f"#{field_id(dotted)}")
            if isinstance(widget, Checkbox):
                value: Any = widget.value
            elif isinstance(widget, Select):
                value = widget.value if isinstance(widget.value, str) else default
            elif isinstance(widget, TextArea):
                value = widget.text
            else:
                text = widget.value.strip() if isinstance(widget, Input) else ""
                value = text
                if isinstance(default, (dict, list)):
                    try:
                        value = json.loads(text or ("{}" if isinstance(default, dict) else "[]"))
                    except json.JSONDecodeError as exc:
                        errors[dotted] = f"not valid JSON: {exc.msg} at column {exc.colno}"
                        continue
                elif isinstance(default, bool):
                    pass
                elif isinstance(default, int):
                    try:
                        value = int(text)
                    except ValueError:
                        errors[dotted] = f"must be a whole number, got {text!r}"
                        continue
                elif isinstance(default, float):
                    try:
                        value = float(text)
                    except ValueError:
                        errors[dotted] = f"must be a number, got {text!r}"
                        continue
            set_dotted(data, dotted, value)
        return data, errors

    def field_of(self, message: str) -> str:
        """The form field a validation message is about (its first quoted dotted key)."""
        for quoted in re.findall(r"'([A-Za-z_][\w.\[\]]*)'", message):
            key = re.sub(r"\[\d+\].*$", "", quoted)
            while key:
                if key in self.keys:
                    return key
                key = key.rpartition(".")[0]
        return ""

    def action_save(self) -> None:
        for dotted in self.keys:
            self._field_error(dotted, "")
        data, errors = self.read_form()
        path = self.app.cfg.path or self.app.home.config_file
        if not errors:
            try:
                merged = validate(data, path)
            except ConfigError as exc:
                message = str(exc).replace(f"{path}: ", "")
                key = self.field_of(message)
                errors[key or "_"] = message
        if errors:
            for dotted, message in errors.items():
                if dotted in self.keys:
                    self._field_error(dotted, message)
            first = next(iter(errors))
            summary = f"Not saved: {len(errors)} problem(s). {first}: {errors[first]}"
            self.query_one("#settings-summary", Static).update(f"[b red]{escape(summary)}[/]")
            if first in self.keys:
                self.query_one(f"#{field_id(first)}").focus()
            self.notify(escape(summary), title="Settings", severity="error")
            return
        self.write(merged)

    @work(group="settings-save", exclusive=True, exit_on_error=False)
    async def write(self, merged: dict[str, Any]) -> None:
        """The service checks and writes config.json and tells every client what changed."""
        try:
            result = await self.app.request("config.save", {"config": merged})
        except (ServiceUnavailable, RequestFailed) as exc:
            summary = f"Not saved: {exc}"
            self.query_one("#settings-summary", Static).update(f"[b red]{escape(summary)}[/]")
            self.notify(escape(summary), title="Settings", severity="error")
            return
        self._saved(list(result.get("changed", [])))

    def _saved(self, changed: list[str]) -> None:
        cfg = self.app.cfg
        service = [k for k in changed if k.split(".")[0] in SERVICE_SECTIONS]
        note = (" The service reads " + ", ".join(service[:4]) + (" …" if len(service) > 4 else "")
                + " when it starts again (ddtui serve --stop, then start ddtui).") if service else ""
        self.query_one("#settings-summary", Static).update(
            f"[green]Saved[/] {escape(str(cfg.path))} · {len(changed)} change(s).{escape(note)}")
        self.notify(escape(f"{len(changed)} change(s) saved.{note}"), title="Settings")

    def action_revert(self) -> None:
        self.fill(self.app.cfg.data)
        self.query_one("#settings-summary", Static).update("Reverted to the saved file.")

    def on_settings_changed(self, message: SettingsChanged) -> None:
        if "ui.theme" in message.changed:
            self.fill(self.app.cfg.data)

    @on(Input.Changed)
    def _clear_error(self, event: Input.Changed) -> None:
        """An edited field loses its error (not one whose value is still the one that was checked)."""
        if event.input.id and event.input.id.startswith("f-"):
            dotted = event.input.id[2:].replace("--", ".")
            if self._checked.get(dotted) != event.value:
                self._field_error(dotted, "")

    def _field_error(self, dotted: str, message: str) -> None:
        if message:
            widget = self.query_one(f"#{field_id(dotted)}")
            self._checked[dotted] = widget.value if isinstance(widget, Input) else None
        else:
            self._checked.pop(dotted, None)
        try:
            box = self.query_one(f"#{error_id(dotted)}", Static)
        except Exception:  # noqa: BLE001 - an unknown key from the validator has no field
            return
        box.update(message)
        box.set_class(bool(message), "-shown")
