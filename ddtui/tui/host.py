"""What a screen may use of the app: the typed host API that `DdtuiApp` implements.

Screens and widgets reach the app through `getters.app(Host)` (see `screens/base.py`), so every call is
type-checked and no screen imports the app module. A smaller host (a test's, a benchmark's) subclasses
`Host` and implements what its screen uses; the rest say plainly that this host lacks them.

- `home` (`ddtui.config.Home`), `cfg` (`ddtui.config.Config`; replaced when settings are saved).
- `store`: the `ddtui.db.store.Store` every read goes through (blocking: call it from thread workers,
  `@work(group=..., thread=True, exit_on_error=False)`); it returns plain records. Writes are service requests.
- `db`: the Pony `Database` behind the store (being retired: screens use `store`).
- `client`: a connected `CoreClient`, or None while the service is unreachable (`service_reason` says why);
  `link`: the state of that connection and the last `core_status`.
- `await submit(kind, params, priority=0, group="", request_id="") -> dict`: queue a job (generate, upscale,
  tag, chat) and return it as a dict (`id`, `state`, `payload`, ...); `await request(msg_type, content,
  request_id="")`: any other service request, every write included (history.rate, style.save, config.save, ...).
  Both raise `ServiceUnavailable` when no service answers and `RequestFailed` when it refuses (its message says
  why). `new_request_id()` gives an id to send a request under: every event it causes carries it as `parent_id`.
- `catalog(refresh=False)`: the model catalog, scanned once and cached (call it from a thread the first time).
- `image_protocol`: "kitty", "sixel", "halfcell" or "none"; `image_note` says how it was chosen.
- `notify_error(title, detail)`: a notification where the user is looking; the detail goes to the error log.
- `worker_failed(worker)`: the one place a failed `@work` is reported (`MainScreen` calls it).
- `open_in_generate(params)`: fill the generate form from a history item's params (or a preset's) and show it;
  `{"insert": text}` inserts the text at the prompt's cursor instead.
- `send_to(kind, generation_id)`: "img2img", "inpaint", "explore" or "upscale".
- `current_prompt`: the generate screen's prompt as typed ("" before that screen exists).
- `show_in_history(generation_id)`, `show_main(mode)`: switch screens.
- `open_viewer(source, index, compare=False)`: the full-screen viewer over a `viewing.ViewerSource` (History's
  filter, Generate's results, an exploration), at `index`; `compare` shows the image beside its partner.
- `key_label(binding_id)`: the key that does an action now (remaps applied), as a person reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker

if TYPE_CHECKING:
    from pony.orm import Database

    from ..catalog.models import Catalog
    from ..db.store import Store
    from ..config import Config, Home
    from ..core.client import CoreClient


@dataclass
class ErrorEntry:
    """One line of the error log (`e`)."""

    when: datetime
    title: str
    detail: str


@dataclass
class ServiceLink:
    """The app's connection to the core service, and what the service last said about itself."""

    connected: bool = False
    reason: str = "not connected yet"
    status: dict[str, Any] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    crashes: dict[str, int] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)


class HostMissing(NotImplementedError):
    """A smaller host (a test's, a benchmark's) was asked for something it does not provide."""


class Host(App[None]):
    """The app API of ddtui's screens; `DdtuiApp` implements all of it."""

    home: Home
    cfg: Config
    db: Database
    store: Store
    client: CoreClient | None = None
    image_protocol: str = "halfcell"
    image_note: str = ""
    system_probe: Any = None  # the VRAM screen's probe of /proc and NVML, made when first needed

    def __init__(self) -> None:
        super().__init__()
        self.link = ServiceLink()
        self.error_log: list[ErrorEntry] = []
        self.main_screens: dict[str, Screen[Any]] = {}

    def _missing(self, what: str) -> HostMissing:
        return HostMissing(f"{type(self).__name__} does not provide {what}")

    @property
    def service_reason(self) -> str:
        return "" if self.link.connected else self.link.reason

    @staticmethod
    def new_request_id() -> str:
        from ..core.client import CoreClient

        return CoreClient.new_request_id()

    async def submit(self, kind: str, params: dict[str, Any], priority: int = 0, group: str = "",
                     request_id: str = "") -> dict[str, Any]:
        raise self._missing("submit")

    async def request(self, msg_type: str, content: dict[str, Any] | None = None, request_id: str = "",
                      timeout: float = 15.0) -> dict[str, Any]:
        raise self._missing("request")

    def catalog(self, refresh: bool = False) -> Catalog:
        raise self._missing("catalog")

    def notify_error(self, title: str, detail: str = "", severity: SeverityLevel = "error") -> None:
        self.notify(detail or title, title=title, severity=severity, markup=False)

    def worker_failed(self, worker: Worker[Any]) -> None:
        error = worker.error
        self.notify_error(f"{(worker.group or worker.name or 'task').replace('-', ' ')} failed",
                          f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error))

    def open_in_generate(self, params: dict[str, Any]) -> None:
        raise self._missing("open_in_generate")

    def send_to(self, kind: str, generation_id: int) -> None:
        raise self._missing("send_to")

    @property
    def current_prompt(self) -> str:
        return ""

    def show_in_history(self, generation_id: int) -> None:
        raise self._missing("show_in_history")

    def show_main(self, mode: str) -> None:
        raise self._missing("show_main")

    def open_viewer(self, source: Any, index: int = 0, compare: bool = False) -> None:
        raise self._missing("open_viewer")

    def key_label(self, binding_id: str) -> str:
        from .keys import BY_ID, display_key

        spec = BY_ID.get(binding_id)
        return display_key(self._keymap.get(binding_id, spec.key if spec else binding_id))

    def start_service(self) -> Any:
        raise self._missing("start_service")
