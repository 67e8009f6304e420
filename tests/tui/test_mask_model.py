"""The inpainting mask model on its own: cells mapped to pixels, brush, rectangle and ellipse selections, invert,
clear, undo/redo, feathering, mask files, and the overlay the editor draws."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ddtui.tui.mask_model import (
    BRUSH_COLOUR,
    ERASE,
    PAINT,
    SELECTION_COLOUR,
    UNDO_DEPTH,
    CellGrid,
    MaskFileError,
    MaskModel,
    brush_cells,
    ellipse_cells,
    line_cells,
    overlay,
    read_mask_file,
)


def white(model: MaskModel) -> set[tuple[int, int]]:
    """The pixels marked for repainting."""
    w, h = model.size
    data = model.mask.load()
    return {(x, y) for y in range(h) for x in range(w) if data[x, y] == PAINT}


def values(image: Image.Image) -> set[int]:
    return {v for v, n in enumerate(image.histogram()) if n}


def model_on(width: int, height: int, cols: int, rows: int) -> MaskModel:
    return MaskModel(width, height, CellGrid(width, height, cols, rows))


def test_cells_tile_the_image_exactly_and_every_pixel_finds_its_cell():
    for grid in (CellGrid(64, 64, 64, 32), CellGrid(512, 768, 53, 40), CellGrid(100, 37, 7, 5)):
        covered = 0
        for row in range(grid.rows):
            for col in range(grid.cols):
                left, top, right, bottom = grid.box((col, row))
                assert right > left and bottom > top  # no cell maps to nothing
                covered += (right - left) * (bottom - top)
        assert covered == grid.width * grid.height
        for x, y in ((0, 0), (grid.width - 1, grid.height - 1), (grid.width // 3, grid.height // 2)):
            left, top, right, bottom = grid.box(grid.cell_of(x, y))
            assert left <= x < right and top <= y < bottom


def test_fit_keeps_the_shape_and_never_goes_below_a_pixel_per_cell():
    assert CellGrid.fit(64, 64, 110, 43) == CellGrid(64, 64, 64, 32)  # half cells: 1x2 pixels each
    tall = CellGrid.fit(512, 768, 100, 40)
    assert tall.rows == 40 and abs(tall.cols / (tall.rows * 2) - 512 / 768) < 0.05
    wide = CellGrid.fit(1024, 256, 100, 40)
    assert wide.cols == 100 and abs(wide.cols / (wide.rows * 2) - 4) < 0.5


def test_brush_dab_paints_whole_cells_and_erase_takes_them_back():
    model = model_on(64, 64, 64, 32)
    model.dab((10, 5), 1)
    assert white(model) == {(10, 10), (10, 11)}  # one cell = one column, two pixel rows
    assert brush_cells((10, 5), 2) == [(9, 5), (10, 5), (11, 5)]
    assert len(brush_cells((10, 5), 3)) > 3 and (10, 4) in brush_cells((10, 5), 3)
    model.dab((10, 5), 2)
    assert white(model) == {(x, y) for x in (9, 10, 11) for y in (10, 11)}
    model.dab((9, 5), 1, ERASE)
    assert (9, 10) not in white(model) and (10, 10) in white(model)


def test_rectangle_selection_fills_every_cell_between_the_corners():
    model = model_on(64, 64, 64, 32)
    model.fill_rect((5, 3), (2, 1))  # corners in any order
    assert white(model) == {(x, y) for x in range(2, 6) for y in range(2, 8)}
    model.fill_rect((3, 2), (4, 2), ERASE)
    assert (3, 4) not in white(model) and (3, 6) in white(model)
    model.fill_rect((60, 30), (99, 99))  # clamped to the image
    assert (63, 63) in white(model)


def test_ellipse_selection_is_round_inside_its_rectangle():
    cells = set(ellipse_cells((0, 0), (8, 8)))
    assert (4, 4) in cells and (4, 0) in cells and (0, 4) in cells
    assert (0, 0) not in cells and (8, 8) not in cells and (8, 0) not in cells
    assert cells == {(8 - c, r) for c, r in cells}  # symmetric
    model = model_on(64, 64, 64, 32)
    model.fill_ellipse((0, 0), (8, 8))
    assert len(white(model)) == 2 * len(cells)


def test_invert_clear_and_undo_redo_walk_the_stack_of_masks():
    model = model_on(64, 64, 64, 32)
    model.fill_rect((0, 0), (31, 31))  # the left half
    half = white(model)
    model.invert()
    assert white(model) == {(x, y) for x in range(32, 64) for y in range(64)}
    model.clear()
    assert model.is_empty()
    assert model.undo() and white(model) == {(x, y) for x in range(32, 64) for y in range(64)}
    assert model.undo() and white(model) == half
    assert model.undo() and model.is_empty()
    assert not model.undo()
    assert model.redo() and white(model) == half
    model.dab((40, 10), 1)  # a new edit drops what could be redone
    assert not model.can_redo
    for i in range(UNDO_DEPTH + 10):
        model.dab((i % 64, 0), 1)
    assert model.undo_depth == UNDO_DEPTH


def test_a_drag_is_one_undo_step_without_gaps():
    model = model_on(64, 64, 64, 32)
    model.checkpoint()
    model.dab((0, 0), 1, step=False)
    model.stroke_to((0, 0), (6, 3), 1)
    assert {(c, r) for c, r in line_cells((0, 0), (6, 3))} <= {(x, y // 2) for x, y in white(model)}
    assert len(line_cells((0, 0), (6, 3))) == 7
    assert model.undo_depth == 1
    model.undo()
    assert model.is_empty()


def test_feathering_blurs_the_edge_only_in_the_export():
    model = model_on(64, 64, 64, 32)
    model.fill_rect((16, 8), (47, 23))
    hard = model.export(0)
    assert values(hard) == {0, 255}
    soft = model.export(4)
    assert soft.mode == "L" and soft.size == (64, 64)
    assert 0 < soft.getpixel((14, 32)) < 255  # outside the square, now partly masked
    assert soft.getpixel((32, 32)) == 255 and soft.getpixel((0, 0)) == 0
    assert values(model.mask) == {0, 255}  # the edited mask itself stays hard


def test_mask_files_missing_corrupt_resized_and_transparent(tmp_path: Path):
    model = model_on(64, 64, 64, 32)
    with pytest.raises(MaskFileError, match="no file at"):
        model.load(tmp_path / "missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(MaskFileError, match="not a readable image"):
        model.load(broken)
    with pytest.raises(MaskFileError, match="give the path"):
        model.load("  ")
    assert model.is_empty() and model.undo_depth == 0  # failed loads change nothing
    big = Image.new("L", (128, 128), 0)
    big.paste(255, (0, 0, 64, 128))
    big.save(tmp_path / "big.png")
    note = model.load(tmp_path / "big.png")
    assert "resized from 128x128 to 64x64" in note
    assert model.mask.getpixel((10, 10)) == 255 and model.mask.getpixel((50, 10)) == 0
    cutout = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    cutout.paste((255, 255, 255, 255), (0, 0, 8, 8))
    cutout.save(tmp_path / "cutout.png")
    mask, note = read_mask_file(tmp_path / "cutout.png", (64, 64))
    assert note == "" and mask.getpixel((2, 2)) == 255 and mask.getpixel((20, 20)) == 0


def test_overlay_tints_masked_cells_and_marks_the_brush_and_selection():
    picture = Image.new("RGB", (64, 64), (0, 200, 200))
    model = model_on(64, 64, 64, 32)
    model.dab((3, 3), 1)
    drawn = overlay(picture, model, (64, 64), brush=[(10, 10)], selection=[(20, 5), (21, 5)])
    r, g, b = drawn.getpixel((3, 6))
    assert r > 150 and g < 150 and b < 150  # reddish where masked, whatever the picture's colour
    assert drawn.getpixel((30, 30)) == (0, 200, 200)  # untouched elsewhere
    assert drawn.getpixel((10, 20)) == drawn.getpixel((10, 21)) == BRUSH_COLOUR  # the whole brush cell
    assert drawn.getpixel((21, 10)) == SELECTION_COLOUR  # a checkerboard: every other selected cell
    assert drawn.getpixel((20, 10)) == drawn.getpixel((22, 10)) == (0, 200, 200)
