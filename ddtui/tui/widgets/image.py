"""Images in the terminal: protocol detection (before Textual owns the terminal) and the `ImageView` widget.

Protocols: `kitty` (the kitty graphics protocol: Unicode placeholders where the terminal has them, kitty 0.28+,
else images placed directly), `sixel`, `halfcell` (coloured ▀ cells, works everywhere) and `none` (a text
label). Detection asks the terminal (ddtui/tui/graphics/detect.py) and must run before `App.run`; launch.py
does it. Inside tmux graphics go through passthrough (`set -g allow-passthrough on`) when tmux confirms the
terminal outside can show them; otherwise images are half cells.

`ImageView` draws one picture fitted into its size (largest that fits, shape kept): it decodes and encodes in
a worker thread (`picture.prepare`) and only joins ready strips while drawing, so a frame never waits for an
image. It is fed thumbnail files from the cache (decoded once, kept in a small LRU), full images (the viewer),
PIL images, or the small PNG bytes of a live preview. `crop` shows part of the image (the viewer's zoom).
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from pathlib import Path
from threading import Lock
from typing import Any

from PIL import Image as PILImage
from rich.segment import Segment
from textual import events, work
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from ..graphics.detect import CHOICES, DEFAULT_CELL, PROTOCOLS, Detection, detect, in_tmux  # noqa: F401
from ..graphics.picture import (Graphics, Picture, control_segment, graphics_of, kitty_or_sixel_for_tmux, overlays,
                                prepare, text_rows)

log = logging.getLogger("ddtui.tui.image")

wrap_for_tmux = kitty_or_sixel_for_tmux


def detect_protocol(requested: str = "auto") -> Detection:
    """Choose the image protocol; asks the terminal, so call it before the Textual app starts."""
    return detect(requested)


def describe(detection: Detection) -> str:
    facts = "; ".join(detection.facts)
    return f"images: {detection.protocol} ({detection.reason}{'; ' + facts if facts else ''})"


def cell_size(app: Any | None = None) -> tuple[int, int]:
    """Pixels per terminal cell (width, height) as detected at launch, or a VT340's cell when unknown."""
    if app is not None:
        return graphics_of(app).cell
    from ..graphics.detect import last_detection

    found = last_detection()
    return found.cell if found else DEFAULT_CELL


# ------------------------------------------------------------------ decoding, cached

_CACHE_SIZE = 256
_cache: "OrderedDict[tuple[str, float, int], PILImage.Image]" = OrderedDict()
_cache_lock = Lock()


def load_thumbnail(path: Path, largest: int = 512) -> PILImage.Image:
    """Decode an image once, no larger than `largest` pixels a side; later calls are served from memory."""
    stat = path.stat()
    key = (str(path), stat.st_mtime, largest)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    with PILImage.open(path) as im:
        im.draft("RGB", (largest, largest))  # a JPEG decodes at reduced scale when it is bigger than needed
        if max(im.size) > largest:
            im.thumbnail((largest, largest))
        keeps_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        image = im.convert("RGBA" if keeps_alpha else "RGB")
    with _cache_lock:
        _cache[key] = image
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return image


def decode_png(data: bytes) -> PILImage.Image:
    with PILImage.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


