"""The full-screen viewer: one image as large as the terminal allows, zoom and pan with keys, the next and
previous image of the list it was opened from, and compare: two images side by side with their parameter
differences listed.

The app opens it (`Host.open_viewer`) over History (the current filter, in its order; the grid's cursor
follows), Generate's results or an exploration's cells, with a `ViewerSource` from ddtui/tui/viewing.py. `m`
marks the image shown as the left side of the next compare, so any two images of the list can be compared.

The image is an `ImageView` fed the image file itself (not the thumbnail), so zooming in shows its own pixels;
zoom and pan only change the part of the image shown (`ImageView.set_crop`).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ..keys import bindings_for
from ..viewing import ViewerSource, ViewItem, clamp_centre, crop_box, differences
from ..widgets.image import ImageView
from .base import MainScreen

ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
PAN_STEP = 0.125  # of the part shown; shift moves half of it
LARGEST = 4096  # pixels a side decoded for the viewer (zoom shows the image's own pixels up to this)
RETRY_S = 0.1  # waiting for a row the history is still fetching


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


class ViewerScreen(MainScreen[None]):
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

    BINDINGS: ClassVar[list[BindingType]] = bindings_for("viewer")

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
        parts.append(f"images: {self.app.image_protocol}")
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
            self._status(f"could not load: {event.worker.error}")
        super().on_worker_state_changed(event)  # reported in the app's one place
