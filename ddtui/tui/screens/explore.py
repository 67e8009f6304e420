"""The Explore screen: a 3x3 grid of variations around an anchor image, which sits in the centre.

Each of the exploration's parameters (prompt, seed, steps, cfg, sampler, scheduler) is locked or free; by
default only the seed is free. The core plans the eight neighbours (`submit` kind "explore") and announces
them with an "exploration" event; each cell then fills in as its job reports progress and its image, showing
the parameters that differ from the anchor. The cell under the cursor can be promoted to anchor (the running
grid is cancelled first and a new one made around it), kept (marked favorite; it is already in the history),
shown in the History screen, or opened in the Generate screen with its parameters. The grid can be stopped
(`cancel_group`), and an "exploration_failed" event is shown in the status line and as an error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pony.orm import db_session
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.events import Click
from textual.reactive import reactive
from textual.widgets import Checkbox, Footer, Static

from ...core.client import RequestFailed, ServiceUnavailable
from ...core.explore import GRID_POSITIONS, LOCKABLE
from ...core.params import rerun_request
from ...core.thumbnails import ensure_thumbnail, thumbnail_path
from ..keys import bindings_for
from ..messages import JobEvent, JobProgress
from ..viewing import exploration_viewing
from ..widgets.image import ImageView
from .base import MainScreen, title_bars

CENTRE = (1, 1)
DEFAULT_FREE = ("seed",)
LOCK_KEYS = {"prompt": "p", "seed": "s", "steps": "t", "cfg": "c", "sampler": "a", "scheduler": "d"}
EARLY_KEEP = 500


@dataclass
class CellState:
    """What one grid cell shows: its job, its parameters, and the image once it is made."""

    position: tuple[int, int]
    job_id: str = ""
    state: str = "waiting"  # waiting, queued, running, done, failed, cancelled
    params: dict[str, Any] = field(default_factory=dict)
    generation_id: int | None = None
    uuid: str = ""
    fraction: float = 0.0
    favorite: bool = False
    note: str = ""


@dataclass
class Anchor:
    """The image in the centre: its history id, the request that remakes it, and its thumbnail."""

    generation_id: int
    request: dict[str, Any]
    thumbnail: Path | None
    favorite: bool = False


def read_anchor(db: Any, output_dir: Path, thumbnails: Path, generation_id: int) -> Anchor:
    """The anchor's request and thumbnail (blocking: call from a thread)."""
    with db_session:
        gen = db.Generation.get(id=generation_id)
        if gen is None:
            raise LookupError(f"no history item #{generation_id}")
        if gen.kind in ("import", "upscale"):
            raise ValueError(f"#{generation_id} is an {gen.kind}; explore from a generated image (its parent)")
        request = rerun_request(dict(gen.params))
        for key in ("prompt", "negative_prompt", "model", "width", "height", "seed"):
            request.setdefault(key, getattr(gen, key))
        stored, uuid, favorite = Path(gen.path), gen.uuid, gen.favorite
    thumb = thumbnail_path(thumbnails, uuid)
    if not thumb.exists():
        source = stored if stored.is_absolute() else output_dir / stored
        try:
            thumb = ensure_thumbnail(source, thumbnails, uuid)
        except OSError:
            thumb = None
    return Anchor(generation_id, request, thumb, favorite)


def differences(params: dict[str, Any], anchor: dict[str, Any]) -> str:
    """The parameters of a cell that differ from the anchor's, in a few words."""
    parts = []
    for key in LOCKABLE:
        value = params.get(key)
        if value is None or value == anchor.get(key):
            continue
        if key == "prompt":
            text = " ".join(str(value).split())
            parts.append(f"“{text[:40]}…”" if len(text) > 40 else f"“{text}”")
        else:
            parts.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
    return " · ".join(parts) or "same as the anchor"


