"""AUTOMATIC1111's "stealth" metadata: the parameters hidden in the lowest bit of each pixel.

The stealth-pnginfo extension (and NovelAI) write a 15-byte signature, a 32-bit big-endian payload length in
bits, then the payload, one bit per pixel in the alpha channel (`stealth_pnginfo`, `stealth_pngcomp`) or three
per pixel in red, green and blue (`stealth_rgbinfo`, `stealth_rgbcomp`), column by column from the top left;
`comp` payloads are gzip-compressed. The payload is A1111 `parameters` text or NovelAI's JSON of its chunks.
Read with numpy over the whole image at once (sd-parsers reads it pixel by pixel in Python, and only the
compressed alpha variant).
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np
from PIL import Image

_SIGNATURES = {b"stealth_pnginfo": ("alpha", False), b"stealth_pngcomp": ("alpha", True),
               b"stealth_rgbinfo": ("rgb", False), b"stealth_rgbcomp": ("rgb", True)}
_SIGNATURE_BYTES = 15
MAX_PAYLOAD = 16 * 1024 * 1024  # bytes; more than any real parameters text


def _bits(image: Image.Image, mode: str) -> np.ndarray:
    arr = np.asarray(image)
    if mode == "alpha":
        # Column-major: all rows of column 0, then column 1, ...
        return (arr[:, :, 3] & 1).T.reshape(-1)
    return (arr[:, :, :3] & 1).transpose(1, 0, 2).reshape(-1)


def read_stealth(image: Image.Image) -> str | None:
    """The hidden payload as text, or None when the image carries no stealth metadata."""
    if image.mode not in ("RGBA", "RGB"):
        return None
    for mode in (("alpha", "rgb") if image.mode == "RGBA" else ("rgb",)):
        bits = _bits(image, mode)
        head = np.packbits(bits[: (_SIGNATURE_BYTES + 4) * 8]).tobytes()
        found = _SIGNATURES.get(head[:_SIGNATURE_BYTES])
        if found is None or found[0] != mode:
            continue
        length = int.from_bytes(head[_SIGNATURE_BYTES:_SIGNATURE_BYTES + 4], "big")
        start = (_SIGNATURE_BYTES + 4) * 8
        if length % 8 or length // 8 > MAX_PAYLOAD or start + length > bits.size:
            return None
        payload = np.packbits(bits[start:start + length]).tobytes()
        if found[1]:
            try:
                payload = gzip.decompress(payload)
            except (OSError, EOFError, zlib.error):
                return None
        return payload.decode("utf-8", errors="replace")
    return None


def write_stealth(image: Image.Image, text: str, mode: str = "alpha", compressed: bool = True) -> Image.Image:
    """A copy of `image` with `text` hidden the way the stealth-pnginfo extension hides it (for tests)."""
    kind = {("alpha", False): b"stealth_pnginfo", ("alpha", True): b"stealth_pngcomp",
            ("rgb", False): b"stealth_rgbinfo", ("rgb", True): b"stealth_rgbcomp"}[(mode, compressed)]
    data = text.encode("utf-8")
    if compressed:
        data = gzip.compress(data, mtime=0)
    message = kind + (len(data) * 8).to_bytes(4, "big") + data
    bits = np.unpackbits(np.frombuffer(message, dtype=np.uint8))
    out = np.array(image.convert("RGBA" if mode == "alpha" else "RGB"))
    h, w = out.shape[:2]
    channels = out[:, :, 3:4] if mode == "alpha" else out[:, :, :3]
    flat = channels.transpose(1, 0, 2).reshape(-1)  # a copy in column-major order
    if bits.size > flat.size:
        raise ValueError(f"{len(text)} characters do not fit in a {w}x{h} image")
    flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
    restored = flat.reshape(w, h, channels.shape[2]).transpose(1, 0, 2)
    if mode == "alpha":
        out[:, :, 3:4] = restored
    else:
        out[:, :, :3] = restored
    return Image.fromarray(out, "RGBA" if mode == "alpha" else "RGB")
