"""The messages the app shell shares with every screen: core job events, service state, errors.

The app reads the core's event stream and posts one of these per event to itself and to each main screen
(`DdtuiApp.forward`). Progress and preview events come in floods; their classes `can_replace` a pending
message of the same job, so a busy screen only ever draws the newest one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from textual.message import Message


class _Copyable:
    """A fresh message with the same fields, so one event can be posted to several screens."""

    def copy(self) -> Message:  # type: ignore[misc]
        return replace(self)  # type: ignore[type-var]


@dataclass
class JobEvent(_Copyable, Message, bubble=False):
    """A job event other than progress and previews: queued, started, image, done, failed, retrying,
    cancelled, tagged, token, priority, queue_paused, queue_resumed (`event`), with its `data`."""

    job_id: str
    event: str
    data: dict[str, Any] = field(default_factory=dict)
    parent_id: str = ""  # the msg_id of the request that caused it (see `DdtuiApp.new_request_id`)

    @property
    def final(self) -> bool:
        return self.event in ("done", "failed", "cancelled")


@dataclass
class JobProgress(_Copyable, Message, bubble=False):
    """Where a running job is: step of steps, the phase, the image of the batch, the job's fraction."""

    job_id: str
    step: int = 0
    steps: int = 0
    phase: str = ""
    image: int = 0
    batch: int = 1
    fraction: float = 0.0
    elapsed: float = 0.0
    parent_id: str = ""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgress) and message.job_id == self.job_id

    @classmethod
    def from_event(cls, job_id: str, data: dict[str, Any], parent_id: str = "") -> "JobProgress":
        def num(key: str, default: float, kind: type = float) -> Any:
            try:
                return kind(data.get(key, default))
            except (TypeError, ValueError):
                return kind(default)

        return cls(job_id, num("step", 0, int), num("steps", 0, int), str(data.get("phase", "")),
                   num("image", 0, int), max(1, num("batch", 1, int)), num("fraction", 0.0), num("elapsed", 0.0),
                   parent_id)


@dataclass
class JobPreview(_Copyable, Message, bubble=False):
    """A live preview of a running job: PNG bytes, small (sd.preview_size)."""

    job_id: str
    png: bytes
    step: int = 0
    width: int = 0
    height: int = 0
    parent_id: str = ""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobPreview) and message.job_id == self.job_id


@dataclass
class ServiceState(_Copyable, Message, bubble=False):
    """The app's link to the core service changed: `connected`, and the reason when it is not."""

    connected: bool
    reason: str = ""


@dataclass
class CoreStatus(_Copyable, Message, bubble=False):
    """A fresh `core_status` answer: workers (with pids, states, restarts, loaded models) and the queue."""

    status: dict[str, Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CoreStatus)


@dataclass
class ErrorLogged(_Copyable, Message, bubble=False):
    """Something went wrong and was added to the error log (the `e` screen)."""

    title: str
    detail: str


@dataclass
class SettingsChanged(_Copyable, Message, bubble=False):
    """config.json was saved from the settings screen; `changed` lists the dotted keys that differ."""

    changed: list[str] = field(default_factory=list)


@dataclass
class DataChanged(_Copyable, Message, bubble=False):
    """Stored data changed (by this client, the CLI or another TUI): `topic` is history, styles, presets,
    settings or queue; `ids` the rows concerned ([] for "reload it all"); `action` what happened (rate,
    favorite, tags, delete, new, import, save, use, queued, started, done, ...)."""

    topic: str
    ids: list[int] = field(default_factory=list)
    action: str = ""
    parent_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)


# The service's change events and the topic each becomes (snippets live on the Styles screen).
CHANGE_TOPICS = {"history_changed": "history", "styles_changed": "styles", "snippets_changed": "styles",
                 "presets_changed": "presets", "settings_changed": "settings", "queue_changed": "queue"}

FORWARDED: tuple[type[Message], ...] = (JobEvent, JobProgress, JobPreview, ServiceState, CoreStatus,
                                        SettingsChanged, DataChanged)
