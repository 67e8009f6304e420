"""The history's virtualised thumbnail grid and list: one Line API widget, however long the history.

Only the lines on screen are rendered (`render_line`), from rows the `HistoryModel` has loaded; rows the
model has counted but not fetched yet draw as placeholders, and the grid asks for them (`NeedRows`) a page
ahead of the view. Thumbnails are read from the cache in one worker thread, visible tiles first, and prepared
there for the terminal's protocol (ddtui/tui/graphics): kitty tiles are sent to the terminal once by image id
and only placed again while scrolling, sixel tiles are encoded once and kept beside the thumbnail, half cells
are built as strips. Drawing a frame only joins ready strips and positions, so scrolling never decodes or
encodes an image on the UI thread. Tiles are `tile_size` cells (24x12 by default); `+` and `-` change it.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from PIL import Image
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
from ..graphics.picture import (Graphics, Picture, control_segment, graphics_of, overlays, prepare, sixel_cache_path,
                                text_rows)
from ..history_model import HistoryModel

TILE_SIZES = ((16, 8), (20, 10), (24, 12), (32, 16), (40, 20), (48, 24), (64, 32))  # image cells: + and - step
DEFAULT_TILE = (24, 12)
TILE_CACHE = 300  # prepared tiles kept (a full 200x60 screen shows about 40)
THUMB_BATCH_S = 0.03  # thumbnails prepared within this time are drawn together
DRAWN_CACHE = 600  # drawn tiles (pixels or text, with frame and caption) kept per state

ThumbLoader = Callable[[HistoryItem], "Path | None"]


def prepare_tile(path: Path, cols: int, rows: int, protocol: str, cell: tuple[int, int],
                 background: tuple[int, int, int] = (24, 24, 24)) -> Picture:
    """A thumbnail file fitted into a tile of `cols` x `rows` cells for `protocol` (blocking: a worker thread).

    A sixel tile's encoding is kept beside the thumbnail, so the next session reads it instead of encoding."""
    with Image.open(path) as im:
        box = (cols * cell[0], rows * cell[1]) if protocol != "halfcell" else (cols, rows * 2)
        im.draft("RGB", box)  # JPEG thumbnails decode at a reduced scale
        image = im.convert("RGB")
    mtime = path.stat().st_mtime
    cache = sixel_cache_path(path, cols, rows, cell) if protocol == "sixel" else None
    return prepare(image, cols, rows, protocol, cell, background=background, sixel_cache=cache, source_mtime=mtime)


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
    tile_size: reactive[tuple[int, int]] = reactive(DEFAULT_TILE)  # image cells of a tile (columns, rows)

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
        self._tiles: OrderedDict[int, Picture] = OrderedDict()
        self._drawn: OrderedDict[tuple, list[Strip]] = OrderedDict()
        self._failed: set[int] = set()  # no thumbnail could be made: drawn as "no image", never retried
        self._inflight: set[int] = set()
        self._wanted: list[HistoryItem] = []
        self._lock = threading.Lock()
        self._loader_running = False
        self._last_highlight: tuple[int, int | None] | None = None
        self._last_want = -1
        self._background = (24, 24, 24)
        self._placement = 0  # kitty placement id of this grid's tiles (placed directly)
        self._placed: dict[int, tuple[int, int, int, int, int]] = {}  # generation id -> what the terminal shows
        self._toasts = 0
        self.draw_times: list[float] | None = None  # set to a list to log when frames are drawn (benchmarks)
        self.moved_at = 0.0  # perf_counter of the last cursor move (benchmarks)

    # ------------------------------------------------------------------ geometry

    @property
    def graphics(self) -> Graphics:
        return graphics_of(self.app)

    @property
    def protocol(self) -> str:
        """How tile images are drawn: the app's graphics protocol, half cells without one."""
        proto = self.graphics.protocol
        return proto if proto in ("kitty", "sixel") else "halfcell"

    @property
    def tile_w(self) -> int:
        return self.tile_size[0] + 2  # a frame column each side

    @property
    def tile_h(self) -> int:
        return self.tile_size[1] + 2  # a caption line and a gap below

    @property
    def columns(self) -> int:
        if self.mode == "list":
            return 1
        return max(1, self._content_width() // self.tile_w)

    @property
    def row_height(self) -> int:
        return 1 if self.mode == "list" else self.tile_h

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
            pad = (self._content_width() - self.columns * self.tile_w) // 2
            col = (x - pad) // self.tile_w
            if not 0 <= col < self.columns:
                return None
            index = (line // self.tile_h) * self.columns + col
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
        self._drop_tile(generation_id)
        self._failed.discard(generation_id)

    def _drop_tile(self, generation_id: int) -> None:
        picture = self._tiles.pop(generation_id, None)
        placed = self._placed.pop(generation_id, None)
        if placed is not None:
            self.graphics.write(self.graphics.unplace(placed[0], self._placement))
        if picture is not None:
            self.graphics.forget(picture)

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
        scrolled = self.scroll_y
        self._scroll_to_cursor()
        if self.scroll_y != scrolled or self.mode == "list":
            self.refresh()
        else:
            # Only the two rows whose frames change are drawn again: a sixel row costs kilobytes to resend.
            for index in {old, new}:
                self.refresh(Region(0, (index // self.columns) * self.row_height - int(self.scroll_y),
                                    self.size.width, self.row_height))
        self._post_highlight()
        self._after_view_change()

    def validate_tile_size(self, value: tuple[int, int]) -> tuple[int, int]:
        return (max(4, min(200, value[0])), max(2, min(100, value[1])))

    def watch_tile_size(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        for generation_id in list(self._tiles):
            self._drop_tile(generation_id)
        self._failed.clear()
        self._drawn.clear()
        self._update_virtual_size()
        self.call_after_refresh(self._scroll_to_cursor, True)
        self.refresh()
        self._after_view_change()

    def step_tile_size(self, step: int) -> None:
        """One size bigger (1) or smaller (-1) among `TILE_SIZES` (the History screen's + and - keys)."""
        sizes = list(TILE_SIZES)
        current = min(range(len(sizes)), key=lambda i: abs(sizes[i][0] - self.tile_size[0]))
        self.tile_size = sizes[max(0, min(len(sizes) - 1, current + step))]

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
        self.graphics.refresh_origin()
        self._update_virtual_size()
        self._scroll_to_cursor()
        self._after_view_change()

    def on_mount(self) -> None:
        style = self.rich_style
        if style.bgcolor is not None:
            self._background = style.bgcolor.get_truecolor()[:3]
        self._placement = self.graphics.new_placement_id()
        self.app.screen_change_signal.subscribe(self, self._screen_changed, immediate=True)
        self._update_virtual_size()

    def on_unmount(self) -> None:
        self._unplace_all()

    def on_hide(self, event: events.Hide) -> None:
        self._unplace_all()

    def _screen_changed(self, screen: object) -> None:
        if not self.is_mounted:
            return
        if screen is not self.screen:
            self._unplace_all()  # placed kitty images would stay over the next screen
        self.refresh()

    def _unplace_all(self) -> None:
        if self._placed:
            graphics = self.graphics
            graphics.write("".join(graphics.unplace(p[0], self._placement) for p in self._placed.values()))
            self._placed.clear()

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
        batch: list[tuple[int, Picture | None, tuple[int, int]]] = []
        sent = time.monotonic()
        protocol, cell, size = self.protocol, self.graphics.cell, self.tile_size
        while (item := self._next_wanted()) is not None:
            picture: Picture | None = None
            try:
                path = self.thumb_loader(item)
                if path is not None:
                    picture = prepare_tile(path, size[0], size[1], protocol, cell, self._background)
            except (OSError, ValueError, Image.DecompressionBombError):
                picture = None  # unreadable or missing image: shown as "no image" once, not retried
            batch.append((item.id, picture, size))
            if time.monotonic() - sent > THUMB_BATCH_S:  # one redraw per batch, not per tile
                self.app.call_from_thread(self._tiles_ready, batch)
                batch, sent = [], time.monotonic()
            if size != self.tile_size:
                break  # the tile size changed: the next loader prepares the new size
        if batch:
            self.app.call_from_thread(self._tiles_ready, batch)

    def _tiles_ready(self, batch: list[tuple[int, Picture | None, tuple[int, int]]]) -> None:
        graphics = self.graphics
        for generation_id, picture, size in batch:
            self._inflight.discard(generation_id)
            if size != self.tile_size:
                continue  # made for the old tile size
            if picture is None:
                self._failed.add(generation_id)
            else:
                graphics.upload(picture)  # kitty: sent once, placed again as often as it is shown
                self._tiles[generation_id] = picture
        while len(self._tiles) > TILE_CACHE:
            self._drop_tile(next(iter(self._tiles)))
        self.refresh()
        self._after_view_change()

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
        if self.mode == "grid" and self.show_images and self.protocol != "halfcell":
            lines = self._draw_graphics(crop, lines)
        if self.draw_times is not None:
            self.draw_times.append(time.perf_counter())
        return lines

    def _draw_graphics(self, crop: Region, lines: list[Strip]) -> list[Strip]:
        """Sixel rows after each line's cells, kitty placements where tiles are (positions of this frame)."""
        try:
            active = self.screen.is_active
        except Exception:  # noqa: BLE001 - not on a screen yet
            active = False
        graphics = self.graphics
        if not active:
            self._unplace_all()
            return lines
        if graphics.protocol == "kitty" and graphics.placeholders:
            return lines  # placeholder cells are text: the terminal draws the images itself
        covers = overlays(self)
        if len(covers) != self._toasts:
            # A notification came or went: the lines under it were cut by Textual and lost their graphics.
            self._toasts = len(covers)
            self.call_later(self.refresh)
        region, content = self.region, self.content_region
        width, cols = self._content_width(), self.columns
        tile_w, tile_h, (img_cols, img_rows) = self.tile_w, self.tile_h, self.tile_size
        pad = (width - cols * tile_w) // 2
        scroll = int(self.scroll_y)
        content_top = content.y - region.y
        last_line = self.app.size.height - 1
        sixel = graphics.protocol == "sixel"
        wanted: dict[int, tuple[int, int, int, int, int]] = {}
        out = list(lines)
        for i in range(len(lines)):
            y = crop.y + i - content_top  # line within the content
            if not 0 <= y < content.height:
                continue
            screen_y = content.y + y
            row, sub = divmod(y + scroll, tile_h)
            controls = []
            for col in range(cols):
                item = self.model.get(row * cols + col)
                picture = self._tiles.get(item.id) if item is not None else None
                if picture is None:
                    continue
                top = (img_rows - picture.rows) // 2
                pic_row = sub - top
                if not 0 <= pic_row < picture.rows:
                    continue
                x = content.x + pad + col * tile_w + 1 + (img_cols - picture.cols) // 2
                if sixel:
                    if screen_y < last_line:  # a sixel on the terminal's last line would scroll it
                        controls.append(graphics.sixel_at(picture, pic_row, x, screen_y))
                elif item.id not in wanted and picture.image_id:
                    visible = min(picture.rows - pic_row, content.height - y)
                    box = Region(x, screen_y, picture.cols, visible)
                    if not any(box.overlaps(cover) for cover in covers):
                        wanted[item.id] = (picture.image_id, x, screen_y, pic_row, visible)
            if controls:
                out[i] = Strip([*lines[i], control_segment("".join(controls))], lines[i].cell_length)
        if not sixel:
            self._place_tiles(wanted)
        return out

    def _place_tiles(self, wanted: dict[int, tuple[int, int, int, int, int]]) -> None:
        """Move kitty placements to where the tiles are now; delete those of tiles that left the view."""
        graphics = self.graphics
        commands = [graphics.unplace(old[0], self._placement)
                    for gid, old in self._placed.items() if gid not in wanted or wanted[gid][0] != old[0]]
        for gid, want in wanted.items():
            if self._placed.get(gid) != want:
                picture = self._tiles[gid]
                commands.append(graphics.place(picture, self._placement, want[1], want[2], want[3], want[4]))
        self._placed = wanted
        if commands:
            graphics.write("".join(commands))

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
        row, sub = divmod(line, self.tile_h)
        cols = self.columns
        pad = (width - cols * self.tile_w) // 2
        parts: list[Strip] = [Strip.blank(pad, base)] if pad else []
        blank = Strip.blank(self.tile_w, base)
        for col in range(cols):
            index = row * cols + col
            parts.append(self._tile(index, base)[sub] if index < self.model.known_rows else blank)
        return Strip.join(parts).adjust_cell_length(width, base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn.clear()  # a theme or focus change restyles every tile

    def _tile(self, index: int, base: Style) -> list[Strip]:
        """The tile_h lines of one tile, drawn once per state (a scroll only joins cached lines)."""
        item = self.model.get(index)
        selected = index == self.cursor
        image: object
        if item is None:
            key: tuple = ("loading", selected, self.tile_size)
        else:
            picture = self._tiles.get(item.id)
            if picture is not None:
                self._tiles.move_to_end(item.id)
                image = (picture.serial, picture.image_id)
            else:
                image = "text" if not self.show_images else "failed" if item.id in self._failed else "waiting"
            key = (item.id, selected, item.rating, item.favorite, image, self.tile_size)
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
        tile_w, image_w = self.tile_w, self.tile_size[0]
        lines = [Strip.join([edge, image, edge]) for image in self._image_lines(item, base)]
        if item is None:
            lines.append(Strip([Segment(" " * tile_w, frame)], tile_w))
        else:
            caption = f"{stars(item.rating)} #{item.id}"[: image_w - 2]
            text_style = frame if selected else base + self.get_component_rich_style("thumbgrid--caption")
            heart_style = frame + self.get_component_rich_style("thumbgrid--favorite", partial=True) \
                if item.favorite and not selected else text_style
            body = [Segment("\u2665" if item.favorite else " ", heart_style), Segment(" " + caption, text_style)]
            lines.append(Strip([Segment(" ", frame), *body, Segment(" ", frame)]).adjust_cell_length(tile_w, frame))
        lines.append(Strip.blank(tile_w, base))
        return lines

    def _image_lines(self, item: HistoryItem | None, base: Style) -> list[Strip]:
        image_w, image_h = self.tile_size
        if item is not None and self.show_images and item.id in self._tiles:
            return text_rows(self._tiles[item.id], image_h, image_w, base)
        placeholder = base + self.get_component_rich_style("thumbgrid--placeholder")
        texts = [""] * image_h
        if item is None:
            texts[image_h // 2] = "\u2026"
        elif not self.show_images:
            wrapped = textwrap.wrap(" ".join(item.prompt.split()), image_w - 1, max_lines=image_h - 1,
                                    placeholder="\u2026")
            texts = [item.kind, *wrapped, *[""] * image_h][:image_h]
        elif item.id in self._failed:
            texts[image_h // 2] = "no image"
        return [Strip([Segment(f" {text}"[:image_w].ljust(image_w), placeholder)], image_w) for text in texts]
