"""Pictures prepared for a box of cells, and `Graphics`: how an app's pictures reach its terminal.

`prepare` (any thread) fits an image into `cols` x `rows` cells, keeping its shape, and encodes it once for the
protocol: half-cell strips, one sixel sequence per cell row (read from and written to a cache file when given),
or a PNG for kitty. A widget then draws a prepared picture on each of its lines:

- half cells and kitty placeholders are ordinary text cells (`text_rows`);
- sixel and directly placed kitty images cover blank cells. A sixel row is painted right after Textual wrote the
  line's cells (a trailing control segment, `Graphics.sixel_at`), because text written over sixel pixels erases
  them; a kitty placement sits above the text until it is moved or deleted (`Graphics.place`), so widgets send
  it when the picture moves and delete it when it goes away.

Positions are absolute screen cells, computed at every draw (never cached in a strip), and inside tmux they are
offset by the pane's origin and wrapped for passthrough, since tmux hands such data on without moving the real
cursor first.
"""

from __future__ import annotations

import io
import itertools
import os
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from rich.color import Color
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.strip import Strip

from . import kitty, sixel
from .detect import DEFAULT_CELL, Detection, tmux_pane_origin

if TYPE_CHECKING:
    from textual.app import App

HALF = "\u2580"  # upper half block: foreground is the top pixel, background the bottom one
UPLOADED_KEPT = 600  # kitty images kept in the terminal; older ones are deleted from it
_SIXEL_CACHE_VERSION = b"ddtui-sixel-1\n"
_serials = itertools.count(1)


@dataclass(eq=False)
class Picture:
    """One image fitted into a box, encoded for one protocol (`cols` x `rows` cells, at most the box)."""

    protocol: str
    cols: int
    rows: int
    pixels: tuple[int, int] = (0, 0)  # size of the encoded canvas (sixel, kitty)
    halfcell: list[Strip] | None = None
    sixel: list[str] | None = None
    png: bytes | None = None  # kitty: sent once, then dropped
    image_id: int = 0  # kitty: the terminal's id for it once sent
    source_size: tuple[int, int] = (0, 0)
    meta: dict[str, Any] = field(default_factory=dict)
    serial: int = field(default_factory=lambda: next(_serials))  # tells drawn copies of two pictures apart

    @property
    def graphic(self) -> bool:
        """Drawn over blank cells (sixel, kitty) rather than as text cells (half cells)."""
        return self.protocol in ("sixel", "kitty")


