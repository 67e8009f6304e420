"""Generation parameters embedded in image files: writing ddtui's own, reading other tools'.

One module per format: `a1111` (the `parameters` text ddtui writes, and reading it as A1111, Forge, Fooocus
and stable-diffusion.cpp write it; `sdcpp` for sd.cpp's JSON entry), `comfyui`, `invokeai` (3.x JSON, the
2.x `sd-metadata` JSON and the older `Dream` command line), `swarmui`, `fooocus`, `novelai`, `stealth`
(A1111's "stealth" metadata hidden in the alpha channel or the colour bits), `own` (ddtui's own chunk).
`containers` gets the text out of PNG, JPEG and WebP files and `reader` decides which tool wrote an image.
The parsers for NovelAI and InvokeAI's `Dream` line are sd-parsers' (a maintained library); the rest are ours.

Internal parameter keys: prompt, negative_prompt, steps, sampler, scheduler, cfg, seed, width,
height, model, model_hash, strength, clip_skip, guidance, loras ([{name, weight[, hash]}]), kind
("txt2img" | "img2img" | "inpaint" | None when unknown). Parsed results also carry
sampler_label / scheduler_label (the original strings) and ``extra`` (everything unmapped).
"""

from __future__ import annotations

from .a1111 import format_a1111_parameters, parse_parameters_text, png_info
from .common import (
    DDTUI_KEY,
    PARAMETERS_KEY,
    SOURCES,
    ImageReadError,
    ImportedMetadata,
    MetadataError,
    map_sampler,
    map_scheduler,
)
from .containers import decode_user_comment
from .reader import parse_metadata_chunks, read_image_metadata


__all__ = [
    "DDTUI_KEY",
    "PARAMETERS_KEY",
    "SOURCES",
    "ImportedMetadata",
    "MetadataError",
    "ImageReadError",
    "format_a1111_parameters",
    "png_info",
    "parse_parameters_text",
    "parse_metadata_chunks",
    "read_image_metadata",
    "decode_user_comment",
    "map_sampler",
    "map_scheduler",
]
