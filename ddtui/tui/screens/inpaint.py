"""The inpainting editor: one history image shown large, a mask painted over it, and the inpaint job.

The mask is painted with the mouse (left drag paints, right drag or ctrl+drag erases) or the keyboard (arrows
move the brush, space paints, x erases, + and - size the brush), or as a rectangle or ellipse selection (r or
o at the cursor, move, then space/enter fills or x erases). Invert, clear, undo and redo work on the whole
mask; the feather radius blurs its edge when it is sent; a mask file can be loaded instead. The mask itself
and the cell-to-pixel mapping live in `ddtui.tui.mask_model`; this screen draws them (the mask tinted over the
image, the brush and selection highlighted) and submits: the mask PNG is written to
`<home>/cache/masks/<uuid>.png`, and a generate job with the source as init image, that mask, the source as
parent and kind "inpaint" is queued, so the result is recorded as the source's child.
"""

from __future__ import annotations

import asyncio
import os
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pony.orm import db_session
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, Static

from ...catalog.models import SAMPLERS, SCHEDULERS, CatalogError
from ...core.client import RequestFailed, ServiceUnavailable
from ..keys import bindings_for
from ..mask_model import (
    ERASE,
    MAX_BRUSH,
    MAX_FEATHER,
    PAINT,
    Cell,
    CellGrid,
    MaskFileError,
    MaskModel,
    brush_cells,
    ellipse_cells,
    overlay,
    read_mask_file,
    rect_cells,
)
from ..messages import JobEvent, JobProgress
from ..widgets.image import ImageView
from ..widgets.progress import JobProgressBar
from .base import MainScreen, title_bars

DISPLAY_MAX = 1024  # the picture drawn for kitty/sixel is at most this wide or high
# Actions that edit the mask or move the brush: off while a text field has the focus, so typing works.
CANVAS_ACTIONS = {"paint", "erase", "brush", "select", "confirm", "invert", "clear_mask", "undo", "redo",
                  "feather", "move", "load_mask"}
SOURCE_KEYS = ("model", "cfg", "guidance", "sampler", "scheduler", "clip_skip", "vae_tiling")


class InpaintError(ValueError):
    """Something in the inpaint form that stops the submit; the message names the field."""


@dataclass
class InpaintSource:
    """The history image being inpainted (plain data, read in a thread)."""

    id: int
    path: Path
    width: int
    height: int
    kind: str
    prompt: str
    negative: str
    params: dict[str, Any]


def read_source(db: Any, output_dir: Path, generation_id: int) -> tuple[InpaintSource, Image.Image]:
    """The history item and its picture (blocking: call from a thread)."""
    with db_session:
        gen = db.Generation.get(id=generation_id)
        if gen is None:
            raise LookupError(f"no history item #{generation_id}")
        stored = Path(gen.path)
        source = InpaintSource(gen.id, stored if stored.is_absolute() else output_dir / stored, gen.width,
                               gen.height, gen.kind, gen.prompt or "", gen.negative_prompt or "", dict(gen.params))
    if not source.path.is_file():
        raise FileNotFoundError(f"the image of #{generation_id} is gone: {source.path}")
    with Image.open(source.path) as im:
        picture = im.convert("RGB")
    source.width, source.height = picture.size  # the file decides: the mask must match it exactly
    if max(picture.size) > DISPLAY_MAX:
        picture.thumbnail((DISPLAY_MAX, DISPLAY_MAX))
    return source, picture


def write_mask(mask: Image.Image, folder: Path) -> Path:
    """Save the mask as `<folder>/<uuid>.png`, whole or not at all (temporary name, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuidlib.uuid4().hex}.png"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            mask.save(fh, "PNG")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cell_aspect(protocol: str) -> float:
    """A terminal cell's height over its width: exactly 2 for half cells (two pixels a cell)."""
    if protocol == "halfcell":
        return 2.0
    from ..widgets.image import cell_size

    width, height = cell_size()  # as the terminal said at launch; a VT340's 10x20 when it could not be asked
    return height / width if width and height else 2.0


