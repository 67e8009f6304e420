"""The viewer and the grid's graphics, driven through the real app with the pilot: the viewer steps through
History's filter with the grid's cursor following, zooms and pans the full image, compares an image with its
parent (or any marked one) and lists their differences; the grid changes tile size, draws sixel rows after
each line's cells at their tile's position, and moves and deletes kitty placements as it scrolls."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.geometry import Region

from ddtui.tui.graphics.detect import Detection
from ddtui.tui.graphics.picture import Graphics
from ddtui.tui.screens.viewer import ViewerScreen
from ddtui.tui.viewing import crop_box, differences
from conftest import build_app, wait_for  # tests/tui/conftest.py
from tests.e2e.graphics_home import CHECKER_SIZE, PARENT_PROMPT, PROMPT, build


SIZE = (160, 48)
CHILD, PARENT = 12, 11  # ids in the graphics home: the checkerboard and its parent


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return build(tmp_path / "home", 12)


async def history(pilot, app):
    await pilot.press("f3")
    screen = await wait_for(pilot, lambda: app.screen if app.screen.__class__.__name__ == "HistoryScreen"
                            and app.screen.grid.current is not None else None, what="the History grid")
    return screen


async def viewer(pilot, app) -> ViewerScreen:
    return await wait_for(pilot, lambda: app.screen if isinstance(app.screen, ViewerScreen) and
                          app.screen.item is not None else None, what="the viewer with its image")


def status(screen: ViewerScreen) -> str:
    return str(screen.query_one("#viewer-status").render())


async def test_viewer_steps_through_the_filter_zooms_and_pans(home: Path):
    app = build_app(home, protocol="halfcell")
    async with app.run_test(size=SIZE) as pilot:
        hist = await history(pilot, app)
        assert hist.grid.current.id == CHILD
        await pilot.press("space")
        view = await viewer(pilot, app)
        image = view.left.view
        # the image file itself, not its 256-pixel thumbnail
        await wait_for(pilot, lambda: image.image_size == (CHECKER_SIZE, CHECKER_SIZE), what="the full image")
        await wait_for(pilot, lambda: image.picture is not None, what="the picture drawn")
        assert image.picture.rows >= 40  # as large as the screen allows: 48 lines less title, status, footer
        assert "1 / 12" in status(view) and view.item.generation_id == CHILD
        await pilot.press("n")
        await wait_for(pilot, lambda: view.item.generation_id == PARENT, what="the next image")
        assert hist.grid.cursor == 1  # the grid follows, so closing the viewer lands on it
        assert PARENT_PROMPT in str(view.left.query_one(".viewer-title").render())
        await pilot.press("p")
        await wait_for(pilot, lambda: view.item.generation_id == CHILD, what="the previous image")
        await pilot.press("plus", "plus")
        assert view.zoom == 2.0 and image._crop == (128, 128, 256, 256)
        assert "zoom 2\u00d7" in status(view)
        await pilot.press("right")
        assert image._crop[0] > 128 and image._crop[1] == 128
        await pilot.press("shift+down", "shift+down", "shift+down")
        assert image._crop[1] == CHECKER_SIZE - 256  # panning stops at the edge
        await pilot.press("0")
        assert image._crop is None and view.zoom == 1.0
        await pilot.press("end")
        await wait_for(pilot, lambda: view.item is not None and view.index == 11, what="the last image")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is hist, what="back in History")
        assert hist.grid.cursor == 11


async def test_compare_with_the_parent_lists_the_differences(home: Path):
    app = build_app(home, protocol="halfcell")
    async with app.run_test(size=SIZE) as pilot:
        await history(pilot, app)
        await pilot.press("C")
        view = await viewer(pilot, app)
        await wait_for(pilot, lambda: view.other is not None, what="the parent loaded")
        assert view.has_class("-compare")
        assert (view.other.generation_id, view.item.generation_id) == (PARENT, CHILD)
        diff = str(view.query_one("#viewer-diff").render())
        assert f"#{PARENT} \u2192 #{CHILD}" in diff
        assert re.search(r"seed\s+1\s+\u2192\s+2", diff) and re.search(r"steps\s+4\s+\u2192\s+8", diff)
        assert re.search(r"strength\s+\u2014\s+\u2192\s+0.6", diff) and PROMPT in diff
        assert "sampler" not in diff  # the same on both sides
        await wait_for(pilot, lambda: view.left.view.has_image and view.right.view.has_image, what="both images")
        await pilot.press("c")  # back to one image
        assert not view.has_class("-compare")


async def test_any_two_images_compare_after_marking_one(home: Path):
    app = build_app(home, protocol="halfcell")
    async with app.run_test(size=SIZE) as pilot:
        hist = await history(pilot, app)
        hist.grid.select_index(4)
        await pilot.press("space")
        view = await viewer(pilot, app)
        first = view.item.generation_id
        await pilot.press("m", "n")
        await wait_for(pilot, lambda: view.item.generation_id == first - 1, what="the next image")
        await pilot.press("c")
        await wait_for(pilot, lambda: view.other is not None, what="the marked image on the left")
        assert view.other.generation_id == first
        assert "a plain colour field" in str(view.query_one("#viewer-diff").render())


async def test_tile_size_keys(home: Path):
    app = build_app(home, protocol="halfcell")
    async with app.run_test(size=SIZE) as pilot:
        hist = await history(pilot, app)
        grid = hist.grid
        assert grid.tile_size == (24, 12)  # large enough to recognise an image
        columns = grid.columns
        await pilot.press("plus")
        assert grid.tile_size == (32, 16) and grid.columns < columns
        await pilot.press("minus", "minus", "minus")
        assert grid.tile_size == (16, 8) and grid.columns > columns
        await wait_for(pilot, lambda: grid.current.id in grid._tiles, what="tiles made again at the new size")
        assert grid._tiles[grid.current.id].cols == 16


def graphic_app(home: Path, protocol: str, placeholders: bool = False):
    app = build_app(home, protocol=protocol)
    graphics = Graphics(Detection(protocol, "test", placeholders=placeholders, cell=(6, 13)))
    graphics.bind(app)
    graphics.placeholders = placeholders
    graphics.sink = []
    app._ddtui_graphics = graphics  # type: ignore[attr-defined]
    return app, graphics


async def test_sixel_rows_follow_each_line_at_their_tile(home: Path):
    app, graphics = graphic_app(home, "sixel")
    async with app.run_test(size=SIZE) as pilot:
        hist = await history(pilot, app)
        grid = hist.grid
        await wait_for(pilot, lambda: all(i.id in grid._tiles for i in grid.model.items), what="every tile")
        region = grid.region
        lines = grid.render_lines(Region(0, 0, region.width, region.height))
        placed = []
        for y, line in enumerate(lines):
            for segment in line:
                if segment.control:
                    placed += [(int(r), int(c), y) for r, c in re.findall(r"\x1b7\x1b\[(\d+);(\d+)H\x1bP", segment.text)]
            assert line.cell_length == region.width  # the sixel data takes no cells
        assert placed, "no sixel drawn"
        # every sixel row sits on the screen line it was drawn after, inside the grid
        assert all(row - 1 == region.y + y for row, _, y in placed)
        columns = sorted({c for _, c, _ in placed})
        assert len(columns) == grid.columns
        assert columns[1] - columns[0] == grid.tile_w
        # a tile is 12 rows of 13 pixels: 144 wide squares fill them all
        first_column = [p for p in placed if p[1] == columns[0]]
        assert len(first_column) >= 12


async def test_kitty_tiles_are_sent_once_and_placed_again_while_scrolling(home: Path):
    app, graphics = graphic_app(home, "kitty")
    async with app.run_test(size=(200, 30)) as pilot:
        hist = await history(pilot, app)
        grid = hist.grid
        await wait_for(pilot, lambda: grid._placed, what="tiles placed")
        sent = [w for w in graphics.sink if "a=t," in w]
        ids = {int(m) for w in sent for m in re.findall(r"a=t,f=100,t=d,i=(\d+)", w)}
        assert len(ids) == len(sent) and ids
        placed_before = dict(grid._placed)
        graphics.sink.clear()
        await pilot.press("end")  # the last row: the first row's tiles leave the view
        await wait_for(pilot, lambda: grid._placed and set(grid._placed) - set(placed_before),
                       what="the tiles placed again")
        written = "".join(graphics.sink)
        gone = set(placed_before) - set(grid._placed)
        assert gone and all(f"a=d,d=i,i={placed_before[g][0]},p=" in written for g in gone)
        # nothing already sent is sent again: tiles still on screen are only moved
        again = {int(m) for m in re.findall(r"a=t,f=100,t=d,i=(\d+)", written)}
        kept = {placed_before[g][0] for g in set(placed_before) & set(grid._placed)}
        assert not again & kept
        await pilot.press("f1")  # another screen on top: the placements would cover it
        await wait_for(pilot, lambda: not grid._placed, what="the placements removed")


async def test_kitty_placeholders_are_text_cells_naming_the_image(home: Path):
    app, graphics = graphic_app(home, "kitty", placeholders=True)
    async with app.run_test(size=SIZE) as pilot:
        hist = await history(pilot, app)
        grid = hist.grid
        await wait_for(pilot, lambda: grid.current.id in grid._tiles and grid._tiles[grid.current.id].image_id,
                       what="the first tile sent")
        picture = grid._tiles[grid.current.id]
        assert any(f"a=p,U=1,i={picture.image_id}," in w for w in graphics.sink)  # its virtual placement
        region = grid.region
        lines = grid.render_lines(Region(0, 0, region.width, region.height))
        text = "".join(s.text for s in lines[1])
        assert "\U0010eeee" in text and not any(s.control for s in lines[1])
        assert not grid._placed  # nothing to move or delete: the terminal draws the cells


def test_crop_and_differences_helpers():
    assert crop_box((512, 512), 1.0, (0.5, 0.5)) is None
    assert crop_box((512, 256), 2.0, (0.5, 0.5)) == (128, 64, 256, 128)
    assert crop_box((512, 512), 4.0, (0.0, 1.0)) == (0, 384, 128, 128)  # clamped inside the image
    rows = differences({"seed": 1, "cfg": 7.0, "prompt": "a  cat", "options": 1},
                       {"seed": 2, "cfg": 7.0, "prompt": "a cat", "loras": [{"name": "x"}], "options": 2})
    assert rows == [("seed", "1", "2"), ("loras", "\u2014", '[{"name": "x"}]')]
