"""The inpainting mask behind the mask editor: terminal cells mapped to image pixels, and every edit on it.

`CellGrid` maps the cells the image is drawn in to pixel boxes of the source image (the boxes tile the image
exactly, none empty). `MaskModel` holds the mask as a PIL "L" image at the source's resolution (255 = repaint)
and applies the editor's operations to it: brush dabs and strokes, rectangle and ellipse selections, invert,
clear, loading a mask file, undo/redo over a bounded stack of mask states, and the export with a feathered
(Gaussian-blurred) edge. Nothing here knows Textual, so all of it is unit-tested directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter, UnidentifiedImageError

PAINT = 255
ERASE = 0
MAX_BRUSH = 25
MAX_FEATHER = 64
UNDO_DEPTH = 40

Cell = tuple[int, int]  # (column, row)


class MaskFileError(ValueError):
    """A mask file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CellGrid:
    """`cols` x `rows` terminal cells showing a `width` x `height` image."""

    width: int
    height: int
    cols: int
    rows: int

    @classmethod
    def fit(cls, width: int, height: int, max_cols: int, max_rows: int, cell_aspect: float = 2.0) -> "CellGrid":
        """The largest grid inside `max_cols` x `max_rows` that keeps the image's shape; `cell_aspect` is a
        cell's height over its width. A cell never covers less than one pixel, so no cell maps to nothing."""
        max_cols, max_rows = max(1, min(max_cols, width)), max(1, min(max_rows, height))
        cols = min(max_cols, max(1, round(max_rows * cell_aspect * width / height)))
        rows = max(1, round(cols * height / (width * cell_aspect)))
        if rows > max_rows:
            rows = max_rows
            cols = max(1, min(max_cols, round(rows * cell_aspect * width / height)))
        return cls(width, height, cols, rows)

    def box(self, cell: Cell) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom; right and bottom exclusive) of one cell."""
        col, row = cell
        return (col * self.width // self.cols, row * self.height // self.rows,
                (col + 1) * self.width // self.cols, (row + 1) * self.height // self.rows)

    def cell_of(self, x: int, y: int) -> Cell:
        """The cell that shows pixel (x, y)."""
        return (self._index(x, self.width, self.cols), self._index(y, self.height, self.rows))

    @staticmethod
    def _index(pixel: int, pixels: int, cells: int) -> int:
        pixel = min(pixels - 1, max(0, pixel))
        index = pixel * cells // pixels
        while (index + 1) * pixels // cells <= pixel:  # the floor of the box edges can leave it one short
            index += 1
        while index * pixels // cells > pixel:
            index -= 1
        return index

    def contains(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.cols and 0 <= cell[1] < self.rows

    def clamp(self, cell: Cell) -> Cell:
        return min(self.cols - 1, max(0, cell[0])), min(self.rows - 1, max(0, cell[1]))


def brush_cells(center: Cell, size: int, cell_aspect: float = 2.0) -> list[Cell]:
    """The cells a round brush of `size` (1 = one cell) covers around `center`; rows count `cell_aspect`
    times a column, so the brush looks round on screen."""
    radius = size - 1
    reach_rows = int(radius / cell_aspect)
    cells = []
    for dr in range(-reach_rows, reach_rows + 1):
        for dc in range(-radius, radius + 1):
            if dc * dc + (dr * cell_aspect) ** 2 <= radius * radius + 0.5:
                cells.append((center[0] + dc, center[1] + dr))
    return cells


def rect_cells(a: Cell, b: Cell) -> list[Cell]:
    """Every cell of the rectangle with corners `a` and `b` (both included)."""
    (c0, c1), (r0, r1) = sorted((a[0], b[0])), sorted((a[1], b[1]))
    return [(c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]


def ellipse_cells(a: Cell, b: Cell) -> list[Cell]:
    """The cells whose centres lie in the ellipse inscribed in the rectangle of `a` and `b`."""
    (c0, c1), (r0, r1) = sorted((a[0], b[0])), sorted((a[1], b[1]))
    cx, cy = (c0 + c1 + 1) / 2, (r0 + r1 + 1) / 2
    rx, ry = (c1 - c0 + 1) / 2, (r1 - r0 + 1) / 2
    return [(c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
            if ((c + 0.5 - cx) / rx) ** 2 + ((r + 0.5 - cy) / ry) ** 2 <= 1.0]


def line_cells(a: Cell, b: Cell) -> list[Cell]:
    """The cells on the straight line from `a` to `b` (a fast mouse drag leaves no gaps)."""
    steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
    if steps == 0:
        return [a]
    return [(round(a[0] + (b[0] - a[0]) * i / steps), round(a[1] + (b[1] - a[1]) * i / steps))
            for i in range(steps + 1)]


class MaskModel:
    """The mask of one source image, edited through cells, with undo and redo."""

    def __init__(self, width: int, height: int, grid: CellGrid | None = None, cell_aspect: float = 2.0) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"an image of {width}x{height} cannot be masked")
        self.mask = Image.new("L", (width, height), ERASE)
        self.grid = grid or CellGrid(width, height, min(width, 64), min(height, 32))
        self.cell_aspect = cell_aspect
        self._undo: list[Image.Image] = []
        self._redo: list[Image.Image] = []

    @property
    def size(self) -> tuple[int, int]:
        return self.mask.size

    def set_grid(self, grid: CellGrid) -> None:
        """Show the same mask in another grid (the terminal was resized)."""
        if (grid.width, grid.height) != self.mask.size:
            raise ValueError("the grid is for another image size")
        self.grid = grid

    # ------------------------------------------------------------------ undo and redo

    def checkpoint(self) -> None:
        """Remember the mask as it is now, as one undo step (call before each user operation)."""
        self._undo.append(self.mask.copy())
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.mask)
        self.mask = self._undo.pop()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.mask)
        self.mask = self._redo.pop()
        return True

    @property
    def undo_depth(self) -> int:
        return len(self._undo)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # ------------------------------------------------------------------ edits (each a new undo step)

    def fill_cells(self, cells: list[Cell], value: int = PAINT, *, step: bool = True) -> int:
        """Set every (on-image) cell of `cells` to `value`; `step=False` adds to the current undo step (a
        stroke). Returns how many cells were inside the image."""
        if step:
            self.checkpoint()
        count = 0
        for cell in dict.fromkeys(cells):
            if self.grid.contains(cell):
                self.mask.paste(value, self.grid.box(cell))
                count += 1
        return count

    def dab(self, center: Cell, size: int, value: int = PAINT, *, step: bool = True) -> int:
        """One brush dab."""
        return self.fill_cells(brush_cells(center, size, self.cell_aspect), value, step=step)

    def stroke_to(self, start: Cell, end: Cell, size: int, value: int = PAINT) -> int:
        """Continue a stroke from `start` to `end` (part of the stroke's undo step)."""
        cells: list[Cell] = []
        for point in line_cells(start, end):
            cells.extend(brush_cells(point, size, self.cell_aspect))
        return self.fill_cells(cells, value, step=False)

    def fill_rect(self, a: Cell, b: Cell, value: int = PAINT) -> int:
        return self.fill_cells(rect_cells(self.grid.clamp(a), self.grid.clamp(b)), value)

    def fill_ellipse(self, a: Cell, b: Cell, value: int = PAINT) -> int:
        return self.fill_cells(ellipse_cells(self.grid.clamp(a), self.grid.clamp(b)), value)

    def invert(self) -> None:
        self.checkpoint()
        self.mask = ImageChops.invert(self.mask)

    def clear(self) -> None:
        self.checkpoint()
        self.mask = Image.new("L", self.mask.size, ERASE)

    def load(self, path: str | Path) -> str:
        """Replace the mask with a file's (white = repaint); returns a note when it had to be resized.
        Raises MaskFileError for a missing or unreadable file."""
        mask, note = read_mask_file(path, self.mask.size)
        self.replace(mask)
        return note

    def replace(self, mask: Image.Image) -> None:
        """Use `mask` (an "L" image of the source's size) from now on, as one undo step."""
        if mask.mode != "L" or mask.size != self.mask.size:
            raise ValueError(f"a mask must be an L image of {self.mask.width}x{self.mask.height}")
        self.checkpoint()
        self.mask = mask

    # ------------------------------------------------------------------ reading it

    def is_empty(self) -> bool:
        return self.mask.getbbox() is None

    def coverage(self) -> float:
        """The share of the image marked for repainting, 0..1."""
        histogram = self.mask.histogram()
        total = self.mask.width * self.mask.height
        return sum(i * n for i, n in enumerate(histogram)) / (255 * total)

    def cell_values(self) -> Image.Image:
        """The mask averaged per cell: an "L" image of `cols` x `rows`."""
        return self.mask.resize((self.grid.cols, self.grid.rows), Image.Resampling.BOX)

    def export(self, feather: float = 0.0) -> Image.Image:
        """The mask to send: a copy, its edge blurred by `feather` pixels (a Gaussian radius)."""
        if feather <= 0:
            return self.mask.copy()
        return self.mask.filter(ImageFilter.GaussianBlur(min(float(feather), MAX_FEATHER)))


def read_mask_file(path: str | Path, size: tuple[int, int]) -> tuple[Image.Image, str]:
    """A mask file as an "L" image of `size` (white = repaint; a transparent-background mask's opaque
    pixels count as white), and a note when it had to be resized. Raises MaskFileError."""
    if not str(path).strip():
        raise MaskFileError("give the path of a mask image (white = repaint)")
    p = Path(path).expanduser()
    if not p.is_file():
        raise MaskFileError(f"no file at {p}")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                loaded = im.convert("RGBA").getchannel("A")
                if loaded.getextrema() == (255, 255):  # fully opaque: the alpha says nothing, the grey does
                    loaded = im.convert("L")
            else:
                loaded = im.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MaskFileError(f"{p} is not a readable image ({exc})") from None
    if loaded.size == size:
        return loaded, ""
    note = f"resized from {loaded.width}x{loaded.height} to {size[0]}x{size[1]}"
    return loaded.resize(size, Image.Resampling.BILINEAR), note


BRUSH_COLOUR = (255, 230, 0)
SELECTION_COLOUR = (245, 245, 245)


def overlay(image: Image.Image, model: MaskModel, size: tuple[int, int], brush: Iterable[Cell] = (),
            selection: Iterable[Cell] = (), tint: tuple[int, int, int] = (255, 30, 60), strength: float = 0.6
            ) -> Image.Image:
    """`image` at `size` with the mask tinted over it, the `brush` cells solid yellow and the `selection`
    as a white checkerboard (both stand out on any picture, even in a 256-colour terminal).

    `size` should be the pixels the terminal draws (`cols` x `2*rows` for half cells), so each cell's tint
    covers exactly that cell."""
    base = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    mask = model.mask.resize(size, Image.Resampling.BOX)
    # Grey first, then tint: the masked area reads as the tint colour whatever the picture's colours are.
    tinted = Image.blend(base.convert("L").convert("RGB"), Image.new("RGB", size, tint), strength)
    out = Image.composite(tinted, base, mask)
    grid = model.grid
    sx, sy = size[0] / grid.cols, size[1] / grid.rows

    def box(cell: Cell) -> tuple[int, int, int, int]:
        left, top = math.floor(cell[0] * sx), math.floor(cell[1] * sy)
        return left, top, max(left + 1, math.floor((cell[0] + 1) * sx)), max(top + 1, math.floor((cell[1] + 1) * sy))

    for cell in dict.fromkeys(selection):
        if grid.contains(cell) and (cell[0] + cell[1]) % 2 == 0:  # a checkerboard: the mask shows between
            out.paste(SELECTION_COLOUR, box(cell))
    for cell in dict.fromkeys(brush):
        if grid.contains(cell):
            out.paste(BRUSH_COLOUR, box(cell))
    return out