class MaskCanvas(Widget, can_focus=True):
    """The source image with the mask over it; the brush cursor and the selection are drawn on it too."""

    class Changed(Message):
        """The mask, the brush or the selection changed (the screen updates its status line)."""

    def __init__(self, protocol: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.protocol = protocol
        self.aspect = cell_aspect(protocol)
        self.model: MaskModel | None = None
        self.picture: Image.Image | None = None
        self.cursor: Cell = (0, 0)
        self.brush = 2
        self.selection: tuple[str, Cell] | None = None  # ("rect" or "ellipse", the corner it started at)
        self._drag: tuple[int, Cell] | None = None  # (value painted, last cell) while a mouse button is down

    def compose(self) -> ComposeResult:
        yield ImageView("Choose an image in History and press m", protocol=self.protocol, id="mask-view")

    @property
    def view(self) -> ImageView:
        return self.query_one("#mask-view", ImageView)

    def set_picture(self, picture: Image.Image, width: int, height: int) -> None:
        """A new source: an empty mask of `width` x `height` pixels over `picture`."""
        self.picture = picture
        self.model = MaskModel(width, height, cell_aspect=self.aspect)
        self.selection = None
        self._fit()
        self.cursor = (self.model.grid.cols // 2, self.model.grid.rows // 2)
        self.redraw()

    def on_resize(self) -> None:
        if self.model is not None:
            self._fit()
            self.redraw()

    def _fit(self) -> None:
        assert self.model is not None
        width, height = self.model.size
        grid = CellGrid.fit(width, height, self.content_size.width or 1, self.content_size.height or 1, self.aspect)
        self.model.set_grid(grid)
        self.view.fix_size(grid.cols, grid.rows)
        self.cursor = grid.clamp(self.cursor)

    # ------------------------------------------------------------------ drawing

    def highlight(self) -> tuple[list[Cell], list[Cell]]:
        """The cells drawn as the brush, and those of the selection being made."""
        if self.selection is not None:
            kind, start = self.selection
            shape = rect_cells if kind == "rect" else ellipse_cells
            return [self.cursor], shape(start, self.cursor)
        if self.model is None:
            return [], []
        return brush_cells(self.cursor, self.brush, self.aspect), []

    def redraw(self) -> None:
        if self.model is None or self.picture is None:
            return
        grid = self.model.grid
        if self.protocol == "halfcell":
            size = (grid.cols, grid.rows * 2)  # one pixel per half cell: each cell's tint is exact
        else:
            size = self.picture.size
        brush, selection = self.highlight()
        self.view.show_pil(overlay(self.picture, self.model, size, brush, selection))
        self.post_message(self.Changed())

    # ------------------------------------------------------------------ the mouse

    def _cell_at(self, x: int, y: int, clamp: bool = False) -> Cell | None:
        if self.model is None:
            return None
        region = self.view.region
        cell = (x - region.x, y - region.y)
        if self.model.grid.contains(cell):
            return cell
        return self.model.grid.clamp(cell) if clamp else None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        cell = self._cell_at(event.screen_x, event.screen_y)
        if cell is None or self.model is None:
            return
        event.stop()
        self.focus()
        value = ERASE if event.button == 3 or event.ctrl else PAINT
        self.selection = None
        self.model.checkpoint()  # the whole drag is one undo step
        self.model.dab(cell, self.brush, value, step=False)
        self._drag = (value, cell)
        self.cursor = cell
        self.capture_mouse()
        self.redraw()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        cell = self._cell_at(event.screen_x, event.screen_y, clamp=self._drag is not None)
        if cell is None or self.model is None:
            return
        if self._drag is not None:
            value, last = self._drag
            if cell != last:
                self.model.stroke_to(last, cell, self.brush, value)
                self._drag = (value, cell)
        if cell != self.cursor:
            self.cursor = cell
            self.redraw()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._drag is not None:
            self._drag = None
            self.release_mouse()
            self.redraw()


class InpaintScreen(MainScreen[None]):
    """Paint a mask over a history image and inpaint it; the result becomes the image's child."""

    CSS_PATH = Path(__file__).parent / "inpaint.tcss"
    TITLE = "Inpaint"
    BINDINGS = bindings_for("inpaint")

    def __init__(self) -> None:
        super().__init__(name="inpaint")
        self.source: InpaintSource | None = None
        self.feather = 0
        self.last_mask_path: Path | None = None
        self.job_id = ""
        self.result_ids: list[int] = []
        self._pending: int | None = None
        self._jobs: set[str] = set()
        self._submitting = 0
        self._early: list[JobEvent | JobProgress] = []

    def compose(self) -> ComposeResult:
        yield from title_bars()
        protocol = self.app.image_protocol
        with Horizontal(id="inpaint-main"):
            yield MaskCanvas("halfcell" if protocol == "none" else protocol, id="canvas")
            with VerticalScroll(id="inpaint-side"):
                yield Static("No image yet: in History, press m on one.", id="inpaint-source", markup=False)
                yield Label("Prompt", classes="field-label")
                yield Input(id="inpaint-prompt", placeholder="what to paint in the masked area")
                yield Label("Negative prompt", classes="field-label")
                yield Input(id="inpaint-negative", placeholder="optional")
                with Horizontal(classes="row"):
                    yield Label("Strength", classes="inline-label")
                    yield Input("0.75", id="inpaint-strength", type="number", compact=True)
                    yield Label("Steps", classes="inline-label")
                    yield Input(id="inpaint-steps", type="integer", placeholder="model default", compact=True)
                with Horizontal(classes="row"):
                    yield Label("Feather px", classes="inline-label")
                    yield Input("0", id="inpaint-feather", type="integer", compact=True)
                yield Label("Mask file  [dim](l; white = repaint; enter loads)[/]", classes="field-label")
                yield Input(id="mask-path", placeholder="/path/to/mask.png")
                yield Static("", id="form-error", markup=False)
                yield Static("", id="mask-status", markup=False)
                yield Static("", id="inpaint-keys", markup=False)
                yield JobProgressBar(id="inpaint-progress")
                yield Static("", id="inpaint-job", markup=False)
        yield Footer()

    @property
    def canvas(self) -> MaskCanvas:
        return self.query_one("#canvas", MaskCanvas)

    def on_mount(self) -> None:
        key = self.app.key_label
        self.query_one("#inpaint-keys", Static).update(
            f"arrows move the brush · {key('inpaint.paint')} paint · {key('inpaint.erase')} erase · "
            f"{key('inpaint.bigger')}/{key('inpaint.smaller')} brush size · {key('inpaint.rect')} rectangle, "
            f"{key('inpaint.ellipse')} ellipse, then {key('inpaint.confirm')} fills · {key('inpaint.invert')} "
            f"invert · {key('inpaint.clear')} clear · {key('inpaint.undo')}, {key('inpaint.redo')} undo, redo · "
            f"{key('inpaint.feather_less')}/{key('inpaint.feather_more')} feather · mouse: drag paints, right "
            f"drag erases · {key('inpaint.submit')} inpaints")
        self.canvas.focus()
        if self._pending is not None:
            self._read_source(self._pending)
            self._pending = None

    # ------------------------------------------------------------------ the source image

    def load_source(self, generation_id: int) -> None:
        """Edit a mask for history item `generation_id` (the previous mask, if any, is dropped)."""
        if not self.is_mounted:
            self._pending = generation_id
            return
        self._pending = None
        self._read_source(generation_id)

    @work(group="inpaint-load", thread=True, exclusive=True, exit_on_error=False)
    def _read_source(self, generation_id: int) -> None:
        source, picture = read_source(self.app.db, Path(self.app.cfg.output_dir), generation_id)
        self.app.call_from_thread(self._source_ready, source, picture)

    def _source_ready(self, source: InpaintSource, picture: Image.Image) -> None:
        dropped = self.canvas.model is not None and not self.canvas.model.is_empty()
        self.source = source
        self.result_ids = []
        self.canvas.set_picture(picture, source.width, source.height)
        self.query_one("#inpaint-source", Static).update(
            f"#{source.id} · {source.kind} · {source.width}x{source.height}\n{' '.join(source.prompt.split())[:200]}")
        self.query_one("#inpaint-prompt", Input).value = source.prompt
        self.query_one("#inpaint-negative", Input).value = source.negative
        steps = source.params.get("steps")
        self.query_one("#inpaint-steps", Input).value = str(steps) if isinstance(steps, int) else ""
        self.query_one("#inpaint-job", Static).update("")
        self._error("")
        self.canvas.focus()
        note = " The mask of the previous image was dropped." if dropped else ""
        self.notify(f"Paint the area to repaint over #{source.id}.{note}", title="Inpaint")

    # ------------------------------------------------------------------ status

    @on(MaskCanvas.Changed)
    def _canvas_changed(self) -> None:
        canvas = self.canvas
        model = canvas.model
        if model is None:
            return
        grid = model.grid
        selection = f" · {canvas.selection[0]} selection: space/enter fills, x erases, esc drops" \
            if canvas.selection else ""
        self.query_one("#mask-status", Static).update(
            f"Mask {model.coverage():.0%} · brush {canvas.brush} · feather {self.feather} px · cell "
            f"{canvas.cursor[0]},{canvas.cursor[1]} of {grid.cols}x{grid.rows} "
            f"({grid.width // grid.cols}x{grid.height // grid.rows} px each) · undo {model.undo_depth}{selection}")

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in CANVAS_ACTIONS and isinstance(self.focused, Input))

    def _model(self) -> MaskModel | None:
        model = self.canvas.model
        if model is None:
            self.notify("No image to mask yet: in History, press m on one.", severity="warning")
        return model

    def action_move(self, dx: int, dy: int) -> None:
        if (model := self._model()) is not None:
            self.canvas.cursor = model.grid.clamp((self.canvas.cursor[0] + dx, self.canvas.cursor[1] + dy))
            self.canvas.redraw()

    def _apply(self, value: int) -> None:
        model = self._model()
        if model is None:
            return
        canvas = self.canvas
        if canvas.selection is not None:
            kind, start = canvas.selection
            (model.fill_rect if kind == "rect" else model.fill_ellipse)(start, canvas.cursor, value)
            canvas.selection = None
        else:
            model.dab(canvas.cursor, canvas.brush, value)
        canvas.redraw()

    def action_paint(self) -> None:
        self._apply(PAINT)

    def action_erase(self) -> None:
        self._apply(ERASE)

    def action_confirm(self) -> None:
        if self.canvas.selection is None:
            self.notify("r or o starts a selection at the brush; move, then enter fills it.", timeout=3)
            return
        self._apply(PAINT)

    def action_brush(self, step: int) -> None:
        if self._model() is not None:
            self.canvas.brush = max(1, min(MAX_BRUSH, self.canvas.brush + step))
            self.canvas.redraw()

    def action_select(self, kind: str) -> None:
        if self._model() is None:
            return
        canvas = self.canvas
        same = canvas.selection is not None and canvas.selection[0] == kind
        canvas.selection = None if same else (kind, canvas.cursor)
        canvas.redraw()

    def action_invert(self) -> None:
        if (model := self._model()) is not None:
            model.invert()
            self.canvas.redraw()

    def action_clear_mask(self) -> None:
        if (model := self._model()) is not None:
            model.clear()
            self.canvas.redraw()

    def action_undo(self) -> None:
        if (model := self._model()) is not None:
            if not model.undo():
                self.notify("Nothing to undo.", timeout=2)
            self.canvas.redraw()

    def action_redo(self) -> None:
        if (model := self._model()) is not None:
            if not model.redo():
                self.notify("Nothing to redo.", timeout=2)
            self.canvas.redraw()

    def action_feather(self, step: int) -> None:
        self.feather = max(0, min(MAX_FEATHER, self.feather + step))
        self.query_one("#inpaint-feather", Input).value = str(self.feather)
        self.canvas.post_message(MaskCanvas.Changed())

    @on(Input.Changed, "#inpaint-feather")
    def _feather_typed(self, event: Input.Changed) -> None:
        try:
            value = int(event.value or 0)
        except ValueError:
            return
        if 0 <= value <= MAX_FEATHER and value != self.feather:
            self.feather = value
            self.canvas.post_message(MaskCanvas.Changed())

    def action_load_mask(self) -> None:
        if self._model() is not None:
            self.query_one("#mask-path", Input).focus()

    @on(Input.Submitted, "#mask-path")
    def _mask_path_given(self, event: Input.Submitted) -> None:
        if self.canvas.model is None:
            self._error("Choose an image first: in History, press m on one.")
            return
        self._load_mask(event.value.strip())

    @work(group="inpaint-mask-file", thread=True, exclusive=True, exit_on_error=False)
    def _load_mask(self, path: str) -> None:
        model = self.canvas.model
        assert model is not None
        try:
            mask, note = read_mask_file(path, model.size)
        except MaskFileError as exc:
            self.app.call_from_thread(self._mask_file_failed, str(exc))
            return
        self.app.call_from_thread(self._mask_file_loaded, model, mask, path, note)

    def _mask_file_failed(self, message: str) -> None:
        self._error(f"Mask file: {message}")
        self.app.notify_error("Cannot load the mask", message)

    def _mask_file_loaded(self, model: MaskModel, mask: Image.Image, path: str, note: str) -> None:
        if model is not self.canvas.model:
            return  # another image was opened meanwhile
        model.replace(mask)
        self._error("")
        self.canvas.redraw()
        self.canvas.focus()
        self.notify(f"Loaded the mask {Path(path).name}" + (f" ({note})" if note else "") + "; u undoes it.",
                    title="Mask", markup=False)

    def action_back(self) -> None:
        canvas = self.canvas
        if canvas.selection is not None:
            canvas.selection = None
            canvas.redraw()
        elif self.focused is not canvas:
            canvas.focus()
        else:
            self.app.show_main("history")

    # ------------------------------------------------------------------ submitting

    def build_request(self) -> dict[str, Any]:
        """The generate request for the inpaint (without the mask path); raises InpaintError."""
        source, model = self.source, self.canvas.model
        if source is None or model is None:
            raise InpaintError("no image to inpaint: in History, press m on one")
        if model.is_empty():
            raise InpaintError("the mask is empty: paint the area to repaint (space, or drag with the mouse)")
        prompt = self.query_one("#inpaint-prompt", Input).value.strip()
        if not prompt:
            raise InpaintError("the prompt is empty: say what to paint in the masked area")
        request: dict[str, Any] = {"prompt": prompt, "seed": -1, "batch": 1, "kind": "inpaint",
                                   "init_image": str(source.path), "parent_id": source.id}
        negative = self.query_one("#inpaint-negative", Input).value.strip()
        if negative:
            request["negative_prompt"] = negative
        text = self.query_one("#inpaint-strength", Input).value.strip() or "0.75"
        try:
            strength = float(text)
        except ValueError:
            raise InpaintError(f"strength must be a number above 0 and at most 1, got {text!r}") from None
        if not 0 < strength <= 1:
            raise InpaintError(f"strength must be above 0 and at most 1, got {strength:g}")
        request["strength"] = strength
        text = self.query_one("#inpaint-steps", Input).value.strip()
        if text:
            try:
                request["steps"] = int(text)
            except ValueError:
                raise InpaintError(f"steps must be a whole number, got {text!r}") from None
        text = self.query_one("#inpaint-feather", Input).value.strip() or "0"
        try:
            feather = int(text)
        except ValueError:
            raise InpaintError(f"feather must be a whole number of pixels, got {text!r}") from None
        if not 0 <= feather <= MAX_FEATHER:
            raise InpaintError(f"feather must be from 0 to {MAX_FEATHER} pixels, got {feather}")
        self.feather = feather
        # The source's size, made a multiple of 8 as the model needs; the worker scales image and mask to it.
        request["width"] = min(4096, max(64, source.width - source.width % 8))
        request["height"] = min(4096, max(64, source.height - source.height % 8))
        params = source.params
        for key in SOURCE_KEYS:
            if params.get(key) is not None:
                request[key] = params[key]
        if request.get("sampler") not in SAMPLERS:
            request.pop("sampler", None)
        if request.get("scheduler") not in SCHEDULERS:
            request.pop("scheduler", None)
        if "model" in request:
            try:
                self.app.catalog().find(request["model"], kind="image")
            except CatalogError:
                del request["model"]  # the source's model is gone: the default model paints instead
        return request

    def action_submit(self) -> None:
        try:
            request = self.build_request()
        except InpaintError as exc:
            self._error(str(exc))
            self.notify(str(exc), title="Cannot inpaint", severity="error", markup=False)
            return
        self._error("")
        assert self.canvas.model is not None
        self._submit(request, self.canvas.model.export(self.feather))

    @work(group="inpaint-submit", exit_on_error=False)
    async def _submit(self, request: dict[str, Any], mask: Image.Image) -> None:
        app = self.app
        folder = app.home.root / "cache" / "masks"
        path = await asyncio.to_thread(write_mask, mask, folder)
        self.last_mask_path = path
        request["mask_image"] = str(path)
        progress = self.query_one("#inpaint-progress", JobProgressBar)
        self._submitting += 1
        try:
            job = await app.submit("generate", request)
        except (RequestFailed, ServiceUnavailable) as exc:
            self._error(str(exc))
            app.notify_error("Cannot inpaint", str(exc))
            return
        finally:
            self._submitting -= 1
        self.job_id = str(job["id"])
        self._jobs.add(self.job_id)
        progress.start("queued")
        self._job_status(f"Job {self.job_id} queued: inpainting #{request['parent_id']} with mask {path.name}.")
        early, self._early = [m for m in self._early if m.job_id == self.job_id], [
            m for m in self._early if m.job_id != self.job_id and self._submitting]
        for message in early:
            self._dispatch(message)

    # ------------------------------------------------------------------ job events

    def _mine(self, message: JobEvent | JobProgress) -> bool:
        if message.job_id in self._jobs:
            return True
        if self._submitting:
            self._early.append(message)
            del self._early[:-500]
        return False

    def on_job_event(self, message: JobEvent) -> None:
        if self._mine(message):
            self._dispatch(message)

    def on_job_progress(self, message: JobProgress) -> None:
        if self._mine(message):
            self._dispatch(message)

    def _dispatch(self, message: JobEvent | JobProgress) -> None:
        progress = self.query_one("#inpaint-progress", JobProgressBar)
        if isinstance(message, JobProgress):
            if message.job_id == self.job_id:
                progress.advance(message)
            return
        d = message.data
        if message.event == "started" and message.job_id == self.job_id:
            progress.start("running")
        elif message.event == "image":
            gid = int(d.get("generation_id", 0) or 0)
            self.result_ids.append(gid)
            parent = self.source.id if self.source else "?"
            self._job_status(f"Result #{gid} recorded as a child of #{parent} (kind inpaint). "
                             f"The mask stays: change it and {self.app.key_label('inpaint.submit')} again.")
        elif message.final:
            if message.job_id == self.job_id:
                progress.finish(message.event, d.get("reason", "") if message.event == "failed" else "")
                if message.event == "failed":
                    self._job_status(f"Job {message.job_id} failed: {d.get('reason')}: {d.get('message')}")
                elif message.event == "cancelled":
                    self._job_status(f"Job {message.job_id} cancelled.")
            self._jobs.discard(message.job_id)

    # ------------------------------------------------------------------ small helpers

    def _error(self, text: str) -> None:
        box = self.query_one("#form-error", Static)
        box.update(text)
        box.set_class(bool(text), "-shown")

    def _job_status(self, text: str) -> None:
        self.query_one("#inpaint-job", Static).update(text)
