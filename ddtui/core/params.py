"""Turning what a user asked for into a complete, checked generation payload.

Values come, in order of precedence, from the request, then the preset, then the model's sidecar defaults,
then built-in defaults. Every value is checked here, before anything is queued, so a bad size, an unknown
sampler, a LoRA name that leaves the LoRA folder or an unreadable init image is reported at once and
clearly; the worker checks again (it may be remote and see another model folder).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..catalog.families import family as family_named
from ..catalog.models import (
    KIND_FOLDER,
    PARAM_RULES,
    SAMPLERS,
    SCHEDULERS,
    Catalog,
    CatalogError,
    ModelEntry,
    resolve_inside,
)

BUILTIN_DEFAULTS: dict[str, Any] = {
    "steps": 20, "cfg": 7.0, "guidance": 3.5, "sampler": "euler_a", "scheduler": "discrete",
    "width": 512, "height": 512, "clip_skip": -1, "negative_prompt": "",
}
MODES = ("txt2img", "img2img", "inpaint")
DEFAULT_MASK_BLUR = 10  # pixels of feather where an inpainted area meets the kept image
MAX_MASK_BLUR = 256
MAX_PROMPT_CHARS = 20_000
MAX_BATCH = 64
LORA_TAG = re.compile(r"<lora:([^:>]*)(?::([^>]*))?>", re.IGNORECASE)


class ParamError(ValueError):
    """A generation parameter that cannot be used; the message names it and says what is expected."""


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m:
        raise ParamError(f"size must look like 512x768, got {text!r}")
    return check_size(int(m.group(1)), int(m.group(2)))


def check_size(width: Any, height: Any) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{name} must be an integer, got {value!r}")
        if value % 8:
            raise ParamError(f"{name} {value} is not a multiple of 8 (try {value - value % 8} or {value - value % 8 + 8})")
        if not 64 <= value <= 4096:
            raise ParamError(f"{name} must be from 64 to 4096, got {value}")
    return width, height


def parse_loras(prompt: str, lora_dir: Path) -> list[dict[str, Any]]:
    """The `<lora:name:weight>` tags of a prompt, each resolved strictly inside `lora_dir`."""
    loras = []
    for name, weight in LORA_TAG.findall(prompt):
        if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
            raise ParamError(f"LoRA name {name!r} is not allowed: give a file name from models/lora/, no folders")
        try:
            w = float(weight) if weight not in (None, "") else 1.0
        except ValueError:
            raise ParamError(f"LoRA weight {weight!r} for {name!r} is not a number") from None
        if not -5 <= w <= 5:
            raise ParamError(f"LoRA weight for {name!r} must be from -5 to 5, got {w}")
        found = None
        for ext in (".safetensors", ".gguf", ".ckpt", ".pt", ".pth"):
            candidate = lora_dir / (name + ext)
            if candidate.exists():
                try:
                    found = resolve_inside(lora_dir, name + ext)
                except CatalogError as exc:
                    raise ParamError(f"LoRA {name!r}: {exc}") from None
                break
        if found is None:
            raise ParamError(f"LoRA {name!r} not found in {lora_dir}")
        loras.append({"name": name, "weight": w})
    return loras


def check_image(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ParamError(f"{what} {p} does not exist")
    try:
        with Image.open(p) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ParamError(f"{what} {p} is not a readable image ({exc})") from None
    return p.resolve()


def _rule(key: str, value: Any) -> Any:
    typ, ok, expect = PARAM_RULES[key]
    if isinstance(value, bool) or not isinstance(value, typ) or not ok(value):
        raise ParamError(f"{key} must be {expect}, got {value!r}")
    return value


def model_options(entry: ModelEntry) -> dict[str, Any]:
    """What a worker needs to load a main image model: format, components, flags, prediction."""
    sc = entry.sidecar
    opts: dict[str, Any] = {"format": sc.format if sc else "checkpoint",
                            "components": dict(sc.components) if sc else {}, "flags": dict(sc.flags) if sc else {}}
    if sc and sc.prediction:
        opts["prediction"] = sc.prediction
    if sc and sc.flow_shift is not None:
        opts["flow_shift"] = sc.flow_shift
    return opts


def build_generate_payload(request: dict[str, Any], catalog: Catalog, default_model: str = "",
                           preset: dict[str, Any] | None = None, mask_blur: int = DEFAULT_MASK_BLUR
                           ) -> dict[str, Any]:
    """A complete generate-job payload from a user request (CLI flags, TUI form, re-run of a history item).

    Defaults come from the sidecar, then from the model's family (read from its tensors), then built in.
    Guidance is kept only for models with a guidance input; `mask_blur` is the inpainting feather default.
    """
    preset = preset or {}
    model_ref = request.get("model") or preset.get("model") or default_model
    if not model_ref:
        raise ParamError("no model given and no default model set: pass --model, or run `ddtui models list`")
    try:
        entry = catalog.find(model_ref, kind="image")
    except CatalogError as exc:
        raise ParamError(str(exc)) from None
    sidecar_defaults = entry.sidecar.defaults if entry.sidecar else {}
    preset_params = preset.get("params") or {}
    fam = family_named(entry.family)
    family_defaults = fam.defaults if fam.id != "unknown" else {}

    def pick(key: str) -> Any:
        for source in (request, preset_params, sidecar_defaults, family_defaults, BUILTIN_DEFAULTS):
            if source.get(key) is not None:
                return source[key]
        return None

    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParamError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ParamError(f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    if "\0" in prompt:
        raise ParamError("the prompt contains a NUL character")
    init, mask = request.get("init_image"), request.get("mask_image")
    init_size = _init_size(init, preset_params, request)
    width, height = check_size(*(init_size or (pick("width"), pick("height"))))
    steps = _rule("steps", pick("steps"))
    cfg = float(_rule("cfg", pick("cfg")))
    guidance: float | None = float(_rule("guidance", pick("guidance")))
    if entry.info is not None and fam.id != "unknown" and not entry.info.guidance:
        guidance = None  # the model has no guidance input: the value would do nothing and mislead the metadata
    sampler = pick("sampler")
    if sampler not in SAMPLERS:
        raise ParamError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    scheduler = pick("scheduler")
    if scheduler not in SCHEDULERS:
        raise ParamError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    negative = pick("negative_prompt") or ""
    if not isinstance(negative, str) or len(negative) > MAX_PROMPT_CHARS:
        raise ParamError("the negative prompt must be a string of at most 20000 characters")
    seed = request.get("seed")
    if seed is None or seed == -1:
        seed = random.randrange(0, 2**32)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ParamError(f"seed must be a whole number from 0 (or -1 for random), got {seed!r}")
    batch = request.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ParamError(f"batch count must be from 1 to {MAX_BATCH}, got {batch!r}")
    clip_skip = _rule("clip_skip", pick("clip_skip"))
    lora_dir = catalog.model_dir / KIND_FOLDER["lora"]
    loras = parse_loras(prompt, lora_dir)

    payload: dict[str, Any] = {
        "mode": "txt2img", "model": entry.rel_path, "options": model_options(entry),
        "prompt": prompt, "negative_prompt": negative, "width": width, "height": height, "steps": steps,
        "cfg": cfg, "guidance": guidance, "sampler": sampler, "scheduler": scheduler, "seed": seed,
        "batch": batch, "clip_skip": clip_skip if fam.clip_skip or fam.id == "unknown" else -1, "loras": loras,
        "family": entry.family,
        "vae_tiling": bool(request.get("vae_tiling", (entry.sidecar.flags.get("vae_tiling") if entry.sidecar else False))),
    }
    if mask and not init:
        raise ParamError("a mask needs an init image (--init) to paint into")
    if init:
        payload["init_path"] = str(check_image(init, "init image"))
        payload["mode"] = "img2img"
        strength = request.get("strength", 0.75)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
            raise ParamError(f"strength must be a number above 0 and at most 1, got {strength!r}")
        payload["strength"] = float(strength)
    if mask:
        payload["mask_path"] = str(check_image(mask, "mask image"))
        payload["mode"] = "inpaint"
        blur = request.get("mask_blur")
        blur = mask_blur if blur is None else blur
        if isinstance(blur, bool) or not isinstance(blur, int) or not 0 <= blur <= MAX_MASK_BLUR:
            raise ParamError(f"mask blur must be a whole number of pixels from 0 to {MAX_MASK_BLUR}, got {blur!r}")
        payload["mask_blur"] = blur
    hires = request.get("hires")
    if hires and hires.get("enabled"):
        payload["hires"] = check_hires(hires, catalog)
    if request.get("parent_id"):
        payload["parent_id"] = int(request["parent_id"])
    kind = request.get("kind") or payload["mode"]
    if kind not in ("txt2img", "img2img", "inpaint", "variation"):
        raise ParamError(f"kind must be txt2img, img2img, inpaint or variation, got {kind!r}")
    payload["kind"] = kind
    if preset.get("id"):
        payload["preset_id"] = preset["id"]
    return payload


def _init_size(init: Any, preset_params: dict[str, Any], request: dict[str, Any]) -> tuple[int, int] | None:
    """An init image's own size when no size was asked for, so the result lines up with it pixel for pixel."""
    if not init or any(src.get(k) is not None for src in (request, preset_params) for k in ("width", "height")):
        return None
    try:
        with Image.open(Path(init).expanduser()) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return None  # check_image reports it below
    if w % 8 or h % 8 or not (64 <= w <= 4096 and 64 <= h <= 4096):
        return None  # not a size ddtui samples at: the defaults apply and the init image is resized
    return w, h


