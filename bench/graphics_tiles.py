"""Benchmark: drawing a screen of 40 graphics tiles in the History grid once the thumbnails are cached.

A home of real images (recorded, thumbnails made) is opened headless at 300x80 cells, where the grid shows 8x5
tiles of the default 24x12 cells (plus a partial row), with each protocol's real drawing path:
- sixel: tiles are encoded once and the encoding is kept beside the thumbnail; the figure is a page down to a
  screen whose encodings are cached (a previous session made them): reading 40+ tiles and rendering the frame.
  The first encoding of a screen is printed too (what a session pays once per tile and size);
- kitty placed directly (kitty 0.26) and kitty with Unicode placeholders (0.28+): tiles are prepared as PNG,
  sent once by image id and placed; the figure is a page down to a screen of new tiles;
- half cells: for comparison.
A page down is timed from the key to the frame rendered into the terminal sequence Textual would write, every
visible tile drawn. The redraw of a screen whose tiles are all in memory (a cursor move or scroll back) is
printed as the frame time. Medians over several pages.
Run: python bench/graphics_tiles.py [--images N] [--pages N]
The last line is parseable: RESULT tiles_sixel_ms=... tiles_kitty_ms=... tiles_placeholders_ms=... ...
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = (300, 80)
CELL = (8, 16)
GOAL_MS = 150.0
PROTOCOLS = (("sixel", "sixel", False), ("kitty", "kitty", False), ("placeholders", "kitty", True),
             ("halfcell", "halfcell", False))


def make_home(root: Path, count: int) -> None:
    """Real images with some detail (gradients and noise, like generated ones), recorded with thumbnails."""
    import numpy as np
    from PIL import Image

    from ddtui.config import load_config, resolve_home
    from ddtui.core.recording import Recorder
    from ddtui.core.thumbnails import make_thumbnail
    from ddtui.db.schema import open_database

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"workers": {"local_sd": False, "local_llm": False}}))
    home = resolve_home(root)
    cfg = load_config(home)
    db = open_database(home.db_file)
    recorder = Recorder(db, Path(cfg.output_dir))
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:512, 0:512]
    for i in range(count):
        base = rng.integers(0, 255, 3)
        r = (xx * (i % 7 + 1) // 4 + base[0]) % 256
        g = (yy * (i % 5 + 1) // 4 + base[1]) % 256
        b = ((xx + yy) // (i % 3 + 2) + base[2]) % 256
        pixels = np.stack([r, g, b], axis=-1).astype(np.int16) + rng.integers(-20, 20, (512, 512, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "PNG")
        made = recorder.record(buf.getvalue(), {"prompt": f"benchmark image {i}", "seed": i, "width": 512,
                                                "height": 512}, "txt2img")
        make_thumbnail(made.path, home.thumbnails, made.uuid)
    db.disconnect()


async def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.001)


def render_frame(app, graphics) -> str:
    """What Textual does for a frame: the screen's update rendered into terminal data, with the graphics
    commands the widgets wrote around it (kitty placements)."""
    graphics.sink.clear()
    update = app.screen._compositor.render_update(full=True)
    return "".join(graphics.sink) + update.render_segments(app.console)


def tiles_in(frame: str, label: str) -> int:
    """How many tiles a frame draws with graphics (a check that the figure times real drawing)."""
    if label.startswith("sixel"):
        return frame.count("\x1bP0;1;0q") // 12  # a tile is 12 sixel rows
    if label == "kitty":
        return frame.count("a=p,i=")
    if label == "placeholders":
        return frame.count("\U0010eeee") // (24 * 12)
    return frame.count("\u2580") // (24 * 12)


async def run(root: Path, label: str, protocol: str, placeholders: bool, pages: int) -> dict[str, float]:
    from ddtui.config import load_config, resolve_home
    from ddtui.tui.app import DdtuiApp
    from ddtui.tui.graphics.detect import Detection
    from ddtui.tui.graphics.picture import Graphics

    home = resolve_home(root)
    app = DdtuiApp(home, load_config(home), image_protocol=protocol, connect=False, service_note="benchmark")
    graphics = Graphics(Detection(protocol, "benchmark", placeholders=placeholders, cell=CELL))
    graphics.bind(app)
    graphics.placeholders = placeholders and protocol == "kitty"  # a headless console has no colours to check
    graphics.sink = []
    app._ddtui_graphics = graphics  # type: ignore[attr-defined]
    times: list[float] = []
    frames: list[float] = []
    sizes: list[int] = []
    drawn_tiles: list[int] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await wait_until(lambda: app.screen.query("ThumbGrid"))
        grid = app.screen.query_one("ThumbGrid")
        grid.focus()

        def drawn() -> bool:
            lo, hi = grid.visible_range()
            items = [grid.model.get(i) for i in range(lo, hi + 1)]
            return hi - lo >= 40 and all(it is not None and it.id in grid._tiles for it in items)

        await wait_until(drawn)
        render_frame(app, graphics)
        for _ in range(pages):
            first = grid.visible_range()[0]
            t0 = time.perf_counter()
            grid.action_page_down()
            await wait_until(lambda first=first: grid.visible_range()[0] > first and drawn())
            frame = render_frame(app, graphics)
            times.append((time.perf_counter() - t0) * 1000)
            sizes.append(len(frame))
            drawn_tiles.append(tiles_in(frame, label))
            grid._placed.clear()  # the redraw below places every tile again, as after a scroll back
            t1 = time.perf_counter()
            grid.refresh()
            render_frame(app, graphics)
            frames.append((time.perf_counter() - t1) * 1000)
        lo, hi = grid.visible_range()
        tiles = hi - lo + 1
    return {"page_ms": statistics.median(times), "frame_ms": statistics.median(frames),
            "frame_kb": statistics.median(sizes) / 1024, "tiles": tiles, "drawn": min(drawn_tiles)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--pages", type=int, default=4)
    args = parser.parse_args()
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "home"
        t0 = time.perf_counter()
        make_home(root, args.images)
        print(f"home with {args.images} images and thumbnails: {time.perf_counter() - t0:.1f} s")
        cold = asyncio.run(run(root, "sixel-cold", "sixel", False, args.pages))
        print(f"sixel, first encoding of each screen: {cold['page_ms']:.0f} ms a screen of {cold['tiles']} tiles "
              f"({cold['drawn']} drawn)")
        result["tiles_sixel_first_ms"] = cold["page_ms"]
        for label, protocol, placeholders in PROTOCOLS:
            figures = asyncio.run(run(root, label, protocol, placeholders, args.pages))
            verdict = "OK" if figures["page_ms"] < GOAL_MS else "OVER"
            print(f"{label}: page down to a drawn screen of {figures['tiles']} tiles ({figures['drawn']} with "
                  f"graphics in the frame) {figures['page_ms']:.1f} ms "
                  f"(goal < {GOAL_MS:.0f} ms: {verdict}); redraw from memory {figures['frame_ms']:.1f} ms; "
                  f"frame {figures['frame_kb']:.0f} KiB")
            result[f"tiles_{label}_ms"] = figures["page_ms"]
            result[f"redraw_{label}_ms"] = figures["frame_ms"]
            result[f"frame_{label}_kb"] = figures["frame_kb"]
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
