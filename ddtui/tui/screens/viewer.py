"""The full-screen viewer: one image as large as the terminal allows, zoom and pan with keys, the next and
previous image of the list it was opened from, and compare: two images side by side with their parameter
differences listed.

It is opened from History (the current filter, in its order; the grid's cursor follows), from Generate's
results and from an exploration's cells (`open_viewer`). What it steps through is a `ViewerSource`: generation
ids by position, a blocking `load` of one image's record (called in a worker thread), and the partner it is
compared with by default (an item's parent, an exploration's anchor). `m` marks the image shown as the left
side of the next compare, so any two images of the list can be compared.

The image itself is an `ImageView` fed the full image file (not the thumbnail), so zooming in shows real
pixels; zoom and pan only change the part of the image shown (`ImageView.set_crop`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ..widgets.image import ImageView

ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
PAN_STEP = 0.125  # of the part shown; shift moves half of it
LARGEST = 4096  # pixels a side decoded for the viewer (zoom shows the image's own pixels up to this)
RETRY_S = 0.1  # waiting for a row the history is still fetching
_NOISE = {"options", "mode", "batch", "preview_every", "preview_size", "components", "model_hash"}


@dataclass
class ViewItem:
    """One image the viewer can show: its record, reduced to what the viewer needs."""

    generation_id: int
    title: str
    params: dict[str, Any]
    image: Path | None  # the image file itself
    thumbnail: Path | None = None
    parent_id: int | None = None
    size: tuple[int, int] = (0, 0)


class ViewerSource(Protocol):
    """What the viewer steps through."""

    def count(self) -> int:
        """How many images (so far: a history that is still loading may grow)."""

    def generation_at(self, index: int) -> int | None:
        """The generation id at `index`, or None while it is not loaded yet (the source fetches it)."""

    def load(self, generation_id: int) -> ViewItem | None:
        """The image's record (blocking: called in a worker thread)."""

    def partner(self, item: ViewItem) -> int | None:
        """Whom `c` compares the image with: its parent, or the exploration's anchor."""

    def shown(self, index: int) -> None:
        """The viewer now shows `index` (History moves its grid cursor along)."""


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(parameter, left value, right value) for every parameter that differs, in a stable order."""
    order = ("prompt", "negative_prompt", "model", "seed", "steps", "cfg", "guidance", "sampler", "scheduler",
             "width", "height", "strength", "loras", "hires", "clip_skip", "vae_tiling")
    keys = [k for k in order if k in left or k in right]
    keys += sorted(k for k in set(left) | set(right) if k not in order and k not in _NOISE)
    out = []
    for key in keys:
        a, b = _text(left.get(key)), _text(right.get(key))
        if a != b:
            out.append((key, a, b))
    return out


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(str(value).split())


def crop_box(size: tuple[int, int], zoom: float, centre: tuple[float, float]) -> tuple[int, int, int, int] | None:
    """The part of an image of `size` shown at `zoom` around `centre` (fractions of the image); None: all."""
    if zoom <= 1.0 or size[0] <= 0 or size[1] <= 0:
        return None
    w, h = max(1, round(size[0] / zoom)), max(1, round(size[1] / zoom))
    x = round(centre[0] * size[0] - w / 2)
    y = round(centre[1] * size[1] - h / 2)
    return max(0, min(size[0] - w, x)), max(0, min(size[1] - h, y)), w, h


def clamp_centre(zoom: float, centre: tuple[float, float]) -> tuple[float, float]:
    half = 0.5 / max(1.0, zoom)
    return max(half, min(1 - half, centre[0])), max(half, min(1 - half, centre[1]))


# ------------------------------------------------------------------ sources


def detail_loader(app: Any) -> Callable[[int], ViewItem | None]:
    """Loads one image's record for the viewer through the detail panel's reader (blocking)."""
    from ...core.thumbnails import thumbnail_path
    from ..widgets.detail import load_detail

    output_dir = Path(app.cfg.output_dir)
    thumbnails = app.home.thumbnails

    def load(generation_id: int) -> ViewItem | None:
        detail = load_detail(app.db, generation_id)
        if detail is None:
            return None
        params = dict(detail.params)
        for key in ("prompt", "negative_prompt", "model", "width", "height", "seed"):
            params.setdefault(key, getattr(detail, key))
        stored = Path(detail.path)
        image = stored if stored.is_absolute() else output_dir / stored
        thumb = thumbnail_path(thumbnails, detail.uuid)
        title = f"#{detail.id} \u00b7 {detail.kind} \u00b7 {detail.width}\u00d7{detail.height} \u00b7 " \
                f"{' '.join(detail.prompt.split())[:80]}"
        return ViewItem(detail.id, title, params, image if image.exists() else None,
                        thumb if thumb.exists() else None, detail.parent.id if detail.parent else None,
                        (detail.width, detail.height))

    return load


@dataclass
class ListSource:
    """A fixed list of images (Generate's results, an exploration's cells)."""

    ids: list[int]
    loader: Callable[[int], ViewItem | None]
    anchor: int | None = None  # compared with by default (else an item's parent)
    on_shown: Callable[[int], None] | None = None

    def count(self) -> int:
        return len(self.ids)

    def generation_at(self, index: int) -> int | None:
        return self.ids[index] if 0 <= index < len(self.ids) else None

    def load(self, generation_id: int) -> ViewItem | None:
        return self.loader(generation_id)

    def partner(self, item: ViewItem) -> int | None:
        if self.anchor is not None and self.anchor != item.generation_id:
            return self.anchor
        return item.parent_id

    def shown(self, index: int) -> None:
        if self.on_shown is not None:
            self.on_shown(index)


@dataclass
class HistorySource:
    """The History screen's current filter, in its order: rows come from its model, which the grid fills."""

    history: Any  # the HistoryScreen: its `model` (rows loaded so far) and `grid` (cursor, row fetching)
    loader: Callable[[int], ViewItem | None]
    _asked: set[int] = field(default_factory=set)

    def count(self) -> int:
        return self.history.model.known_rows

    def generation_at(self, index: int) -> int | None:
        item = self.history.model.get(index)
        if item is None:
            self.history.grid.select_index(index)  # the grid fetches the rows around its cursor
        return item.id if item is not None else None

    def load(self, generation_id: int) -> ViewItem | None:
        return self.loader(generation_id)

    def partner(self, item: ViewItem) -> int | None:
        return item.parent_id

    def shown(self, index: int) -> None:
        self.history.grid.select_index(index)