class ImageView(Widget):
    """An image in the terminal, drawn with the app's protocol; a caption shows when there is none."""

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
        color: $text-muted;
    }
    """

    caption: reactive[str] = reactive("", init=False)
    image_size: reactive[tuple[int, int]] = reactive((0, 0), init=False)

    class ImageLoaded(Message):
        """A new image was decoded (its size is known now); it is drawn once prepared."""

        def __init__(self, view: "ImageView") -> None:
            super().__init__()
            self.view = view

        @property
        def control(self) -> "ImageView":
            return self.view

    def __init__(self, placeholder: str = "no image", protocol: str | None = None, *, id: str | None = None,
                 classes: str | None = None, largest: int = 512) -> None:
        super().__init__(id=id, classes=classes)
        self._protocol = protocol
        self._placeholder_text = placeholder
        self._label = ""
        self._image: PILImage.Image | None = None
        self._crop: tuple[int, int, int, int] | None = None  # the part of the image shown (pixels)
        self._picture: Picture | None = None
        self._picture_key: tuple | None = None
        self._rows_cache: tuple[tuple, list[Strip]] | None = None
        self._exact: tuple[int, int] | None = None  # fix_size: fill exactly this many cells
        self._placement = 0
        self._placed: tuple | None = None  # what the terminal shows now (kitty direct placement)
        self._toasts = 0
        self._generation = 0
        self.largest = largest

    # ------------------------------------------------------------------ the app's protocol

    @property
    def graphics(self) -> Graphics:
        return graphics_of(self.app)

    @property
    def protocol(self) -> str:
        if self._protocol is None:
            self._protocol = getattr(self.app, "image_protocol", "halfcell")
        return self._protocol

    def _draw_protocol(self) -> str:
        """What pictures are encoded for: the app's graphics protocol unless this view was given another."""
        proto = self.protocol
        return proto if proto in ("halfcell", "none") or proto == self.graphics.protocol else "halfcell"

    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def picture(self) -> Picture | None:
        """The prepared picture on screen now (None while none is ready)."""
        return self._picture

    def on_mount(self) -> None:
        self._placement = self.graphics.new_placement_id()
        self.app.screen_change_signal.subscribe(self, self._screen_changed, immediate=True)

    def on_unmount(self) -> None:
        self._unplace()
        if self._picture is not None:
            self.graphics.forget(self._picture)

    def on_hide(self, event: events.Hide) -> None:
        self._unplace()

    def _screen_changed(self, screen: Any) -> None:
        if not self.is_mounted:
            return
        if screen is not self.screen:
            self._unplace()
        self.refresh()

    # ------------------------------------------------------------------ what to show

    def _set(self, image: PILImage.Image | None, label: str = "", crop: tuple[int, int, int, int] | None = None
             ) -> None:
        self._image = image
        self._label = label
        self._crop = crop
        self.image_size = image.size if image is not None else (0, 0)
        if image is None:
            self._drop_picture()
            self.refresh()
            return
        self.post_message(self.ImageLoaded(self))
        self._prepare_now()

    def show_png(self, data: bytes, label: str = "") -> None:
        """Show small PNG bytes (a live preview) at once."""
        try:
            image = decode_png(data)
        except Exception as exc:  # noqa: BLE001 - a bad preview must not break the screen
            log.debug("undecodable preview: %s", exc)
            return
        self._set(image, label)

    def show_pil(self, image: PILImage.Image | None, label: str = "",
                 crop: tuple[int, int, int, int] | None = None) -> None:
        self._set(image, label, crop)

    def show_file(self, path: Path, label: str = "") -> None:
        """Show an image file (a thumbnail, or a full image for the viewer); it is decoded off the event loop."""
        self._load(Path(path), label)

    def set_crop(self, crop: tuple[int, int, int, int] | None) -> None:
        """Show only this part of the image (x, y, width, height in its pixels); None shows all of it."""
        if crop != self._crop:
            self._crop = crop
            if self._image is not None:
                self._prepare_now()

    @work(group="image-load", thread=True, exit_on_error=False, exclusive=True)
    def _load(self, path: Path, label: str) -> None:
        image = load_thumbnail(path, self.largest)
        if not get_current_worker().is_cancelled:  # a newer image was asked for meanwhile
            self.app.call_from_thread(self._set, image, label)

    def clear(self, placeholder: str | None = None) -> None:
        """Show no image: the placeholder text (a new one when given) instead."""
        if placeholder is not None:
            self._placeholder_text = placeholder
        self._set(None)

    def fix_size(self, cols: int, rows: int) -> None:
        """Draw the image in exactly `cols` x `rows` cells (the mask editor maps cells to pixels with this)."""
        self.styles.width = cols
        self.styles.height = rows
        self._exact = (cols, rows)
        if self._image is not None:
            self._prepare_now()

    # ------------------------------------------------------------------ preparing (worker thread)

    def _box(self) -> tuple[int, int]:
        if self._exact is not None:
            return self._exact
        region = self.content_region if self.is_mounted else Region()
        return max(1, region.width or self.size.width), max(1, region.height or self.size.height)

    def _prepare_now(self) -> None:
        if self._image is None or not self.is_mounted:
            return
        proto = self._draw_protocol()
        if proto == "none":
            self.refresh()
            return
        cols, rows = self._box()
        if self.size.width <= 0 or self.size.height <= 0:
            return  # not laid out yet: on_resize prepares it
        key = (id(self._image), self._crop, cols, rows, proto, self.graphics.cell, self._exact is not None)
        if key == self._picture_key and self._picture is not None:
            return
        self._generation += 1
        self._prepare(self._image, self._crop, cols, rows, proto, key, self._generation, self._background())

    def _background(self) -> tuple[int, int, int]:
        colour = self.rich_style.bgcolor
        return colour.get_truecolor()[:3] if colour is not None else (24, 24, 24)

    @work(group="image-prepare", thread=True, exit_on_error=False, exclusive=True)
    def _prepare(self, image: PILImage.Image, crop: tuple[int, int, int, int] | None, cols: int, rows: int,
                 proto: str, key: tuple, generation: int, background: tuple[int, int, int]) -> None:
        source = image.crop((crop[0], crop[1], crop[0] + crop[2], crop[1] + crop[3])) if crop else image
        if self._exact is not None:
            picture = prepare(source, cols, rows, proto, self.graphics.cell, background=background, stretch=True)
        else:
            picture = prepare(source, cols, rows, proto, self.graphics.cell, background=background)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._prepared, picture, key, generation)

    def _prepared(self, picture: Picture, key: tuple, generation: int) -> None:
        if generation != self._generation or not self.is_mounted:
            return
        old = self._picture
        self.graphics.upload(picture)
        self._picture, self._picture_key = picture, key
        if old is not None and old is not picture:
            self._unplace()
            self.graphics.forget(old)
        self.refresh()

    def _drop_picture(self) -> None:
        self._generation += 1
        self._unplace()
        if self._picture is not None:
            self.graphics.forget(self._picture)
        self._picture, self._picture_key = None, None

    def on_resize(self, event: events.Resize) -> None:
        self.graphics.refresh_origin()
        self._prepare_now()

    # ------------------------------------------------------------------ drawing

    def _text_rows(self, width: int, height: int) -> list[Strip]:
        style = self.rich_style
        picture = self._picture
        key = (picture.serial if picture else 0, picture.image_id if picture else 0, width, height, style, self._placeholder_text,
               self._label, self._image is None)
        if self._rows_cache is not None and self._rows_cache[0] == key:
            return self._rows_cache[1]
        if picture is not None and self._image is not None:
            rows = text_rows(picture, height, width, style)
        else:
            text = self._placeholder_text if self._image is None else (
                self._label or f"\u25a3 {self._image.width}\u00d7{self._image.height}")
            if self._image is not None and self._draw_protocol() != "none":
                text = "\u2026"  # being prepared
            blank = Strip.blank(width, style)
            rows = [blank] * height
            if height:
                line = Strip([Segment(text[:width].center(width), style)], width)
                rows = [*rows[: height // 2], line, *rows[height // 2 + 1:]]
        self._rows_cache = (key, rows)
        return rows

    def render_line(self, y: int) -> Strip:
        width, height = self.content_region.width or self.size.width, self.content_region.height or self.size.height
        rows = self._text_rows(width, height)
        return rows[y] if 0 <= y < len(rows) else Strip.blank(width, self.rich_style)

    def _picture_origin(self) -> tuple[int, int]:
        """The picture's top-left cell within the content area (it is centred in it)."""
        assert self._picture is not None
        region = self.content_region
        return (region.width - self._picture.cols) // 2, (region.height - self._picture.rows) // 2

    def render_lines(self, crop: Region) -> list[Strip]:
        strips = super().render_lines(crop)
        picture = self._picture
        if picture is None or not picture.graphic or self._image is None:
            return strips
        try:
            active = self.screen.is_active
        except Exception:  # noqa: BLE001 - no screen yet
            active = False
        graphics = self.graphics
        if not active or (picture.protocol == "kitty" and graphics.placeholders):
            return strips
        covers = overlays(self)
        if len(covers) != self._toasts:
            self._toasts = len(covers)  # a notification came or went: draw the lines it cut again
            self.call_later(self.refresh)
        region, content = self.region, self.content_region
        left, top = self._picture_origin()
        pic_x, pic_y = content.x + left, content.y + top  # screen cells
        screen_h = self.app.size.height
        first_visible = last_visible = None
        for i in range(len(strips)):
            screen_y = region.y + crop.y + i
            row = screen_y - pic_y
            if not 0 <= row < picture.rows:
                continue
            first_visible = row if first_visible is None else first_visible
            last_visible = row
            if picture.protocol == "sixel" and screen_y < screen_h - 1:  # a sixel on the last line scrolls
                strips[i] = Strip([*strips[i], control_segment(graphics.sixel_at(picture, row, pic_x, screen_y))],
                                  strips[i].cell_length)
        if picture.protocol == "kitty":
            box = Region(pic_x, pic_y + (first_visible or 0), picture.cols, picture.rows)
            if first_visible is None or any(box.overlaps(cover) for cover in covers):
                self._unplace()
            else:
                self._place(picture, pic_x, pic_y + first_visible, first_visible,
                            last_visible - first_visible + 1)  # type: ignore[operator]
        return strips

    def _place(self, picture: Picture, x: int, y: int, first: int, rows: int) -> None:
        want = (picture.image_id, x, y, first, rows)
        if want == self._placed or not picture.image_id:
            return
        if self._placed is not None and self._placed[0] != picture.image_id:
            self._unplace()
        self.graphics.write(self.graphics.place(picture, self._placement, x, y, first, rows))
        self._placed = want

    def _unplace(self) -> None:
        if self._placed is not None:
            self.graphics.write(self.graphics.unplace(self._placed[0], self._placement))
            self._placed = None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A thumbnail that cannot be read is shown as missing; the cache makes it again on the next visit.
        if event.state == WorkerState.ERROR:
            log.debug("image worker failed: %s", event.worker.error)
            if event.worker.group == "image-load":
                self._set(None)
                self._placeholder_text = "thumbnail missing"
                self.refresh()


__all__ = ["ImageView", "Detection", "detect_protocol", "describe", "cell_size", "load_thumbnail", "decode_png",
           "wrap_for_tmux", "in_tmux", "PROTOCOLS", "CHOICES"]