def check_hires(hires: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    scale = hires.get("scale", 2.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 1 < scale <= 4:
        raise ParamError(f"hires scale must be above 1 and at most 4, got {scale!r}")
    steps = hires.get("steps", 10)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 200:
        raise ParamError(f"hires steps must be from 1 to 200, got {steps!r}")
    strength = hires.get("strength", 0.5)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise ParamError(f"hires strength must be above 0 and at most 1, got {strength!r}")
    upscaler = hires.get("upscaler") or ""
    if upscaler:
        try:
            upscaler = catalog.find(upscaler, kind="esrgan").rel_path
        except CatalogError as exc:
            raise ParamError(f"hires upscaler: {exc}") from None
    return {"enabled": True, "scale": float(scale), "steps": steps, "strength": float(strength), "upscaler": upscaler}


def rerun_request(params: dict[str, Any]) -> dict[str, Any]:
    """A request that re-runs a recorded generation exactly (same seed, batch of one)."""
    keep = ("prompt", "negative_prompt", "model", "width", "height", "steps", "cfg", "guidance", "sampler",
            "scheduler", "seed", "clip_skip", "strength", "vae_tiling", "hires", "kind", "mask_blur")
    req = {k: params[k] for k in keep if params.get(k) is not None}
    req["batch"] = 1
    if params.get("init_path"):
        req["init_image"] = params["init_path"]
    if params.get("mask_path"):
        req["mask_image"] = params["mask_path"]
    return req
