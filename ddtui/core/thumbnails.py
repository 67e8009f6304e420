"""The thumbnail cache: one small JPEG per image, made once, so browsing never decodes full images.

A thumbnail lives at `<home>/cache/thumbnails/<uuid[:2]>/<uuid>.jpg`; it is written atomically so a reader
never sees half a file, and a missing one is made again from the image on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

THUMB_SIZE = 256


def thumbnail_path(cache_dir: Path, uuid: str) -> Path:
    return cache_dir / uuid[:2] / f"{uuid}.jpg"


def make_thumbnail(image_path: Path, cache_dir: Path, uuid: str, size: int = THUMB_SIZE) -> Path:
    """Write (or rewrite) the thumbnail for `image_path`; returns its path."""
    target = thumbnail_path(cache_dir, uuid)
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(image_path) as opened:
        opened.draft("RGB", (size, size))  # JPEG sources decode at a reduced scale: much faster
        im: Image.Image = opened.convert("RGBA") if opened.mode in ("P", "LA", "PA") else opened
        if im.mode == "RGBA":
            background = Image.new("RGB", im.size, (24, 24, 24))
            background.paste(im, mask=im.getchannel("A"))
            im = background
        else:
            im = im.convert("RGB")
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        im.save(tmp, "JPEG", quality=85)
    os.replace(tmp, target)
    return target


def ensure_thumbnail(image_path: Path, cache_dir: Path, uuid: str) -> Path:
    target = thumbnail_path(cache_dir, uuid)
    if target.exists():
        return target
    return make_thumbnail(image_path, cache_dir, uuid)
