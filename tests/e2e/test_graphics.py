"""Images as a person sees them: ddtui in real terminals under Xvfb, checked by the pixels of screenshots.

- xterm in VT340 mode (sixel) and Debian's kitty 0.26 (kitty graphics without Unicode placeholders): the test
  image, a fine magenta and green checkerboard, must show in its History tile and in the detail panel with its
  squares resolved (in the tile they are smaller than a cell: no half-cell or text drawing can show that),
  every plain colour tile must be one clean colour (no escape text, no placeholder glyphs), and the viewer
  shows it large, zooms in (the squares grow) and compares it with its parent side by side;
- tmux in kitty with passthrough on: the same, drawn through tmux; with passthrough off, and tmux in xterm
  (tmux 3.3 cannot tell whether the xterm outside has sixel): clean half-cell tiles, and the pane's text holds
  no placeholder characters or escape debris.
Screenshots are kept under $DDTUI_SCREENSHOTS/ddtui-screenshots (else the temp dir) for a person to look at.

Needs Xvfb, xdotool, ImageMagick's `import`, and xterm / kitty / tmux (`.ci/run` installs them); without
them the tests skip and say what is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from .graphics_home import BLUE, RED, build, field_colour
from .terminals import (TOOLS, Box, Terminal, XServer, checkerboard_boxes, colour_box, missing, near, poll, save,
                        square_size, uniform)

ROOT = Path(__file__).resolve().parents[2]
FIELDS = 10  # plain colour fields in the home (12 images: the fields, the parent, the checkerboard)
TILE_COLS = 24  # the default tile's image width in cells

pytestmark = pytest.mark.skipif(bool(missing("Xvfb", "xdotool", "import")),
                                reason=f"needs {', '.join(missing('Xvfb', 'xdotool', 'import'))} "
                                       "(apt-get install -y xvfb xdotool imagemagick; .ci/run does)")


def needs(*names: str) -> pytest.MarkDecorator:
    gone = missing(*names)
    return pytest.mark.skipif(bool(gone), reason=f"needs {', '.join(gone)} (.ci/run installs it)")


@pytest.fixture(scope="module")
def xserver() -> Iterator[XServer]:
    x = XServer()
    yield x
    x.close()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    root = build(tmp_path / "home", FIELDS + 2)
    yield root
    subprocess.run([sys.executable, "-m", "ddtui", "--home", str(root), "serve", "--stop"], cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60)


def ddtui(home: Path) -> list[str]:
    return [sys.executable, "-m", "ddtui", "--home", str(home)]


def env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def in_tmux(home: Path, passthrough: bool, server: str) -> list[str]:
    """ddtui in a tmux of its own (a private server and config) with passthrough on or off."""
    conf = home / "tmux.conf"
    conf.write_text(f"set -g allow-passthrough {'on' if passthrough else 'off'}\nset -g status off\n")
    inner = " ".join(ddtui(home))
    return ["env", "-u", "TMUX", TOOLS["tmux"], "-L", server, "-f", str(conf), "new-session", inner]  # type: ignore


def pane_text(server: str) -> str:
    return subprocess.run([TOOLS["tmux"], "-L", server, "capture-pane", "-p"], capture_output=True,  # type: ignore
                          text=True, timeout=20).stdout


def kill_tmux(server: str) -> None:
    subprocess.run([TOOLS["tmux"], "-L", server, "kill-server"], capture_output=True, timeout=20)  # type: ignore


# ------------------------------------------------------------------ what must be on screen


def fields_on(shot: Image.Image, tolerance: int = 12) -> dict[int, Box]:
    found = {}
    for i in range(FIELDS):
        box = colour_box(shot, field_colour(i), tolerance)
        if box is not None and box.width > 20:
            found[i] = box
    return found


def history_with_graphics(term: Terminal) -> tuple[Image.Image, list[Box]]:
    """Open History (F3 until it shows: a key sent before the app reads keys is simply sent again)."""
    def shown() -> tuple[Image.Image, list[Box]] | None:
        term.keys("F3")
        shot = term.screenshot()
        boxes = checkerboard_boxes(shot)
        return (shot, boxes) if len(boxes) >= 2 and len(fields_on(shot)) >= 5 else None

    return poll(shown, 90, "the History grid and detail panel with the checkerboard", every=0.5)  # type: ignore


def history_with_halfcells(term: Terminal) -> Image.Image:
    def shown() -> Image.Image | None:
        term.keys("F3")
        shot = term.screenshot()
        return shot if len(fields_on(shot, 40)) >= 5 else None

    return poll(shown, 90, "the History grid in half cells", every=0.5)  # type: ignore


def check_graphics_history(shot: Image.Image, boxes: list[Box], name: str) -> None:
    path = save(shot, name)
    tile, detail = sorted(boxes, key=lambda b: b.left)[:2]
    assert tile.right < detail.left, f"the tile and the detail panel image ({path})"
    cell_width = tile.width / TILE_COLS
    tile_square, detail_square = square_size(shot, tile), square_size(shot, detail)
    # 32 squares across: finer than a cell in the tile, so only real graphics can resolve them.
    assert tile_square is not None and abs(tile_square - tile.width / 32) <= tile.width / 32 * 0.4, (tile, path)
    assert tile_square < cell_width * 0.95, f"tile squares {tile_square} px, cell {cell_width} px ({path})"
    assert detail_square is not None and abs(detail_square - detail.width / 32) <= detail.width / 32 * 0.4, path
    assert detail.width > tile.width * 1.2  # the detail panel shows it larger
    fields = fields_on(shot)
    assert len(fields) >= 5, f"plain colour tiles on screen: {sorted(fields)} ({path})"
    for i, box in fields.items():
        assert uniform(shot, box, field_colour(i), 12), f"tile {i} is not one clean colour ({path})"
        assert abs(box.width - tile.width) <= 3, f"tile {i} is {box.width} px wide, the checkerboard {tile.width}"


def check_viewer(term: Terminal, name: str) -> None:
    """Space opens the viewer large; + zooms (squares grow); escape, then C compares with the parent."""
    term.keys("space")

    def large() -> tuple[Image.Image, Box] | None:
        shot = term.screenshot()
        big = [b for b in checkerboard_boxes(shot) if b.width > shot.width * 0.4]
        return (shot, big[0]) if big else None

    shot, box = poll(large, 60, "the viewer showing the checkerboard large")  # type: ignore
    save(shot, f"{name}-viewer")
    fit = square_size(shot, box)
    assert fit is not None and abs(fit - box.width / 32) <= box.width / 32 * 0.25
    term.keys("plus", "plus")  # 1.5x, then 2x

    def zoomed() -> Image.Image | None:
        shot = term.screenshot()
        boxes = [b for b in checkerboard_boxes(shot) if b.width > shot.width * 0.4]
        size = square_size(shot, boxes[0]) if boxes else None
        return shot if size is not None and size > fit * 1.8 else None

    save(poll(zoomed, 60, "the squares twice as large after zooming in"), f"{name}-zoom")  # type: ignore
    term.keys("Escape")  # alone: an escape followed at once by a key reads as alt+key

    def back() -> bool:
        shot = term.screenshot()
        boxes = checkerboard_boxes(shot)
        return len(boxes) >= 2 and all(b.width < shot.width * 0.4 for b in boxes)

    poll(back, 60, "History again after the viewer closed")
    term.keys("C")

    def compared() -> Image.Image | None:
        shot = term.screenshot()
        pixels = np.asarray(shot)
        parent = near(pixels, np.array(RED), 40) | near(pixels, np.array(BLUE), 40)
        child = checkerboard_boxes(shot)
        if parent.sum() < 5000 or not child:
            return None
        parent_x = float(np.nonzero(parent)[1].mean())
        return shot if parent_x < child[0].left else None  # the parent on the left, the image on the right

    save(poll(compared, 60, "the image and its parent side by side"), f"{name}-compare")  # type: ignore
    term.keys("Escape")


def check_clean_halfcells(shot: Image.Image, name: str) -> None:
    path = save(shot, name)
    fields = fields_on(shot, 40)
    assert len(fields) >= 5, f"plain colour tiles: {sorted(fields)} ({path})"
    widths = sorted(b.width for b in fields.values())
    for i, box in fields.items():
        assert uniform(shot, box, field_colour(i), 40), f"tile {i} is not one clean colour ({path})"
        assert abs(box.width - widths[len(widths) // 2]) <= 3
    # Half cells cannot resolve the fine checkerboard: where its tile is, the colours mix.
    assert not [b for b in checkerboard_boxes(shot) if square_size(shot, b)], f"a fine pattern in half cells? {path}"


def clean_text(text: str) -> None:
    assert "\U0010eeee" not in text, "kitty placeholder characters drawn as text"
    for debris in ("\x1b", "Ptmux", "_Ga=", "q=2", "\"1;1;"):
        assert debris not in text, f"escape debris {debris!r} in the pane"


# ------------------------------------------------------------------ the terminals


@needs("xterm")
def test_xterm_sixel_shows_the_checkerboard_in_the_grid_the_detail_and_the_viewer(xserver: XServer, home: Path):
    term = Terminal.start(xserver, "xterm", ddtui(home), env())
    try:
        shot, boxes = history_with_graphics(term)
        check_graphics_history(shot, boxes, "xterm-sixel-history")
        check_viewer(term, "xterm-sixel")
    finally:
        term.close()


@needs("kitty")
def test_kitty_026_places_images_directly(xserver: XServer, home: Path):
    term = Terminal.start(xserver, "kitty", ddtui(home), env())
    try:
        shot, boxes = history_with_graphics(term)
        check_graphics_history(shot, boxes, "kitty-history")
        check_viewer(term, "kitty")
    finally:
        term.close()


@needs("kitty", "tmux")
def test_tmux_passthrough_on_in_kitty_draws_through_tmux(xserver: XServer, home: Path):
    server = f"ddtui-gx-{uuid.uuid4().hex[:8]}"
    term = Terminal.start(xserver, "kitty", in_tmux(home, True, server), env())
    try:
        shot, boxes = history_with_graphics(term)
        check_graphics_history(shot, boxes, "tmux-kitty-passthrough-on-history")
        clean_text(pane_text(server))
    finally:
        term.close()
        kill_tmux(server)


@needs("kitty", "tmux")
def test_tmux_passthrough_off_falls_back_to_clean_half_cells(xserver: XServer, home: Path):
    server = f"ddtui-gx-{uuid.uuid4().hex[:8]}"
    term = Terminal.start(xserver, "kitty", in_tmux(home, False, server), env())
    try:
        check_clean_halfcells(history_with_halfcells(term), "tmux-kitty-passthrough-off-history")
        clean_text(pane_text(server))
    finally:
        term.close()
        kill_tmux(server)


@needs("xterm", "tmux")
def test_tmux_in_xterm_cannot_confirm_sixel_and_draws_half_cells(xserver: XServer, home: Path):
    server = f"ddtui-gx-{uuid.uuid4().hex[:8]}"
    term = Terminal.start(xserver, "xterm", in_tmux(home, True, server), env())
    try:
        check_clean_halfcells(history_with_halfcells(term), "tmux-xterm-passthrough-on-history")
        clean_text(pane_text(server))
    finally:
        term.close()
        kill_tmux(server)
