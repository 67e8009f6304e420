"""Sixel encoding: an RGBA picture to the DCS sequence a sixel terminal paints (xterm -ti vt340, foot, mlterm, ...).

Pictures are encoded one cell row at a time (`encode_rows`): the grid and the image views draw each row of a
picture as its own sixel right after that row's cells, so a terminal line redrawn by Textual repaints its part of
the picture and nothing else. Transparent pixels are left unpainted (the cell background shows through), each
sequence carries only the colours it uses, and runs of equal columns are run-length coded.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

MAX_COLORS = 255  # colour registers a sequence may use; index 255 marks a transparent pixel
_TRANSPARENT = 255
_WEIGHTS = np.array([1, 2, 4, 8, 16, 32], dtype=np.uint8).reshape(6, 1, 1)
_RUN = re.compile(rb"(.)\1{3,}")  # four or more equal sixels are shorter as "!<count><sixel>"


def _run_length(match: re.Match[bytes]) -> bytes:
    return b"!%d%s" % (len(match.group(0)), match.group(1))


def quantize(image: Image.Image, colors: int = MAX_COLORS) -> tuple[np.ndarray, np.ndarray]:
    """Palette indices (H x W, 255 where transparent) and the palette (N x 3, 0-255) of an RGBA picture."""
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    quant = rgba.convert("RGB").quantize(colors=min(colors, MAX_COLORS), method=Image.Quantize.FASTOCTREE,
                                         dither=Image.Dither.NONE)
    indices = np.asarray(quant, dtype=np.uint8).copy()
    indices[alpha < 128] = _TRANSPARENT
    palette = np.asarray(quant.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return indices, palette


def encode_indices(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """One complete sixel sequence (DCS ... ST) for a block of palette indices."""
    height, width = indices.shape
    bands = -(-height // 6)
    padded = np.full((bands * 6, width), _TRANSPARENT, dtype=np.uint8)
    padded[:height] = indices
    used = np.unique(indices)
    used = used[used != _TRANSPARENT]
    # P2=1: pixels a sixel leaves out keep what is under them, so transparent areas and the cell gaps stay as drawn.
    out = [b'\x1bP0;1;0q"1;1;%d;%d' % (width, height)]
    out += [b"#%d;2;%d;%d;%d" % (int(c), *(round(int(v) * 100 / 255) for v in palette[c])) for c in used]
    for band in range(bands):
        rows = padded[band * 6:(band + 1) * 6]  # 6 x W
        present = np.unique(rows)
        present = present[present != _TRANSPARENT]
        if present.size:
            # bits[c, x]: which of the six pixels of column x have colour present[c]
            hits = rows[None, :, :] == present[:, None, None]  # C x 6 x W
            bits = (hits * _WEIGHTS[None, :, 0, :]).sum(axis=1, dtype=np.uint8) + 63
            chunks = []
            for colour, line in zip(present, bits):
                data = line.tobytes().rstrip(b"?")  # trailing empty sixels draw nothing
                chunks.append(b"#%d%s" % (int(colour), _RUN.sub(_run_length, data)))
            out.append(b"$".join(chunks))
        out.append(b"-" if band < bands - 1 else b"")
    out.append(b"\x1b\\")
    return b"".join(out)


def encode(image: Image.Image, colors: int = MAX_COLORS) -> bytes:
    """The whole picture as one sixel sequence."""
    indices, palette = quantize(image, colors)
    return encode_indices(indices, palette)


def encode_rows(image: Image.Image, cell_height: int, colors: int = MAX_COLORS) -> list[bytes]:
    """The picture as one sixel sequence per cell row (`cell_height` pixels each), sharing one quantization."""
    indices, palette = quantize(image, colors)
    rows = -(-indices.shape[0] // cell_height)
    return [encode_indices(indices[r * cell_height:(r + 1) * cell_height], palette) for r in range(rows)]