# ------------------------------------------------------------------ the screen


class ViewerPane(Vertical):
    """One side of the viewer: the image and a line about it."""

    DEFAULT_CSS = """
    ViewerPane { width: 1fr; height: 1fr; }
    ViewerPane > ImageView { height: 1fr; width: 1fr; }
    ViewerPane > .viewer-title { height: 1; color: $text; text-style: bold; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield ImageView("loading\u2026", largest=LARGEST)
        yield Static("", classes="viewer-title", markup=False)

    @property
    def view(self) -> ImageView:
        return self.query_one(ImageView)

    def show(self, item: ViewItem | None, note: str = "") -> None:
        title = self.query_one(".viewer-title", Static)
        if item is None:
            self.view.clear(note or "no image")
            title.update(note)
            return
        path = item.image or item.thumbnail
        if path is None:
            self.view.clear("the image file is missing")
        else:
            self.view.show_file(path, f"#{item.generation_id}")
        title.update(item.title + ("" if item.image else "  (file missing: thumbnail)"))


class ViewerScreen(Screen[None]):
    """An image as large as the terminal allows; zoom, pan, next/previous, and compare two side by side."""

    DEFAULT_CSS = """
    ViewerScreen { layout: vertical; }
    ViewerScreen #viewer-panes { height: 1fr; }
    ViewerScreen #viewer-right { display: none; border-left: vkey $panel-lighten-2; }
    ViewerScreen.-compare #viewer-right { display: block; }
    ViewerScreen #viewer-diff { height: auto; max-height: 10; display: none; padding: 0 1;
                                 border-top: hkey $panel-lighten-2; }
    ViewerScreen.-compare #viewer-diff { display: block; }
    ViewerScreen #viewer-status { height: 1; padding: 0 1; color: $text-muted; background: $panel; }
    """

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,v", "close", "Back", id="viewer.close"),
        Binding("n,space,pagedown", "step(1)", "Next", id="viewer.next"),
        Binding("p,backspace,pageup", "step(-1)", "Previous", id="viewer.previous"),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", id="viewer.zoom_in"),
        Binding("minus", "zoom(-1)", "Zoom out", id="viewer.zoom_out"),
        Binding("0", "fit", "Fit", id="viewer.fit"),
        Binding("c", "compare", "Compare", id="viewer.compare"),
        Binding("m", "mark", "Mark for compare", id="viewer.mark"),
        Binding("left,h", "pan(-1, 0)", "Pan left", show=False, id="viewer.left"),
        Binding("right,l", "pan(1, 0)", "Pan right", show=False, id="viewer.right"),
        Binding("up,k", "pan(0, -1)", "Pan up", show=False, id="viewer.up"),
        Binding("down,j", "pan(0, 1)", "Pan down", show=False, id="viewer.down"),
        Binding("shift+left,H", "pan(-4, 0)", "Pan far left", show=False, id="viewer.left_far"),
        Binding("shift+right,L", "pan(4, 0)", "Pan far right", show=False, id="viewer.right_far"),
        Binding("shift+up,K", "pan(0, -4)", "Pan far up", show=False, id="viewer.up_far"),
        Binding("shift+down,J", "pan(0, 4)", "Pan far down", show=False, id="viewer.down_far"),
        Binding("home", "first", "First image", show=False, id="viewer.first"),
        Binding("end", "last", "Last image", show=False, id="viewer.last"),
    ]

    def __init__(self, source: ViewerSource, index: int = 0, *, compare: bool = False) -> None:
        super().__init__()
        self.source = source
        self.index = max(0, index)
        self.zoom = 1.0
        self.centre = (0.5, 0.5)
        self.item: ViewItem | None = None
        self.other: ViewItem | None = None  # the left side in compare mode
        self.marked: ViewItem | None = None
        self.comparing = compare
        self._retry: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="viewer-panes"):
            yield ViewerPane(id="viewer-left")
            yield ViewerPane(id="viewer-right")
        yield Static("", id="viewer-diff", markup=False)
        yield Static("", id="viewer-status", markup=False)
        yield Footer()

    @property
    def left(self) -> ViewerPane:
        return self.query_one("#viewer-left", ViewerPane)

    @property
    def right(self) -> ViewerPane:
        return self.query_one("#viewer-right", ViewerPane)

    def on_mount(self) -> None:
        self._go(self.index)

    # ------------------------------------------------------------------ what is shown

    def _go(self, index: int) -> None:
        count = self.source.count()
        if count <= 0:
            self.left.show(None, "nothing to show")
            self._status()
            return
        self.index = max(0, min(index, count - 1))
        generation_id = self.source.generation_at(self.index)
        if self._retry is not None:
            self._retry.stop()
            self._retry = None
        if generation_id is None:  # still being fetched: look again shortly
            self._status("loading\u2026")
            self._retry = self.set_timer(RETRY_S, lambda: self._go(self.index))
            return
        self.source.shown(self.index)
        self._load(generation_id, self.comparing and self.other is None)

    @work(group="viewer-load", thread=True, exclusive=True, exit_on_error=False)
    def _load(self, generation_id: int, with_partner: bool) -> None:
        item = self.source.load(generation_id)
        other = None
        if with_partner and item is not None:
            partner = self.marked.generation_id if self.marked is not None else self.source.partner(item)
            other = self.source.load(partner) if partner is not None else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._loaded, item, other, with_partner)

    def _loaded(self, item: ViewItem | None, other: ViewItem | None, with_partner: bool) -> None:
        self.item = item
        if with_partner:
            self.other = other
            if other is None:
                self.comparing = False
                self.notify("Nothing to compare with: this image has no parent (m marks one to compare).",
                            severity="warning")
        self._layout()

    def _layout(self) -> None:
        self.set_class(self.comparing, "-compare")
        if self.comparing and self.other is not None:
            self.left.show(self.other)
            self.right.show(self.item)
            self._differences()
        else:
            self.left.show(self.item, "" if self.item else "this image is no longer in the history")
        self._apply_zoom()
        self._status()

    def _differences(self) -> None:
        diff = self.query_one("#viewer-diff", Static)
        if self.item is None or self.other is None:
            diff.update("")
            return
        rows = differences(self.other.params, self.item.params)
        if not rows:
            diff.update(f"#{self.other.generation_id} and #{self.item.generation_id}: the same parameters")
            return
        width = max(len(k) for k, _, _ in rows)
        lines = [f"differences #{self.other.generation_id} \u2192 #{self.item.generation_id}:"]
        lines += [f"  {k.ljust(width)}  {a}  \u2192  {b}" for k, a, b in rows]
        diff.update("\n".join(lines))

    def _status(self, note: str = "") -> None:
        count = self.source.count()
        parts = [f"{self.index + 1} / {count:,}" if count else "empty"]
        parts.append("fit" if self.zoom <= 1 else f"zoom {self.zoom:g}\u00d7")
        if self.marked is not None:
            parts.append(f"marked #{self.marked.generation_id}")
        if self.comparing and self.other is not None:
            parts.append("compare")
        parts.append(f"images: {getattr(self.app, 'image_protocol', '?')}")
        if note:
            parts.append(note)
        self.query_one("#viewer-status", Static).update(" \u00b7 ".join(parts))

    def _apply_zoom(self) -> None:
        for pane, item in ((self.left, self.other if self.comparing else self.item), (self.right, self.item)):
            view = pane.view
            size = view.image_size if view.image_size != (0, 0) else (item.size if item else (0, 0))
            view.set_crop(crop_box(size, self.zoom, self.centre))

    @on(ImageView.ImageLoaded)
    def _image_loaded(self, event: ImageView.ImageLoaded) -> None:
        self._apply_zoom()  # the crop needs the decoded size

    # ------------------------------------------------------------------ actions

    def action_close(self) -> None:
        self.dismiss(None)

    def action_step(self, delta: int) -> None:
        self._go(self.index + delta)

    def action_first(self) -> None:
        self._go(0)

    def action_last(self) -> None:
        self._go(self.source.count() - 1)

    def action_zoom(self, step: int) -> None:
        current = min(range(len(ZOOMS)), key=lambda i: abs(ZOOMS[i] - self.zoom))
        self.zoom = ZOOMS[max(0, min(len(ZOOMS) - 1, current + step))]
        self.centre = clamp_centre(self.zoom, self.centre)
        self._apply_zoom()
        self._status()

    def action_fit(self) -> None:
        self.zoom, self.centre = 1.0, (0.5, 0.5)
        self._apply_zoom()
        self._status()

    def action_pan(self, dx: int, dy: int) -> None:
        if self.zoom <= 1:
            if dx and not dy:
                self.action_step(1 if dx > 0 else -1)  # at fit, left and right step through the images
            return
        step = PAN_STEP / self.zoom
        self.centre = clamp_centre(self.zoom, (self.centre[0] + dx * step, self.centre[1] + dy * step))
        self._apply_zoom()

    def action_compare(self) -> None:
        if self.comparing:
            self.comparing, self.other = False, None
            self._layout()
            return
        if self.item is None:
            return
        self.comparing = True
        self._go(self.index)

    def action_mark(self) -> None:
        if self.item is None:
            return
        self.marked = None if self.marked is not None and self.marked.generation_id == self.item.generation_id \
            else self.item
        if self.marked is not None:
            self.notify(f"#{self.item.generation_id} marked: step to another image and press c to compare.")
        self._status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "viewer-load":
            error = event.worker.error
            self._status(f"could not load: {error}")
            notify = getattr(self.app, "notify_error", None)
            if notify is not None:
                notify("The viewer could not load the image", f"{type(error).__name__}: {error}")


def open_viewer(app: Any, source: ViewerSource, index: int = 0, *, compare: bool = False) -> ViewerScreen:
    """Push the viewer over the current screen."""
    screen = ViewerScreen(source, index, compare=compare)
    app.push_screen(screen)
    return screen


def open_history_viewer(history: Any, *, compare: bool = False) -> ViewerScreen | None:
    """The viewer over History's current filter, at the grid's cursor (`compare`: with the image's parent)."""
    if history.grid.current is None:
        history.notify("No image under the cursor.", severity="warning")
        return None
    source = HistorySource(history, detail_loader(history.app))
    return open_viewer(history.app, source, history.grid.cursor, compare=compare)


def open_exploration_viewer(explore: Any, *, compare: bool = False) -> ViewerScreen | None:
    """The viewer over an exploration's made cells, in reading order, at the cursor (`compare`: with the anchor)."""
    from ...core.explore import GRID_POSITIONS

    anchor = explore.anchor.generation_id if explore.anchor is not None else None
    positions = sorted({*GRID_POSITIONS, (1, 1)})
    ids: list[int] = []
    index = 0
    for position in positions:
        cell = explore.cells.get(position)
        generation_id = anchor if position == (1, 1) else (cell.generation_id if cell is not None else None)
        if generation_id is None:
            continue
        if position == explore.cursor:
            index = len(ids)
        ids.append(generation_id)
    if not ids:
        explore.notify("No image in the grid yet.", severity="warning")
        return None
    source = ListSource(ids, detail_loader(explore.app), anchor=anchor)
    return open_viewer(explore.app, source, index, compare=compare)


def open_results_viewer(screen: Any, generation_ids: list[int], *, compare: bool = False) -> ViewerScreen | None:
    """The viewer over Generate's results, at the newest (`compare`: with its parent)."""
    if not generation_ids:
        screen.notify("No result yet: generate an image first.", severity="warning")
        return None
    source = ListSource(list(generation_ids), detail_loader(screen.app))
    return open_viewer(screen.app, source, len(generation_ids) - 1, compare=compare)
