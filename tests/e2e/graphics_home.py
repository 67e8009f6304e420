"""A ddtui home for the graphics tests: a fine checkerboard as the newest image (a child of a coarse red and blue
one, with other parameters), then plain colour fields.

Made with the real recorder and thumbnail cache (what the service does for a finished image); the
configuration starts no local workers, so the interface opens quickly with nothing to generate.
Run as a script to build one by hand: `python tests/e2e/graphics_home.py DIR [COUNT]`.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from PIL import Image

CHECKER_SIZE = 512
CHECKER_SQUARES = 32  # squares per side: 16 px each in the image, 8 in its 256 px thumbnail
MAGENTA = (255, 0, 255)
GREEN = (0, 200, 0)
RED, BLUE = (220, 30, 30), (30, 30, 220)
PROMPT = "a fine checkerboard for the graphics test"
PARENT_PROMPT = "a coarse checkerboard, the parent"


def checkerboard(size: int = CHECKER_SIZE, squares: int = CHECKER_SQUARES,
                 colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (GREEN, MAGENTA)) -> Image.Image:
    cell = size // squares
    small = Image.new("RGB", (squares, squares))
    small.putdata([colours[(x + y) % 2] for y in range(squares) for x in range(squares)])
    return small.resize((cell * squares, cell * squares), Image.Resampling.NEAREST)


def field_colour(i: int) -> tuple[int, int, int]:
    """The colour of plain field number `i`: pastel hues, far from the checkerboards' colours and from greys."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((i * 0.1 + 0.05) % 1.0, 0.55, 0.8)
    return round(r * 255), round(g * 255), round(b * 255)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def build(root: Path, count: int = 12) -> Path:
    """Write the home under `root`; the checkerboard is the newest image (first tile, shown in the detail)."""
    from ddtui.config import load_config, resolve_home
    from ddtui.core.recording import Recorder
    from ddtui.core.thumbnails import make_thumbnail
    from ddtui.db.schema import open_database

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"workers": {"local_sd": False, "local_llm": False},
                                                  "queue": {"auto_tag": False}}))
    home = resolve_home(root)
    cfg = load_config(home)
    db = open_database(home.db_file)
    recorder = Recorder(db, Path(cfg.output_dir))
    for i in range(count - 2):
        params = {"prompt": f"a plain colour field number {i}", "seed": 7 + i, "steps": 4, "cfg": 1.0,
                  "sampler": "euler", "scheduler": "discrete", "width": 256, "height": 256,
                  "model": "stable-diffusion/demo.safetensors"}
        made = recorder.record(_png(Image.new("RGB", (256, 256), field_colour(i))), params, "txt2img")
        make_thumbnail(made.path, home.thumbnails, made.uuid)
    parent_params = {"prompt": PARENT_PROMPT, "seed": 1, "steps": 4, "cfg": 1.0, "sampler": "euler",
                     "scheduler": "discrete", "width": 512, "height": 512, "model": "stable-diffusion/demo.safetensors"}
    parent = recorder.record(_png(checkerboard(squares=4, colours=(RED, BLUE))), parent_params, "txt2img")
    make_thumbnail(parent.path, home.thumbnails, parent.uuid)
    child_params = {**parent_params, "prompt": PROMPT, "seed": 2, "steps": 8, "strength": 0.6}
    child = recorder.record(_png(checkerboard()), child_params, "img2img", parent.id)
    make_thumbnail(child.path, home.thumbnails, child.uuid)
    db.disconnect()
    return root


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 12)
