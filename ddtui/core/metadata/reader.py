"""Reading an image: collect its text, tell which tool wrote it, and map that tool's parameters."""

from __future__ import annotations

from typing import Any

import json
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .a1111 import _parse_text, _text_source
from .comfyui import _is_comfy_graph, _parse_comfyui
from .common import DDTUI_KEY, _empty_params, ImageReadError, ImportedMetadata, _loads, PARAMETERS_KEY
from .containers import _collect_chunks
from .fooocus import _looks_fooocus, _parse_fooocus
from .invokeai import _parse_invokeai, _parse_invokeai_dream, _parse_invokeai_legacy
from .novelai import looks_novelai, parse_novelai
from .own import _parse_ddtui
from .stealth import read_stealth
from .swarmui import _parse_swarmui


def parse_metadata_chunks(chunks: dict[str, str]) -> ImportedMetadata:
    """Detect the writing tool from an image's text chunks and map its parameters."""
    notes: list[str] = []

    def result(source: str, params: dict[str, Any], raw: str, document: dict[str, Any] | None = None) -> ImportedMetadata:
        return ImportedMetadata(source, params, raw, dict(chunks), document, notes)

    doc = _loads(chunks.get(DDTUI_KEY))
    if isinstance(doc, dict):
        return result("ddtui", _parse_ddtui(doc), chunks[DDTUI_KEY], doc)
    if DDTUI_KEY in chunks:
        notes.append("ddtui chunk is not valid JSON; falling back to other metadata")

    doc = _loads(chunks.get("invokeai_metadata"))
    if isinstance(doc, dict):
        return result("invokeai", _parse_invokeai(doc), chunks["invokeai_metadata"])

    if looks_novelai(chunks):
        params = parse_novelai(chunks)
        if params is not None:
            return result("novelai", params, chunks["Comment"])
        notes.append("NovelAI chunks could not be read")

    text = chunks.get(PARAMETERS_KEY) or chunks.get("exif:UserComment") or ""
    scheme = (chunks.get("fooocus_scheme") or chunks.get("exif:MakerNote") or "").strip().lower()
    prompt_only: dict[str, Any] | None = None
    if text.strip().startswith("{"):
        doc = _loads(text.strip())
        if isinstance(doc, dict) and isinstance(doc.get("sui_image_params"), dict):
            return result("swarmui", _parse_swarmui(doc), text)
        if isinstance(doc, dict) and (scheme == "fooocus" or _looks_fooocus(doc)):
            return result("fooocus", _parse_fooocus(doc), text)
        if doc is not None:
            notes.append("parameters chunk holds JSON of an unrecognised layout")
    elif text.strip():
        params, has_settings = _parse_text(text)
        if has_settings:
            source = "fooocus" if scheme == "a1111" else _text_source(params)
            return result(source, params, text)
        prompt_only = params

    graph = _loads(chunks.get("prompt"))
    if _is_comfy_graph(graph):
        return result("comfyui", _parse_comfyui(graph), chunks["prompt"])

    doc = _loads(chunks.get("sd-metadata"))
    if isinstance(doc, dict):
        return result("invokeai", _parse_invokeai_legacy(doc), chunks["sd-metadata"])

    if isinstance(chunks.get("Dream"), str):
        params = _parse_invokeai_dream(chunks["Dream"])
        if params is not None:
            return result("invokeai", params, chunks["Dream"])
        notes.append("the Dream chunk could not be read")

    if prompt_only is not None:
        notes.append("parameters text has no settings line; only the prompt was read")
        return result("a1111", prompt_only, text)
    return result("unknown", _empty_params(), "")


def read_image_metadata(path: str | os.PathLike[str]) -> ImportedMetadata:
    """Read and interpret generation metadata from a PNG, JPEG or WebP file.

    Images without recognisable metadata give source "unknown" and empty params. Missing, empty,
    corrupt or truncated files and decompression bombs raise :class:`ImageReadError`.
    """
    file_path = Path(path)
    try:
        stat = file_path.stat()
    except OSError as exc:
        raise ImageReadError(file_path, exc.strerror or str(exc)) from exc
    if not file_path.is_file():
        raise ImageReadError(file_path, "not a regular file")
    if stat.st_size == 0:
        raise ImageReadError(file_path, "file is empty")

    notes: list[str] = []
    # catch_warnings is process-wide; a concurrent reader can at worst see a bomb warning printed.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(file_path) as im:
                im.load()  # decodes pixels: catches truncation and reads chunks after IDAT
                size = im.size
                chunks = _collect_chunks(im, notes)
                if not _identifies(chunks) and im.mode in ("RGBA", "RGB"):
                    _add_stealth(chunks, read_stealth(im))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReadError(file_path, f"image too large, possible decompression bomb ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise ImageReadError(file_path, "not a recognised image format") from exc
        except Exception as exc:  # noqa: BLE001 - Pillow raises many exception types on bad input
            raise ImageReadError(file_path, f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc

    meta = parse_metadata_chunks(chunks)
    meta.warnings[:0] = notes
    if meta.source != "unknown":
        # Tools that omit the size (img2img graphs, prompt-only text) still produced this image.
        if meta.params.get("width") is None or meta.params.get("height") is None:
            meta.params["width"], meta.params["height"] = size
    return meta


def _identifies(chunks: dict[str, str]) -> bool:
    """Whether the text chunks alone tell who wrote the image (then the pixels need no second look)."""
    return parse_metadata_chunks(chunks).source != "unknown"


def _add_stealth(chunks: dict[str, str], text: str | None) -> None:
    """Put hidden metadata where the chunk readers look: NovelAI's JSON as its chunks, else as `parameters`."""
    if not text:
        return
    chunks["stealth"] = text
    doc = _loads(text)
    if isinstance(doc, dict) and all(k in doc for k in ("Description", "Comment")):
        for key, value in doc.items():
            chunks.setdefault(str(key), value if isinstance(value, str) else json.dumps(value))
    else:
        chunks.setdefault(PARAMETERS_KEY, text)
