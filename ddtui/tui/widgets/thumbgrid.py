"""The history's virtualised thumbnail grid and list: one Line API widget, however long the history.

Only the lines on screen are rendered (`render_line`), from rows the `HistoryModel` has loaded; rows the
model has counted but not fetched yet draw as placeholders, and the grid asks for them (`NeedRows`) a page
ahead of the view. Thumbnails are read from the cache in one worker thread, visible tiles first, and drawn as
half-cell pixels that are built in that thread too, so scrolling never decodes an image on the UI thread.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from PIL import Image
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events, work
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...db.queries import HistoryItem
from ..history_model import HistoryModel

IMAGE_W, IMAGE_H = 16, 8  # cells; half-cell pixels make that a 16x16 pixel square
TILE_W, TILE_H = IMAGE_W + 2, IMAGE_H + 2  # a frame column each side; a caption line and a gap below
TILE_CACHE = 300  # tiles of decoded pixels kept (a full 160x48 screen shows about 40)
THUMB_BATCH_S = 0.03  # thumbnails decoded within this time are drawn together
DRAWN_CACHE = 600  # drawn tiles (pixels or text, with frame and caption) kept per state
HALF = "\u2580"  # upper half block: foreground is the top pixel, background the bottom one

ThumbLoader = Callable[[HistoryItem], "Path | None"]


def tile_strips(path: Path, width: int = IMAGE_W, rows: int = IMAGE_H,
                background: tuple[int, int, int] = (24, 24, 24)) -> list[Strip]:
    """Draw a thumbnail file as `rows` strips of half-cell pixels, fitted and centred in width x rows cells."""
    with Image.open(path) as im:
        im.draft("RGB", (width, rows * 2))  # JPEG thumbnails decode at a reduced scale
        im = im.convert("RGB")
        im.thumbnail((width, rows * 2), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (width, rows * 2), background)
        canvas.paste(im, ((width - im.width) // 2, (rows * 2 - im.height) // 2))
    data = canvas.tobytes()
    strips = []
    for row in range(rows):
        top, bottom = 2 * row * width * 3, (2 * row + 1) * width * 3
        segments = [
            Segment(HALF, Style(color=Color.from_rgb(*data[top + 3 * x: top + 3 * x + 3]),
                                bgcolor=Color.from_rgb(*data[bottom + 3 * x: bottom + 3 * x + 3])))
            for x in range(width)
        ]
        strips.append(Strip(Segment.simplify(segments), width))
    return strips


def stars(rating: int) -> str:
    return "\u2605" * rating + "\u00b7" * (5 - rating)


class ThumbGrid(ScrollView, can_focus=True):
    """Thumbnails (or one line per image) of a `HistoryModel`, with a cursor."""

    DEFAULT_CSS = """
    ThumbGrid {
        scrollbar-gutter: stable;
        overflow-x: hidden;
        background: $surface;
    }
    ThumbGrid > .thumbgrid--cursor { background: $secondary 40%; color: $text; }
    ThumbGrid:focus > .thumbgrid--cursor { background: $accent; color: $text-accent; text-style: bold; }
    ThumbGrid > .thumbgrid--caption { color: $text-muted; }
    ThumbGrid > .thumbgrid--favorite { color: $error; }
    ThumbGrid > .thumbgrid--placeholder { color: $text-disabled; background: $panel; }
    """

    COMPONENT_CLASSES = {
        "thumbgrid--cursor", "thumbgrid--caption", "thumbgrid--favorite", "thumbgrid--placeholder",
    }

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False, id="grid.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="grid.down"),
        Binding("left,h", "cursor_left", "Left", show=False, id="grid.left"),
        Binding("right,l", "cursor_right", "Right", show=False, id="grid.right"),
        Binding("pageup", "page_up", "Page up", show=False, id="grid.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="grid.page_down"),
        Binding("home", "first", "First image", show=False, id="grid.first"),
        Binding("end", "last", "Last image", show=False, id="grid.last"),
    ]

    mode: reactive[str] = reactive("grid")  # "grid" or "list"
    cursor: reactive[int] = reactive(0, always_update=True)
    show_images: reactive[bool] = reactive(True)

    class Highlighted(Message):
        """The cursor is on another image (`item` is None while its row is still being fetched)."""

        def __init__(self, grid: "ThumbGrid", item: HistoryItem | None, index: int) -> None:
            super().__init__()
            self.grid = grid
            self.item = item
            self.index = index

        @property
        def control(self) -> "ThumbGrid":
            return self.grid

    class NeedRows(Message):
        """Rows up to `want` should be loaded (the view reached them or is a page away)."""

        def __init__(self, grid: "ThumbGrid", want: int) -> None:
            super().__init__()
            self.grid = grid
            self.want = want

        @property
        def control(self) -> "ThumbGrid":
            return self.grid

    def __init__(self, model: HistoryModel, thumb_loader: ThumbLoader | None = None, *, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.thumb_loader = thumb_loader
        self._tiles: OrderedDict[int, list[Strip]] = OrderedDict()
        self._drawn: OrderedDict[tuple, list[Strip]] = OrderedDict()
        self._failed: set[int] = set()  # no thumbnail could be made: drawn as "no image", never retried
        self._inflight: set[int] = set()
        self._wanted: list[HistoryItem] = []
        self._lock = threading.Lock()
        self._loader_running = False
        self._last_highlight: tuple[int, int | None] | None = None
        self._last_want = -1
        self._background = (24, 24, 24)
        self.draw_times: list[float] | None = None  # set to a list to log when frames are drawn (benchmarks)
        self.moved_at = 0.0  # perf_counter of the last cursor move (benchmarks)

    # ------------------------------------------------------------------ geometry

    @property
    def columns(self) -> int:
        if self.mode == "list":
            return 1
        return max(1, self._content_width() // TILE_W)

    @property
    def row_height(self) -> int:
        return 1 if self.mode == "list" else TILE_H

    def _content_width(self) -> int:
        return max(1, self.scrollable_content_region.width or self.size.width)

    def _rows(self) -> int:
        return -(-self.model.known_rows // self.columns)

    def visible_range(self) -> tuple[int, int]:
        """Indices of the first and last rows whose tiles are (at least partly) on screen."""
        height = max(1, self.scrollable_content_region.height or self.size.height)
        top = int(self.scroll_y) // self.row_height
        bottom = (int(self.scroll_y) + height - 1) // self.row_height
        cols = self.columns
        return top * cols, min(self.model.known_rows, (bottom + 1) * cols) - 1

    def index_at(self, x: int, y: int) -> int | None:
        """The row index under a point of the widget (content coordinates), or None."""
        line = y + int(self.scroll_y)
        if self.mode == "list":
            index = line
        else:
            pad = (self._content_width() - self.columns * TILE_W) // 2
            col = (x - pad) // TILE_W
            if not 0 <= col < self.columns:
                return None
            index = (line // TILE_H) * self.columns + col
        return index if 0 <= index < self.model.known_rows else None

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._content_width(), self._rows() * self.row_height)

    # ------------------------------------------------------------------ model changes (called by the screen)

    def rows_changed(self) -> None:
        """The model loaded, removed or reset rows: resize, clamp the cursor, redraw, fetch what is missing."""
        self._update_virtual_size()
        last = max(0, self.model.known_rows - 1)
        if self.cursor > last:
            self.cursor = last
        self.refresh()
        self._after_view_change()

    def reset_view(self) -> None:
        """A new query: back to the top."""
        self._last_want = -1
        self._last_highlight = None
        self.cursor = 0
        self.scroll_to(y=0, animate=False, immediate=True)
        self.rows_changed()

    def rows_prepended(self, count: int) -> None:
        """`count` new rows arrived on top: keep the same image under the cursor and on the same screen row."""
        if count <= 0:
            return
        old_line = (self.cursor // self.columns) * self.row_height
        at_top = self.scroll_y < 1
        self.set_reactive(ThumbGrid.cursor, self.cursor + count)
        self._update_virtual_size()
        new_line = (self.cursor // self.columns) * self.row_height
        if not at_top:  # at the very top the user sees the new images arrive; elsewhere nothing moves
            self.scroll_to(y=self.scroll_y + new_line - old_line, animate=False, immediate=True)
        index = self.cursor
        item = self.model.get(index)
        self._last_highlight = (index, item.id if item else None)
        self.refresh()
        self._after_view_change()

    def row_removed(self, index: int) -> None:
        if index < self.cursor:
            self.set_reactive(ThumbGrid.cursor, self.cursor - 1)
        self.rows_changed()
        self._post_highlight(force=False)

    def item_changed(self, generation_id: int) -> None:
        """A row's rating or favorite changed: redraw its caption."""
        self.refresh()

    def forget_tile(self, generation_id: int) -> None:
        self._tiles.pop(generation_id, None)
        self._failed.discard(generation_id)

    @property
    def current(self) -> HistoryItem | None:
        return self.model.get(self.cursor)

    def select_index(self, index: int) -> None:
        self.cursor = max(0, min(index, max(0, self.model.known_rows - 1)))

    # ------------------------------------------------------------------ reactives

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, max(0, self.model.known_rows - 1)))

    def watch_cursor(self, old: int, new: int) -> None:
        self.moved_at = time.perf_counter()
        self._scroll_to_cursor()
        self.refresh()
        self._post_highlight()
        self._after_view_change()

    def watch_mode(self, old: str, new: str) -> None:
        self._update_virtual_size()
        self.call_after_refresh(self._scroll_to_cursor, True)
        self.refresh()
        self._after_view_change()

    def watch_show_images(self, value: bool) -> None:
        self.refresh()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._after_view_change()

    def on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()
        self._scroll_to_cursor()
        self._after_view_change()

    def on_mount(self) -> None:
        style = self.rich_style
        if style.bgcolor is not None:
            self._background = style.bgcolor.get_truecolor()[:3]
        self._update_virtual_size()

    def _scroll_to_cursor(self, center: bool = False) -> None:
        height = max(1, self.scrollable_content_region.height or self.size.height)
        top = (self.cursor // self.columns) * self.row_height
        bottom = top + self.row_height
        if center:
            self.scroll_to(y=max(0, top - (height - self.row_height) // 2), animate=False, immediate=True)
        elif top < self.scroll_y:
            self.scroll_to(y=top, animate=False, immediate=True)
        elif bottom > self.scroll_y + height:
            self.scroll_to(y=bottom - height, animate=False, immediate=True)

    def _post_highlight(self, force: bool = False) -> None:
        item = self.model.get(self.cursor)
        key = (self.cursor, item.id if item else None)
        if force or key != self._last_highlight:
            self._last_highlight = key
            self.post_message(self.Highlighted(self, item, self.cursor))

    def _after_view_change(self) -> None:
        """Ask for missing rows a page ahead, queue visible thumbnails, re-announce a row that just loaded."""
        if not self.is_mounted:
            return
        first, last = self.visible_range()
        want = max(last, self.cursor) + self.model.page_size
        if self.model.wants(want) and want > self._last_want:
            self._last_want = want
            self.post_message(self.NeedRows(self, want))
        if self._last_highlight is not None and self._last_highlight[1] is None and self.model.get(self.cursor):
            self._post_highlight()
        if self.mode == "grid" and self.show_images and self.thumb_loader is not None:
            cols = self.columns
            lo, hi = max(0, first - cols), min(len(self.model.items), last + 1 + cols)
            wanted = [i for i in self.model.items[lo:hi]
                      if i.id not in self._tiles and i.id not in self._failed and i.id not in self._inflight]
            with self._lock:
                self._wanted = wanted
            if wanted and not self._loader_running:
                self._loader_running = True
                self._load_thumbnails()

    def rows_requested_again(self) -> None:
        """Let the next view change ask for rows again (after a fetch failed or a query changed)."""
        self._last_want = -1

    # ------------------------------------------------------------------ thumbnails (worker thread)

    def _next_wanted(self) -> HistoryItem | None:
        with self._lock:
            while self._wanted:
                item = self._wanted.pop(0)
                if item.id not in self._tiles and item.id not in self._failed and item.id not in self._inflight:
                    self._inflight.add(item.id)
                    return item
            self._loader_running = False
            return None

    @work(thread=True, group="thumbnails", exit_on_error=False)
    def _load_thumbnails(self) -> None:
        assert self.thumb_loader is not None
        batch: list[tuple[int, list[Strip] | None]] = []
        sent = time.monotonic()
        while (item := self._next_wanted()) is not None:
            strips: list[Strip] | None = None
            try:
                path = self.thumb_loader(item)
                if path is not None:
                    strips = tile_strips(path, IMAGE_W, IMAGE_H, self._background)
            except (OSError, ValueError, Image.DecompressionBombError):
                strips = None  # unreadable or missing image: shown as "no image" once, not retried
            batch.append((item.id, strips))
            if time.monotonic() - sent > THUMB_BATCH_S:  # one redraw per batch, not per tile
                self.app.call_from_thread(self._tiles_ready, batch)
                batch, sent = [], time.monotonic()
        if batch:
            self.app.call_from_thread(self._tiles_ready, batch)

    def _tiles_ready(self, batch: list[tuple[int, list[Strip] | None]]) -> None:
        for generation_id, strips in batch:
            self._inflight.discard(generation_id)
            if strips is None:
                self._failed.add(generation_id)
            else:
                self._tiles[generation_id] = strips
        while len(self._tiles) > TILE_CACHE:
            self._tiles.popitem(last=False)
        self.refresh()

    # ------------------------------------------------------------------ actions

    def _move(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def action_cursor_up(self) -> None:
        self._move(-self.columns)

    def action_cursor_down(self) -> None:
        self._move(self.columns)

    def action_cursor_left(self) -> None:
        self._move(-1)

    def action_cursor_right(self) -> None:
        self._move(1)

    def _page_rows(self) -> int:
        height = max(1, self.scrollable_content_region.height or self.size.height)
        return max(1, height // self.row_height)

    def action_page_up(self) -> None:
        self._move(-self._page_rows() * self.columns)

    def action_page_down(self) -> None:
        self._move(self._page_rows() * self.columns)

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = max(0, self.model.known_rows - 1)

    def on_click(self, event: events.Click) -> None:
        index = self.index_at(event.x, event.y)
        if index is not None:
            self.cursor = index

    # ------------------------------------------------------------------ drawing

    def render_lines(self, crop: Region) -> list[Strip]:
        lines = super().render_lines(crop)
        if self.draw_times is not None:
            self.draw_times.append(time.perf_counter())
        return lines

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        line = y + int(self.scroll_y)
        base = self.rich_style
        if self.model.started and not self.model.known_rows:
            text = "" if y != 1 else ("  No images yet: generated images appear here." if self.model.query.is_empty()
                                      else "  No images match the filters (ctrl+l clears them).")
            style = base + self.get_component_rich_style("thumbgrid--caption")
            return Strip([Segment(text, style)]).crop(0, width).adjust_cell_length(width, base)
        if self.mode == "list":
            return self._list_line(line, width, base)
        return self._grid_line(line, width, base)

    def _list_line(self, index: int, width: int, base: Style) -> Strip:
        if index >= self.model.known_rows:
            return Strip.blank(width, base)
        item = self.model.get(index)
        selected = index == self.cursor
        style = base + self.get_component_rich_style("thumbgrid--cursor") if selected else base
        if item is None:
            text = "  \u2026 loading"
            style = style + self.get_component_rich_style("thumbgrid--placeholder") if not selected else style
            return Strip([Segment(text, style)]).adjust_cell_length(width, style)
        heart = "\u2665" if item.favorite else " "
        model = Path(item.model or "").stem[:18]
        prompt = " ".join(item.prompt.split())
        text = (f"{heart} {stars(item.rating)} #{item.id:<7} {item.created:%Y-%m-%d %H:%M}  "
                f"{item.kind:<9} {prompt}  \u00b7 {model}")
        fav_style = style + self.get_component_rich_style("thumbgrid--favorite", partial=True) \
            if item.favorite else style
        segments = [Segment(text[:1], fav_style), Segment(text[1:], style)]
        return Strip(segments).crop(0, width).adjust_cell_length(width, style)

    def _grid_line(self, line: int, width: int, base: Style) -> Strip:
        row, sub = divmod(line, TILE_H)
        cols = self.columns
        pad = (width - cols * TILE_W) // 2
        parts: list[Strip] = [Strip.blank(pad, base)] if pad else []
        blank = Strip.blank(TILE_W, base)
        for col in range(cols):
            index = row * cols + col
            parts.append(self._tile(index, base)[sub] if index < self.model.known_rows else blank)
        return Strip.join(parts).adjust_cell_length(width, base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn.clear()  # a theme or focus change restyles every tile

    def _tile(self, index: int, base: Style) -> list[Strip]:
        """The TILE_H lines of one tile, drawn once per state (a scroll only joins cached lines)."""
        item = self.model.get(index)
        selected = index == self.cursor
        if item is None:
            key: tuple = ("loading", selected)
        else:
            if item.id in self._tiles:
                self._tiles.move_to_end(item.id)
                image = "pixels"
            else:
                image = "text" if not self.show_images else "failed" if item.id in self._failed else "waiting"
            key = (item.id, selected, item.rating, item.favorite, image)
        strips = self._drawn.get(key)
        if strips is None:
            strips = self._draw_tile(item, selected, base)
            self._drawn[key] = strips
            while len(self._drawn) > DRAWN_CACHE:
                self._drawn.popitem(last=False)
        else:
            self._drawn.move_to_end(key)
        return strips

    def _draw_tile(self, item: HistoryItem | None, selected: bool, base: Style) -> list[Strip]:
        frame = base + self.get_component_rich_style("thumbgrid--cursor") if selected else base
        edge = Strip([Segment(" ", frame)], 1)
        lines = [Strip.join([edge, image, edge]) for image in self._image_lines(item, base)]
        if item is None:
            lines.append(Strip([Segment(" " * TILE_W, frame)], TILE_W))
        else:
            caption = f"{stars(item.rating)} #{item.id}"[: IMAGE_W - 2]
            text_style = frame if selected else base + self.get_component_rich_style("thumbgrid--caption")
            heart_style = frame + self.get_component_rich_style("thumbgrid--favorite", partial=True) \
                if item.favorite and not selected else text_style
            body = [Segment("\u2665" if item.favorite else " ", heart_style), Segment(" " + caption, text_style)]
            lines.append(Strip([Segment(" ", frame), *body, Segment(" ", frame)]).adjust_cell_length(TILE_W, frame))
        lines.append(Strip.blank(TILE_W, base))
        return lines

    def _image_lines(self, item: HistoryItem | None, base: Style) -> list[Strip]:
        if item is not None and self.show_images and item.id in self._tiles:
            return self._tiles[item.id]
        placeholder = base + self.get_component_rich_style("thumbgrid--placeholder")
        texts = [""] * IMAGE_H
        if item is None:
            texts[IMAGE_H // 2] = "\u2026"
        elif not self.show_images:
            wrapped = textwrap.wrap(" ".join(item.prompt.split()), IMAGE_W - 1, max_lines=IMAGE_H - 1,
                                    placeholder="\u2026")
            texts = [item.kind, *wrapped, *[""] * IMAGE_H][:IMAGE_H]
        elif item.id in self._failed:
            texts[IMAGE_H // 2] = "no image"
        return [Strip([Segment(f" {text}"[:IMAGE_W].ljust(IMAGE_W), placeholder)], IMAGE_W) for text in texts]