class ExploreCell(Vertical):
    """One cell of the 3x3 grid: a thumbnail and two lines about it."""

    selected: reactive[bool] = reactive(False)

    def __init__(self, position: tuple[int, int]) -> None:
        super().__init__(classes="explore-cell" + (" -anchor" if position == CENTRE else ""),
                         id=f"cell-{position[0]}-{position[1]}")
        self.position = position

    def compose(self) -> ComposeResult:
        yield ImageView("", classes="cell-image")
        yield Static("", classes="cell-title", markup=False)
        yield Static("", classes="cell-params", markup=False)

    def watch_selected(self, selected: bool) -> None:
        self.set_class(selected, "-cursor")

    def show_text(self, title: str, params: str) -> None:
        self.query_one(".cell-title", Static).update(title)
        self.query_one(".cell-params", Static).update(params)

    def show_thumbnail(self, path: Path | None, placeholder: str = "") -> None:
        view = self.query_one(ImageView)
        if path is not None and path.exists():
            view.show_file(path)
        else:
            view.clear(placeholder)

    def on_click(self, event: Click) -> None:
        if isinstance(self.screen, ExploreScreen):
            self.screen.move_to(self.position)


class ExploreScreen(MainScreen[None]):
    """Variations around an anchor, nine at a glance; promote, keep or reuse any of them."""

    CSS_PATH = Path(__file__).parent / "explore.tcss"
    TITLE = "Explore"
    BINDINGS = bindings_for("explore")

    def __init__(self) -> None:
        super().__init__(name="explore")
        self.locked: set[str] = {p for p in LOCKABLE if p not in DEFAULT_FREE}
        self.anchor: Anchor | None = None
        self.group = ""
        self.groups: list[str] = []  # every group this screen started, oldest first
        self.cells: dict[tuple[int, int], CellState] = {}
        self.cursor: tuple[int, int] = CENTRE
        self._pending: int | None = None
        self._starting = False
        self._early: list[JobEvent | JobProgress] = []

    def compose(self) -> ComposeResult:
        yield from title_bars()
        yield Static("No anchor yet: in History press x on an image, or alt+x in Generate for its last result.",
                     id="explore-anchor", markup=False)
        with Horizontal(id="explore-locks"):
            yield Static("Locked:", id="locks-label")
            for name in LOCKABLE:
                box = Checkbox(f"{name} ({LOCK_KEYS[name]})", name in self.locked, id=f"lock-{name}", compact=True)
                box.can_focus = False  # every key stays with the grid; a click still toggles
                yield box
        with Grid(id="explore-grid"):
            for row in range(3):
                for col in range(3):
                    yield ExploreCell((row, col))
        yield Static("", id="explore-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._draw_cursor()
        if self._pending is not None:
            generation_id, self._pending = self._pending, None
            self._begin(generation_id)

    # ------------------------------------------------------------------ starting a grid

    def explore_from(self, generation_id: int) -> None:
        """Make a new grid around history item `generation_id` with the current locks."""
        if not self.is_mounted:
            self._pending = generation_id
            return
        self._begin(generation_id)

    def _begin(self, generation_id: int) -> None:
        if not self.free_parameters():
            self._status("Everything is locked: unlock at least one parameter (p s t c a d).")
            return
        self._starting = True
        self._start(generation_id, sorted(self.locked))

    def free_parameters(self) -> list[str]:
        return [p for p in LOCKABLE if p not in self.locked]

    @work(group="explore-start", exclusive=True, exit_on_error=False)
    async def _start(self, generation_id: int, locked: list[str]) -> None:
        app = self.app
        try:
            await self._stop_running("a new grid replaces it")
            try:
                anchor = await asyncio.to_thread(read_anchor, app.db, Path(app.cfg.output_dir),
                                                 app.home.thumbnails, generation_id)
            except (LookupError, ValueError) as exc:
                self._status(f"Cannot explore #{generation_id}: {exc}")
                app.notify_error(f"Cannot explore #{generation_id}", str(exc))
                return
            self._show_anchor(anchor)
            try:
                reply = await app.request("submit", {"kind": "explore", "params": {
                    "generation_id": generation_id, "locked": locked}})
            except (RequestFailed, ServiceUnavailable) as exc:
                self._status(f"Cannot explore #{generation_id}: {exc}")
                app.notify_error(f"Cannot explore #{generation_id}", str(exc))
                return
        finally:
            self._starting = False
        self.group = str(reply.get("group", ""))
        self.groups.append(self.group)
        free = ", ".join(p for p in LOCKABLE if p not in locked)
        self._status(f"Planning eight variations around #{generation_id} (free: {free})…")
        early, self._early = self._early, []
        for message in early:
            self._dispatch(message)

    def _show_anchor(self, anchor: Anchor) -> None:
        self.anchor = anchor
        self.cells = {pos: CellState(pos) for pos in GRID_POSITIONS}
        r = anchor.request
        self.query_one("#explore-anchor", Static).update(
            f"Anchor #{anchor.generation_id} · seed {r.get('seed')} · steps {r.get('steps')} · cfg {r.get('cfg')} · "
            f"{r.get('sampler')}/{r.get('scheduler')} · {r.get('width')}x{r.get('height')}\n"
            f"{' '.join(str(r.get('prompt', '')).split())[:300]}")
        centre = self.query_one("#cell-1-1", ExploreCell)
        centre.show_thumbnail(anchor.thumbnail, "no thumbnail")
        centre.show_text(f"anchor #{anchor.generation_id}" + (" ♥" if anchor.favorite else ""),
                         f"seed {r.get('seed')}")
        for pos in GRID_POSITIONS:
            self._draw_cell(pos)
        self.move_to(CENTRE)

    async def _stop_running(self, why: str) -> None:
        """Cancel the current grid's unfinished cells (before a new grid is made)."""
        if not self.group or not any(c.state in ("waiting", "queued", "running") for c in self.cells.values()):
            return
        group = self.group
        try:
            await self.app.request("cancel_group", {"group": group})
        except (RequestFailed, ServiceUnavailable) as exc:
            self.app.notify_error("Cannot stop the grid", str(exc))
            return
        for cell in self.cells.values():
            if cell.state in ("waiting", "queued", "running"):
                cell.state = "cancelled"
        self._status(f"Stopped the grid ({why}).")

    # ------------------------------------------------------------------ core events

    def on_job_event(self, message: JobEvent) -> None:
        self._dispatch(message)

    def on_job_progress(self, message: JobProgress) -> None:
        self._dispatch(message)

    def _cell_of_job(self, job_id: str) -> CellState | None:
        return next((c for c in self.cells.values() if c.job_id and c.job_id == job_id), None)

    def _dispatch(self, message: JobEvent | JobProgress) -> None:
        if isinstance(message, JobEvent) and message.event in ("exploration", "exploration_failed"):
            group = str(message.data.get("group", ""))
            if self._starting and group not in self.groups:
                self._early.append(message)  # the reply naming this group may still be on its way
            elif group == self.group:
                if message.event == "exploration":
                    self._grid_planned(message.data)
                else:
                    self._grid_failed(str(message.data.get("message", "")))
            return
        cell = self._cell_of_job(message.job_id)
        if cell is None:
            if self._starting or (self.group and any(c.state == "waiting" for c in self.cells.values())):
                self._early.append(message)  # a cell's events can come before the grid's announcement
                del self._early[:-EARLY_KEEP]
            return
        if isinstance(message, JobProgress):
            cell.state, cell.fraction = "running", message.fraction
        elif message.event == "started":
            cell.state = "running"
        elif message.event == "image":
            cell.generation_id = int(message.data.get("generation_id", 0) or 0) or None
            cell.uuid = str(message.data.get("uuid", ""))
        elif message.event == "retrying":
            cell.note = f"retrying: {message.data.get('reason', '')}"
        elif message.final:
            cell.state = message.event
            if message.event == "failed":
                cell.note = f"{message.data.get('reason', '')}: {message.data.get('message', '')}"
        self._draw_cell(cell.position)
        if isinstance(message, JobEvent) and message.final:
            self._count()

    def _grid_planned(self, data: dict[str, Any]) -> None:
        if self.anchor is not None and isinstance(data.get("anchor"), dict):
            self.anchor.request = {**self.anchor.request, **data["anchor"]}
        for raw in data.get("cells", []):
            pos = tuple(raw.get("position", ()))
            if pos not in self.cells:
                continue
            cell = self.cells[pos]  # type: ignore[index]
            cell.job_id = str(raw.get("job_id", ""))
            cell.params = {k: raw.get(k) for k in LOCKABLE}
            if cell.state == "waiting":
                cell.state = "queued"
            self._draw_cell(cell.position)
        self._status(f"Eight variations queued (group {self.group}). enter promotes, f keeps, g opens in "
                     f"Generate, x stops the grid.")
        early, self._early = self._early, []
        for message in early:
            if self._cell_of_job(message.job_id) is not None:
                self._dispatch(message)

    def _grid_failed(self, text: str) -> None:
        for cell in self.cells.values():
            if cell.state == "waiting":
                cell.state = "failed"
                cell.note = "not made"
                self._draw_cell(cell.position)
        self._status(f"The exploration failed: {text}")
        self.app.notify_error("Exploration failed", text)

    def _count(self) -> None:
        states = [c.state for c in self.cells.values()]
        if all(s in ("done", "failed", "cancelled") for s in states):
            done = states.count("done")
            self._status(f"Grid finished: {done} of 8 made. enter on a cell promotes it to anchor; "
                         f"r makes a new grid with the current locks.")

    # ------------------------------------------------------------------ drawing

    def _draw_cell(self, position: tuple[int, int]) -> None:
        cell = self.cells.get(position)
        widget = self.query_one(f"#cell-{position[0]}-{position[1]}", ExploreCell)
        if cell is None:
            return
        anchor = self.anchor.request if self.anchor else {}
        state = {"waiting": "planning…", "queued": "queued", "running": f"running {cell.fraction:.0%}",
                 "failed": "failed", "cancelled": "cancelled"}.get(cell.state, "")
        if cell.generation_id:
            # A cell stopped after its image was made still holds that image: it is kept as made.
            running = f" · {state}" if cell.state in ("queued", "running") else ""
            title = f"#{cell.generation_id}" + (" ♥" if cell.favorite else "") + running
        else:
            title = state + (f" · {cell.note}" if cell.note else "")
        widget.show_text(title, differences(cell.params, anchor) if cell.params else "")
        if cell.uuid and cell.generation_id and not widget.query_one(ImageView).has_image:
            widget.show_thumbnail(thumbnail_path(self.app.home.thumbnails, cell.uuid))
        elif not cell.uuid:
            widget.show_thumbnail(None, {"cancelled": "✗", "failed": "!"}.get(cell.state, "…"))

    def move_to(self, position: tuple[int, int]) -> None:
        self.cursor = position
        self._draw_cursor()

    def _draw_cursor(self) -> None:
        for widget in self.query(ExploreCell):
            widget.selected = widget.position == self.cursor

    def _status(self, text: str) -> None:
        self.query_one("#explore-status", Static).update(text)

    # ------------------------------------------------------------------ keys

    def action_move(self, dx: int, dy: int) -> None:
        row, col = self.cursor
        self.move_to((min(2, max(0, row + dy)), min(2, max(0, col + dx))))

    def action_toggle_lock(self, name: str) -> None:
        if name not in LOCKABLE:
            return
        if name in self.locked:
            self.locked.discard(name)
        elif len(self.free_parameters()) == 1:
            self.notify("At least one parameter must stay free.", severity="warning")
            return
        else:
            self.locked.add(name)
        box = self.query_one(f"#lock-{name}", Checkbox)
        box.value = name in self.locked
        free = ", ".join(self.free_parameters())
        self._status(f"Free: {free}. {self.app.key_label('explore.again')} makes a new grid with these locks.")

    @on(Checkbox.Changed)
    def _lock_clicked(self, event: Checkbox.Changed) -> None:
        name = (event.checkbox.id or "").removeprefix("lock-")
        if name in LOCKABLE and (name in self.locked) != event.value:
            self.action_toggle_lock(name)
            event.checkbox.value = name in self.locked

    def _current(self, need_image: bool = True) -> tuple[int, dict[str, Any]] | None:
        """The history id and parameters of the cell under the cursor, or None with a note."""
        if self.anchor is None:
            self.notify("No grid yet: in History press x on an image.", severity="warning")
            return None
        if self.cursor == CENTRE:
            return self.anchor.generation_id, dict(self.anchor.request)
        cell = self.cells.get(self.cursor)
        if cell is None or (need_image and not cell.generation_id):
            self.notify("This cell has no image yet.", severity="warning")
            return None
        return cell.generation_id or 0, {**self.anchor.request, **{k: v for k, v in cell.params.items()
                                                                    if v is not None}}

    def action_promote(self) -> None:
        if self.cursor == CENTRE:
            self.notify("This is the anchor already; r makes a new grid around it.", timeout=3)
            return
        current = self._current()
        if current is not None:
            self._status(f"Promoting #{current[0]} to anchor…")
            self._begin(current[0])

    def action_again(self) -> None:
        if self.anchor is None:
            self.notify("No anchor yet: in History press x on an image.", severity="warning")
            return
        self._begin(self.anchor.generation_id)

    def action_keep(self) -> None:
        current = self._current()
        if current is not None:
            self._mark_favorite(current[0], self.cursor)

    @work(group="explore-keep", thread=True, exit_on_error=False)
    def _mark_favorite(self, generation_id: int, position: tuple[int, int]) -> None:
        with db_session:
            gen = self.app.db.Generation.get(id=generation_id)
            if gen is None:
                raise LookupError(f"image #{generation_id} is no longer in the history")
            gen.favorite = True
        self.app.call_from_thread(self._kept, generation_id, position)

    def _kept(self, generation_id: int, position: tuple[int, int]) -> None:
        if position == CENTRE and self.anchor is not None:
            self.anchor.favorite = True
            self.query_one("#cell-1-1", ExploreCell).show_text(f"anchor #{generation_id} ♥",
                                                               f"seed {self.anchor.request.get('seed')}")
        elif position in self.cells:
            self.cells[position].favorite = True
            self._draw_cell(position)
        self.notify(f"Kept #{generation_id}: marked favorite in the history.", title="Explore")

    def action_open_history(self) -> None:
        current = self._current()
        if current is not None:
            self.app.show_in_history(current[0])

    def action_open_generate(self) -> None:
        current = self._current()
        if current is not None:
            self.app.open_in_generate(current[1])

    def action_cancel_grid(self) -> None:
        if not self.group or not any(c.state in ("waiting", "queued", "running") for c in self.cells.values()):
            self.notify("No grid is running.", timeout=2)
            return
        self._cancel_grid()

    @work(group="explore-cancel", exit_on_error=False)
    async def _cancel_grid(self) -> None:
        await self._stop_running(f"{self.app.key_label('explore.cancel')} pressed")
        for position in self.cells:
            self._draw_cell(position)

    def action_view_cell(self, compare: bool = False) -> None:
        if (viewing := exploration_viewing(self)) is not None:
            self.app.open_viewer(*viewing, compare=compare)

    def action_compare_cell(self) -> None:
        self.action_view_cell(compare=True)

    def action_back(self) -> None:
        self.app.show_main("history")
