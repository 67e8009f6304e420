"""A ddtui home for the graphics tests: a fine checkerboard as the newest image, then plain colour fields.

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
PROMPT = "a fine checkerboard for the graphics test"


def checkerboard(size: int = CHECKER_SIZE, squares: int = CHECKER_SQUARES) -> Image.Image:
    cell = size // squares
    small = Image.new("RGB", (squares, squares))
    small.putdata([MAGENTA if (x + y) % 2 else GREEN for y in range(squares) for x in range(squares)])
    return small.resize((cell * squares, cell * squares), Image.Resampling.NEAREST)


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
    images = [Image.new("RGB", (256, 256), ((i * 53) % 200 + 30, (i * 97) % 200 + 30, (i * 31) % 200 + 30))
              for i in range(count - 1)] + [checkerboard()]
    for i, image in enumerate(images):
        prompt = PROMPT if i == len(images) - 1 else f"a plain colour field number {i}"
        params = {"prompt": prompt, "seed": 7 + i, "steps": 4, "cfg": 1.0, "sampler": "euler",
                  "scheduler": "discrete", "width": image.width, "height": image.height,
                  "model": "stable-diffusion/demo.safetensors"}
        made = recorder.record(_png(image), params, "txt2img")
        make_thumbnail(made.path, home.thumbnails, made.uuid)
    db.disconnect()
    return root


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 12)