def fit(size: tuple[int, int], cols: int, rows: int, protocol: str, cell: tuple[int, int],
        upscale: bool = True, stretch: bool = False) -> tuple[int, int, int, int]:
    """(cols, rows, pixel width, pixel height) of an image of `size` fitted into the box, keeping its shape
    (`stretch`: filling the box exactly)."""
    width, height = max(1, size[0]), max(1, size[1])
    if protocol == "halfcell":
        box_w, box_h, cw, ch = cols, rows * 2, 1, 2
    else:
        cw, ch = cell
        box_w, box_h = cols * cw, rows * ch
    if stretch:
        return cols, rows, box_w, box_h
    scale = min(box_w / width, box_h / height)
    if not upscale:
        scale = min(scale, 1.0)
    pw, ph = max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale)))
    return max(1, -(-pw // cw)), max(1, -(-ph // ch)), pw, ph


def _halfcell_strips(image: Image.Image, cols: int, rows: int, background: tuple[int, int, int]) -> list[Strip]:
    canvas = Image.new("RGB", (cols, rows * 2), background)
    if image.mode == "RGBA":
        canvas.paste(image, ((cols - image.width) // 2, (rows * 2 - image.height) // 2), image)
    else:
        canvas.paste(image.convert("RGB"), ((cols - image.width) // 2, (rows * 2 - image.height) // 2))
    data = canvas.tobytes()
    strips = []
    for row in range(rows):
        top, bottom = 2 * row * cols * 3, (2 * row + 1) * cols * 3
        segments = [
            Segment(HALF, Style(color=Color.from_rgb(*data[top + 3 * x: top + 3 * x + 3]),
                                bgcolor=Color.from_rgb(*data[bottom + 3 * x: bottom + 3 * x + 3])))
            for x in range(cols)
        ]
        strips.append(Strip(Segment.simplify(segments), cols))
    return strips


def _read_sixel_cache(path: Path, rows: int) -> list[str] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(_SIXEL_CACHE_VERSION):
        return None
    parts = data[len(_SIXEL_CACHE_VERSION):].split(b"\n")
    if len(parts) != rows or not all(p.startswith(b"\x1bP") and p.endswith(b"\x1b\\") for p in parts):
        return None
    return [p.decode("ascii") for p in parts]


def _write_sixel_cache(path: Path, sequences: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(_SIXEL_CACHE_VERSION + "\n".join(sequences).encode("ascii"))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a cache that cannot be written is made again next time


def sixel_cache_path(thumbnail: Path, cols: int, rows: int, cell: tuple[int, int]) -> Path:
    """Where the sixel encoding of a thumbnail drawn in a box is kept: beside the thumbnail."""
    return thumbnail.with_name(f"{thumbnail.stem}.{cols}x{rows}.{cell[0]}x{cell[1]}.six")


def prepare(image: Image.Image, cols: int, rows: int, protocol: str, cell: tuple[int, int] = DEFAULT_CELL, *,
            background: tuple[int, int, int] = (24, 24, 24), sixel_cache: Path | None = None,
            source_mtime: float | None = None, upscale: bool = True, stretch: bool = False) -> Picture:
    """Fit `image` into `cols` x `rows` cells and encode it for `protocol` (blocking: call it in a thread)."""
    cols, rows = max(1, cols), max(1, rows)
    pcols, prows, pw, ph = fit(image.size, cols, rows, protocol, cell, upscale, stretch)
    source_size = image.size
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    resized = image.resize((pw, ph), Image.Resampling.LANCZOS) if (pw, ph) != image.size else image
    if protocol == "halfcell":
        return Picture("halfcell", pcols, prows, halfcell=_halfcell_strips(resized, pcols, prows, background),
                       source_size=source_size)
    cw, ch = cell
    canvas = Image.new("RGBA", (pcols * cw, prows * ch), (0, 0, 0, 0))
    canvas.paste(resized.convert("RGBA"), ((pcols * cw - pw) // 2, (prows * ch - ph) // 2))
    if protocol == "sixel":
        sequences = None
        if sixel_cache is not None:
            fresh = source_mtime is None or _mtime(sixel_cache) >= source_mtime
            sequences = _read_sixel_cache(sixel_cache, prows) if fresh else None
        if sequences is None:
            sequences = [row.decode("ascii") for row in sixel.encode_rows(canvas, ch)]
            if sixel_cache is not None:
                _write_sixel_cache(sixel_cache, sequences)
        return Picture("sixel", pcols, prows, canvas.size, sixel=sequences, source_size=source_size)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=1)
    return Picture("kitty", pcols, prows, canvas.size, png=buffer.getvalue(), source_size=source_size)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


_CONTROL = ((ControlType.CURSOR_FORWARD, 0),)


def control_segment(sequence: str) -> Segment:
    """Raw terminal data in a strip: no cells of its own, written as it is (no style around it)."""
    return Segment(sequence, None, _CONTROL)  # type: ignore[arg-type]


def text_rows(picture: Picture | None, rows: int, cols: int, style: Style) -> list[Strip]:
    """The text cells of a picture centred in a `cols` x `rows` box: half cells, kitty placeholders, or blanks
    under a sixel or a directly placed kitty image."""
    blank = Strip.blank(cols, style)
    if picture is None:
        return [blank] * rows
    top = (rows - picture.rows) // 2
    left = (cols - picture.cols) // 2
    right = cols - picture.cols - left
    if picture.protocol == "halfcell" and picture.halfcell is not None:
        middle = picture.halfcell
    elif picture.protocol == "kitty" and picture.meta.get("placeholders") and picture.image_id:
        colour = Style(color=Color.from_rgb(*kitty.id_colour(picture.image_id)))
        middle = [Strip([Segment(kitty.placeholder_row(r, picture.cols), style + colour)], picture.cols)
                  for r in range(picture.rows)]
    else:
        middle = [Strip.blank(picture.cols, style)] * picture.rows
    out = [blank] * top
    pad_l, pad_r = Strip.blank(left, style), Strip.blank(right, style)
    out += [Strip.join([pad_l, line, pad_r]) for line in middle]
    out += [blank] * (rows - len(out))
    return out[:rows]


class Graphics:
    """The app's protocol and its terminal: kitty uploads by id, placements, sixel positions, tmux wrapping."""

    def __init__(self, detection: Detection) -> None:
        self.detection = detection
        self.protocol = detection.protocol
        self.cell = detection.cell
        self.wrap = detection.wrap
        self.placeholders = detection.protocol == "kitty" and detection.placeholders
        self.origin = (0, 0)  # the app's top-left cell on the real terminal (tmux: the pane's)
        self._app: App[Any] | None = None
        self._next_id = random.randint(1 << 16, 1 << 23)  # 24-bit ids: placeholders carry them as a colour
        self._next_placement = 0
        self._uploaded: OrderedDict[int, Picture] = OrderedDict()
        self._free_ids: list[int] = []
        self.sink: list[str] | None = None  # set to a list to keep what would be written (tests, benchmarks)
        if self.wrap:
            self.refresh_origin()

    def bind(self, app: "App[Any]") -> None:
        self._app = app
        # Placeholders name their image by a 24-bit foreground colour: fewer colours would name another image.
        if self.placeholders and getattr(app.console, "color_system", "truecolor") != "truecolor":
            self.placeholders = False

    @property
    def graphic(self) -> bool:
        return self.protocol in ("sixel", "kitty")

    @property
    def direct(self) -> bool:
        """Kitty images placed at the cursor (no placeholders): widgets must move and delete them."""
        return self.protocol == "kitty" and not self.placeholders

    def refresh_origin(self) -> None:
        if self.wrap:
            self.origin = tmux_pane_origin()

    # ------------------------------------------------------------------ terminal output

    def write(self, data: str) -> None:
        """Write graphics commands to the terminal in order with Textual's frames (its driver's queue)."""
        if not data:
            return
        if self.sink is not None:
            self.sink.append(data)
            return
        app = self._app
        driver = getattr(app, "_driver", None) if app is not None else None
        if driver is None or app is None or app.is_headless:
            return
        driver.write(data)

    def _out(self, sequence: str) -> str:
        return kitty_or_sixel_for_tmux(sequence) if self.wrap else sequence

    def _at(self, x: int, y: int, sequence: str) -> str:
        """`sequence` drawn at screen cell (x, y); the cursor is saved and restored around it."""
        row, col = self.origin[0] + y + 1, self.origin[1] + x + 1
        return self._out(f"\x1b7\x1b[{row};{col}H{sequence}\x1b8")

    # ------------------------------------------------------------------ kitty

    def upload(self, picture: Picture) -> None:
        """Send a kitty picture to the terminal once; it gets its id (and virtual placement with placeholders).

        Ids of forgotten pictures are used again: sending an image under an id replaces the terminal's copy,
        which frees it. (Deleting with the data, d=I, would do too, but kitty 0.26 then also drops every image
        sent and not placed yet: the tiles just ahead of the view.)"""
        if picture.protocol != "kitty" or picture.image_id or picture.png is None:
            return
        if self._free_ids:
            picture.image_id = self._free_ids.pop()
        else:
            self._next_id = self._next_id + 1 if self._next_id < (1 << 24) - 1 else 1 << 16
            picture.image_id = self._next_id
        picture.meta["placeholders"] = self.placeholders
        commands = kitty.transmit(picture.image_id, picture.png)
        if self.placeholders:
            commands.append(kitty.virtual_placement(picture.image_id, picture.cols, picture.rows))
        self.write("".join(self._out(c) for c in commands))
        picture.png = None
        self._uploaded[picture.image_id] = picture
        while len(self._uploaded) > UPLOADED_KEPT:
            self.forget(next(iter(self._uploaded.values())))

    def forget(self, picture: Picture | None) -> None:
        """The picture is shown nowhere any more: its placements go, and its id is free for the next one."""
        if picture is not None and picture.image_id and self._uploaded.pop(picture.image_id, None) is not None:
            self.write(self._out(kitty.delete_placements(picture.image_id)))
            self._free_ids.append(picture.image_id)
            picture.image_id = 0

    def new_placement_id(self) -> int:
        self._next_placement += 1
        return self._next_placement

    def place(self, picture: Picture, placement_id: int, x: int, y: int, first_row: int = 0,
              rows: int | None = None) -> str:
        """The command that shows rows `first_row`.. of a kitty picture at screen cell (x, y)."""
        rows = picture.rows - first_row if rows is None else rows
        ch = picture.pixels[1] // max(1, picture.rows)
        src = None
        if first_row or rows != picture.rows:
            src = (0, first_row * ch, picture.pixels[0], rows * ch)
        return self._at(x, y, kitty.place(picture.image_id, placement_id, picture.cols, rows, src=src))

    def unplace(self, image_id: int, placement_id: int) -> str:
        return self._out(kitty.delete_placement(image_id, placement_id))

    # ------------------------------------------------------------------ sixel

    def sixel_at(self, picture: Picture, row: int, x: int, y: int) -> str:
        """Row `row` of a sixel picture painted at screen cell (x, y)."""
        assert picture.sixel is not None
        return self._at(x, y, picture.sixel[row])


def overlays(widget: Any) -> list[Any]:
    """Regions of the notifications shown over the screen: a directly placed kitty image would cover them."""
    try:
        return [toast.region for toast in widget.screen.query("Toast")]
    except Exception:  # noqa: BLE001 - no screen: nothing over it
        return []


def kitty_or_sixel_for_tmux(sequence: str) -> str:
    """A DCS passthrough envelope: tmux hands the inner sequence to the outer terminal unchanged."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def graphics_of(app: "App[Any]") -> Graphics:
    """The app's `Graphics`: from the detection made at launch when it chose the app's protocol, else plain."""
    found = getattr(app, "_ddtui_graphics", None)
    if isinstance(found, Graphics):
        return found
    protocol = getattr(app, "image_protocol", "halfcell")
    from .detect import last_detection

    detection = last_detection()
    if detection is None or detection.protocol != protocol:
        detection = Detection(protocol, "set by the app")
    graphics = Graphics(detection)
    graphics.bind(app)
    try:
        app._ddtui_graphics = graphics  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return graphics
