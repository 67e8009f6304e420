"""Generation parameters embedded in image files: writing ddtui's own, reading other tools'.

This module owns:

* the AUTOMATIC1111-compatible ``parameters`` text ddtui writes into its outputs
  (:func:`format_a1111_parameters`) and the PNG chunks that carry it plus the full
  ``ddtui`` JSON document (:func:`png_info`);
* parsing of that text as written by A1111, Forge, Fooocus and stable-diffusion.cpp
  (:func:`parse_parameters_text`);
* detection and reading of the metadata other tools embed (A1111/Forge, stable-diffusion.cpp,
  ComfyUI, InvokeAI, SwarmUI, Fooocus, ddtui) from PNG, JPEG and WebP files
  (:func:`read_image_metadata`), mapped onto ddtui's internal parameter keys.

Internal parameter keys: prompt, negative_prompt, steps, sampler, scheduler, cfg, seed, width,
height, model, model_hash, strength, clip_skip, guidance, loras ([{name, weight[, hash]}]), kind
("txt2img" | "img2img" | "inpaint" | None when unknown). Parsed results also carry
sampler_label / scheduler_label (the original strings) and ``extra`` (everything unmapped).
"""

from __future__ import annotations

import html
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ddtui import __version__

__all__ = [
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

SOURCES = ("ddtui", "a1111", "sdcpp", "comfyui", "invokeai", "swarmui", "fooocus", "unknown")

PARAMETERS_KEY = "parameters"
DDTUI_KEY = "ddtui"

_EXIF_IFD = 0x8769
_TAG_USER_COMMENT = 0x9286
_TAG_MAKER_NOTE = 0x927C
_TAG_SOFTWARE = 0x0131


class MetadataError(Exception):
    """Base class for metadata reading/writing failures."""


class ImageReadError(MetadataError):
    """The image file is missing, empty, corrupt, truncated, not an image, or too large to open."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image metadata from {self.path}: {reason}")


@dataclass
class ImportedMetadata:
    """What :func:`read_image_metadata` found in one image."""

    source: str
    params: dict[str, Any] = field(default_factory=dict)
    raw: str = ""
    chunks: dict[str, str] = field(default_factory=dict)
    document: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Sampler / scheduler names
# ---------------------------------------------------------------------------------------------

SDCPP_SAMPLERS = (
    "euler", "euler_a", "heun", "dpm2", "dpm++2s_a", "dpm++2m", "dpm++2mv2", "ipndm",
    "ipndm_v", "lcm", "ddim_trailing", "tcd", "res_multistep", "res_2s", "er_sde",
)
SDCPP_SCHEDULERS = (
    "discrete", "karras", "exponential", "ays", "gits", "sgm_uniform", "simple", "smoothstep",
    "kl_optimal", "lcm", "bong_tangent",
)


def _norm_name(name: str) -> str:
    # "DPM++ 2S a", "dpm++2s_a" and "dpmpp_2s_ancestral"-style variants compare equal after this.
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


_SAMPLER_ALIASES: dict[str, str] = {_norm_name(s): s for s in SDCPP_SAMPLERS}
_SAMPLER_ALIASES.update({
    # A1111 / Forge labels
    "eulera": "euler_a", "dpm2": "dpm2", "dpm++2sa": "dpm++2s_a", "dpm++2m": "dpm++2m",
    "ddim": "ddim_trailing", "ipndm": "ipndm", "lcm": "lcm", "tcd": "tcd",
    # ComfyUI / SwarmUI / Fooocus sampler_name values
    "eulerancestral": "euler_a", "dpmpp2sancestral": "dpm++2s_a", "dpmpp2m": "dpm++2m",
    # InvokeAI 3+ scheduler names (the "_k" karras variants are split off first)
    "kdpm2": "dpm2",
    # InvokeAI 2.x k-diffusion names
    "keuler": "euler", "keulera": "euler_a", "kheun": "heun",
})

_SCHEDULER_ALIASES: dict[str, str] = {_norm_name(s): s for s in SDCPP_SCHEDULERS}
_SCHEDULER_ALIASES.update({
    # k-diffusion's default "Uniform" and ComfyUI's "normal" both space the model's own sigmas evenly.
    "uniform": "discrete", "normal": "discrete",
    "sgmuniform": "sgm_uniform", "kloptimal": "kl_optimal",
    "alignyoursteps": "ays", "alignyourstepsgits": "gits", "alignyoursteps11": "ays",
    "alignyoursteps32": "ays",
})

_SAMPLER_LABELS = {
    "euler_a": "Euler a", "euler": "Euler", "heun": "Heun", "dpm2": "DPM2",
    "dpm++2s_a": "DPM++ 2S a", "dpm++2m": "DPM++ 2M", "lcm": "LCM", "ddim_trailing": "DDIM",
}
_SCHEDULER_LABELS = {
    "discrete": "Uniform", "karras": "Karras", "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform", "simple": "Simple", "kl_optimal": "KL Optimal",
    "ays": "Align Your Steps", "gits": "Align Your Steps GITS",
}


def map_sampler(label: str | None) -> str | None:
    """Map a sampler name from any supported tool to a stable-diffusion.cpp sampler name, or None."""
    if not label:
        return None
    return _SAMPLER_ALIASES.get(_norm_name(label))


def map_scheduler(label: str | None) -> str | None:
    """Map a scheduler name from any supported tool to a stable-diffusion.cpp scheduler name, or None."""
    if not label:
        return None
    return _SCHEDULER_ALIASES.get(_norm_name(label))


def _set_sampler(params: dict, label: Any) -> None:
    if label is None or str(label).strip() == "":
        return
    label = str(label).strip()
    params["sampler_label"] = label
    mapped = map_sampler(label)
    if mapped:
        params["sampler"] = mapped
        return
    # "DPM++ 2M Karras" (A1111 before 1.9) and "euler_a karras" (sd.cpp) carry the schedule as a suffix.
    words = label.split()
    for n in (1, 2, 3):
        if len(words) <= n:
            break
        head, tail = " ".join(words[:-n]), " ".join(words[-n:])
        scheduler = map_scheduler(tail)
        if scheduler:
            params["sampler"] = map_sampler(head)
            if params.get("scheduler") is None and params.get("scheduler_label") is None:
                params["scheduler"] = scheduler
                params["scheduler_label"] = tail
            return


def _set_scheduler(params: dict, label: Any) -> None:
    if label is None or str(label).strip() == "":
        return
    params["scheduler_label"] = str(label).strip()
    params["scheduler"] = map_scheduler(str(label))


# ---------------------------------------------------------------------------------------------
# Small value helpers
# ---------------------------------------------------------------------------------------------

def _empty_params() -> dict[str, Any]:
    return {
        "prompt": "", "negative_prompt": "", "steps": None, "sampler": None, "sampler_label": None,
        "scheduler": None, "scheduler_label": None, "cfg": None, "seed": None, "width": None,
        "height": None, "model": None, "model_hash": None, "strength": None, "clip_skip": None,
        "guidance": None, "loras": [], "kind": None, "extra": {},
    }


def _to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and result not in (float("inf"), float("-inf")) else None


def _to_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    number = _to_float(value)
    return int(number) if number is not None and number.is_integer() else None


def _fmt_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _basename(name: Any) -> str | None:
    if not name:
        return None
    # ComfyUI on Windows stores "SDXL\\model.safetensors"; both separators must go.
    return re.split(r"[\\/]", str(name).strip())[-1] or None


_MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


def _lora_name(name: Any) -> str:
    base = _basename(name) or ""
    for ext in _MODEL_EXTENSIONS:
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


def _short_hash(value: Any) -> str | None:
    """Normalise a model hash to A1111's short form; None when it is not a SHA-256 style hash."""
    if not value:
        return None
    text = str(value).strip().lower()
    for prefix in ("0x", "sha256:"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if re.fullmatch(r"[0-9a-f]{64}", text):
        return text[:10]
    if re.fullmatch(r"[0-9a-f]{8,12}", text):
        return text
    return None


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _kind_from_strength(strength: float | None) -> str:
    return "img2img" if strength is not None else "txt2img"


def _add_lora(params: dict, name: Any, weight: Any = None, hash_: Any = None) -> None:
    clean = _lora_name(name)
    if not clean:
        return
    for entry in params["loras"]:
        if entry["name"] == clean:
            break
    else:
        entry = {"name": clean, "weight": 1.0}
        params["loras"].append(entry)
    number = _to_float(weight)
    if number is not None:
        entry["weight"] = number
    if hash_:
        entry["hash"] = str(hash_)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def _quote(value: Any) -> str:
    text = str(value)
    # A1111's infotext quoting: JSON string when the value would break the "k: v, k: v" line.
    if any(c in text for c in ',:"\n\r') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _weight(value: Any) -> float:
    number = _to_float(value)
    return 1.0 if number is None else number


def format_a1111_parameters(p: dict[str, Any]) -> str:
    """Render ddtui parameters as AUTOMATIC1111-compatible ``parameters`` text.

    Layout: prompt, optional ``Negative prompt: ...`` line, then one ``Key: value, ...`` line.
    Values that contain commas, colons, quotes or newlines are JSON-quoted like A1111 does.
    """
    settings: list[tuple[str, Any]] = []

    def add(key: str, value: Any) -> None:
        if value is None or (isinstance(value, str) and value == ""):
            return
        settings.append((key, _fmt_number(value) if isinstance(value, (int, float)) else value))

    sampler = p.get("sampler")
    scheduler = p.get("scheduler")
    add("Steps", p.get("steps"))
    add("Sampler", _SAMPLER_LABELS.get(sampler, sampler) if sampler else None)
    add("Schedule type", _SCHEDULER_LABELS.get(scheduler, scheduler) if scheduler else None)
    add("CFG scale", p.get("cfg"))
    add("Seed", p.get("seed"))
    if p.get("width") and p.get("height"):
        add("Size", f"{int(p['width'])}x{int(p['height'])}")
    add("Model hash", p.get("model_hash"))
    add("Model", p.get("model"))
    if p.get("strength") is not None and p.get("kind") != "txt2img":
        add("Denoising strength", p.get("strength"))
    clip_skip = _to_int(p.get("clip_skip"))
    if clip_skip is not None and clip_skip > 1:
        add("Clip skip", clip_skip)
    add("Guidance", p.get("guidance"))
    loras = [lora for lora in (p.get("loras") or []) if lora.get("name")]
    hashes = [f"{lora['name']}: {lora['hash']}" for lora in loras if lora.get("hash")]
    add("Lora hashes", ", ".join(hashes))
    # Fooocus's A1111 scheme uses the same "Lora weights" key; A1111 itself keeps weights in the prompt.
    weights = [f"{lora['name']}: {_fmt_number(_weight(lora.get('weight')))}" for lora in loras]
    add("Lora weights", ", ".join(weights))
    add("Version", f"ddtui {__version__}")

    line = ", ".join(f"{key}: {_quote(value)}" for key, value in settings)
    negative = p.get("negative_prompt") or ""
    negative_text = f"\nNegative prompt: {negative}" if negative else ""
    return f"{p.get('prompt') or ''}{negative_text}\n{line}".strip()


def png_info(parameters_text: str, ddtui_json: dict[str, Any]) -> PngInfo:
    """Build PNG text chunks: ``parameters`` (A1111 text) and ``ddtui`` (JSON document).

    ``ddtui_json`` is conventionally ``{"params": {...}, "lineage": {...}}``; a flat dict of
    parameters is read back too. Non-JSON values (paths, enums) are stored via ``str()``.
    """
    info = PngInfo()
    # Uncompressed so tools that only understand tEXt/iTXt (like A1111) can read it.
    info.add_text(PARAMETERS_KEY, parameters_text)
    document = json.dumps(ddtui_json, ensure_ascii=False, sort_keys=True, default=str)
    info.add_text(DDTUI_KEY, document, zip=True)
    return info


# ---------------------------------------------------------------------------------------------
# Parsing A1111-style text
# ---------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"\s*(\w[\w \-/]+):\s*")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")
_LORA_TAG_RE = re.compile(r"<(?:lora|lyco):([^:>]+)(?::([^:>]*))?[^>]*>", re.IGNORECASE)
_HIRES_KEYS = ("Hires upscale", "Hires upscaler", "Hires steps", "Hires resize")
_INPAINT_KEYS = ("Mask blur", "Inpaint area", "Masked content", "Mask mode", "Inpaint padding")


def _scan_quoted(line: str, pos: int) -> int | None:
    """Index just past the closing quote of the JSON string starting at ``pos``, or None."""
    i = pos + 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == '"':
            return i + 1
        i += 1
    return None


def _scan_bracketed(line: str, pos: int) -> int | None:
    """Index just past the bracket matching ``line[pos]`` (strings respected), or None."""
    depth = 0
    i = pos
    while i < len(line):
        char = line[i]
        if char == '"':
            end = _scan_quoted(line, i)
            if end is None:
                return None
            i = end
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _split_settings(line: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Split ``Key: value, Key: "quoted, value", Flag, Key: [a, b]`` into pairs and bare flags."""
    pairs: list[tuple[str, str]] = []
    flags: list[str] = []
    pos, n = 0, len(line)
    while pos < n:
        match = _KEY_RE.match(line, pos)
        if not match:
            comma = line.find(",", pos)
            end = n if comma < 0 else comma
            if line[pos:end].strip():
                flags.append(line[pos:end].strip())
            pos = end + 1
            continue
        key, pos = match.group(1).strip(), match.end()
        value: str | None = None
        end: int | None = None
        if pos < n and line[pos] == '"':
            end = _scan_quoted(line, pos)
            decoded = _loads(line[pos:end]) if end is not None else None
            value = decoded if isinstance(decoded, str) else None
        elif pos < n and line[pos] in "[{":
            # sd.cpp writes unquoted lists ("Skip layers: [7, 8, 9, ]") and the SDCPP JSON object.
            end = _scan_bracketed(line, pos)
            value = line[pos:end] if end is not None else None
        if value is not None and end is not None:
            rest = line[end:].lstrip(" ")
            if rest == "" or rest.startswith(","):
                pairs.append((key, value))
                pos = n - len(rest) + 1
                continue
        comma = line.find(",", pos)
        end = n if comma < 0 else comma
        pairs.append((key, line[pos:end].strip()))
        pos = end + 1
    return pairs, flags


def _parse_name_values(text: str) -> list[tuple[str, str]]:
    """Parse ``"name: value, name2: value2"`` (Lora hashes / Lora weights)."""
    result = []
    for item in text.split(","):
        if ":" in item:
            name, value = item.rsplit(":", 1)
            if name.strip():
                result.append((name.strip(), value.strip()))
    return result


def _apply_sdcpp_json(params: dict, doc: dict) -> None:
    sampling = doc.get("sampling") if isinstance(doc.get("sampling"), dict) else {}
    if sampling.get("method"):
        params["sampler"] = map_sampler(str(sampling["method"])) or params["sampler"]
        params["sampler_label"] = params["sampler_label"] or str(sampling["method"])
    if sampling.get("scheduler"):
        params["scheduler"] = map_scheduler(str(sampling["scheduler"]))
        params["scheduler_label"] = str(sampling["scheduler"])
    if _to_int(sampling.get("steps")) is not None:
        params["steps"] = _to_int(sampling["steps"])
    guidance = sampling.get("guidance") if isinstance(sampling.get("guidance"), dict) else {}
    if _to_float(guidance.get("txt_cfg")) is not None:
        params["cfg"] = _to_float(guidance["txt_cfg"])
    if _to_float(guidance.get("distilled_guidance")) is not None:
        params["guidance"] = _to_float(guidance["distilled_guidance"])
    for key in ("seed", "width", "height"):
        if _to_int(doc.get(key)) is not None:
            params[key] = _to_int(doc[key])
    prompt = doc.get("prompt") if isinstance(doc.get("prompt"), dict) else {}
    # The text line holds the prompt with <lora:...> tags (reproducible); JSON has it stripped.
    if not params["prompt"] and isinstance(prompt.get("positive"), str):
        params["prompt"] = prompt["positive"]
    if not params["negative_prompt"] and isinstance(prompt.get("negative"), str):
        params["negative_prompt"] = prompt["negative"]
    models = doc.get("models") if isinstance(doc.get("models"), dict) else {}
    model = models.get("model") or models.get("diffusion_model")
    if model:
        params["model"] = _basename(model)
    clip_skip = _to_int(doc.get("clip_skip"))
    if clip_skip is not None and clip_skip > 0:
        params["clip_skip"] = clip_skip
    for lora in doc.get("loras") or []:
        if isinstance(lora, dict):
            _add_lora(params, lora.get("name"), lora.get("multiplier"))


def parse_parameters_text(text: str) -> dict[str, Any]:
    """Parse A1111/Forge/Fooocus/stable-diffusion.cpp ``parameters`` text into internal keys.

    Multi-line prompts and negative prompts are supported; the last line is the settings line
    when it holds at least three ``Key: value`` pairs (A1111's rule). sd.cpp's trailing
    ``SDCPP: {json}`` is decoded and kept under ``extra["sdcpp"]``. Unmapped keys go to ``extra``.
    Whole prompts are stripped of surrounding whitespace, as every writer of this format does.
    """
    return _parse_text(text)[0]


def _parse_text(text: str) -> tuple[dict[str, Any], bool]:
    """Parsed params and whether a settings line was present."""
    params = _empty_params()
    if not isinstance(text, str) or not text.strip():
        return params, False
    *lines, last = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    pairs, flags = _split_settings(last)
    if len(pairs) < 3:
        lines.append(last)
        pairs, flags = [], []

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if not in_negative and line.lstrip().startswith("Negative prompt:"):
            in_negative = True
            line = line.lstrip()[len("Negative prompt:"):]
        (negative_lines if in_negative else prompt_lines).append(line)
    params["prompt"] = "\n".join(prompt_lines).strip()
    params["negative_prompt"] = "\n".join(negative_lines).strip()

    settings: dict[str, str] = {}
    for key, value in pairs:
        settings[key] = value
    for flag in flags:
        settings.setdefault(flag, flag)
    extra: dict[str, Any] = params["extra"]
    hires = any(key in settings for key in _HIRES_KEYS)

    # A1111 writes "Schedule type"; Fooocus's A1111 scheme writes "Scheduler".
    schedule_type, scheduler = settings.pop("Schedule type", None), settings.pop("Scheduler", None)
    _set_scheduler(params, schedule_type or scheduler)
    if schedule_type and scheduler:
        extra["Scheduler"] = scheduler
    _set_sampler(params, settings.pop("Sampler", None))
    params["steps"] = _to_int(settings.pop("Steps", None))
    params["cfg"] = _to_float(settings.pop("CFG scale", None))
    params["seed"] = _to_int(settings.pop("Seed", None))
    size = _SIZE_RE.match(settings.pop("Size", "") or "")
    if size:
        params["width"], params["height"] = int(size.group(1)), int(size.group(2))
    params["model_hash"] = settings.pop("Model hash", None) or None
    params["model"] = settings.pop("Model", None) or settings.get("Unet") or None
    if not hires:
        params["strength"] = _to_float(settings.pop("Denoising strength", None))
    params["clip_skip"] = _to_int(settings.pop("Clip skip", None))
    for key in ("Guidance", "Distilled CFG Scale"):
        if key in settings and _to_float(settings[key]) is not None:
            params["guidance"] = _to_float(settings.pop(key))
    for name, value in _parse_name_values(settings.pop("Lora weights", "") or ""):
        _add_lora(params, name, value)
    if not params["loras"]:
        for name, weight in _LORA_TAG_RE.findall(params["prompt"]):
            _add_lora(params, name, weight or None)
    for name, value in _parse_name_values(settings.pop("Lora hashes", "") or ""):
        _add_lora(params, name, None, value)

    sdcpp = settings.pop("SDCPP", None)
    doc = _loads(sdcpp) if sdcpp else None
    if any(key in settings for key in _INPAINT_KEYS):
        params["kind"] = "inpaint"
    elif pairs:
        params["kind"] = _kind_from_strength(params["strength"])
    if isinstance(doc, dict):
        _apply_sdcpp_json(params, doc)
        extra["sdcpp"] = doc
        params["kind"] = None  # sd.cpp does not record whether an init image was used
    elif sdcpp:
        extra["SDCPP"] = sdcpp
    extra.update(settings)
    return params, bool(pairs)


def _text_source(params: dict) -> str:
    extra = params["extra"]
    version = str(extra.get("Version", ""))
    if "sdcpp" in extra or "SDCPP" in extra or version.startswith("stable-diffusion.cpp"):
        return "sdcpp"
    if version.startswith("ddtui"):
        return "ddtui"
    if "fooocus" in version.lower():
        return "fooocus"
    return "a1111"


# ---------------------------------------------------------------------------------------------
# JSON formats: InvokeAI, SwarmUI, Fooocus, ddtui
# ---------------------------------------------------------------------------------------------

def _parse_invokeai(doc: dict) -> dict[str, Any]:
    params = _empty_params()
    params["prompt"] = str(doc.get("positive_prompt") or "")
    params["negative_prompt"] = str(doc.get("negative_prompt") or "")
    params["seed"] = _to_int(doc.get("seed"))
    params["steps"] = _to_int(doc.get("steps"))
    params["cfg"] = _to_float(doc.get("cfg_scale"))
    params["width"], params["height"] = _to_int(doc.get("width")), _to_int(doc.get("height"))
    params["guidance"] = _to_float(doc.get("guidance"))
    clip_skip = _to_int(doc.get("clip_skip"))
    params["clip_skip"] = clip_skip if clip_skip else None
    scheduler = str(doc.get("scheduler") or "")
    if scheduler:
        params["sampler_label"] = scheduler
        # InvokeAI folds the karras schedule into the scheduler name as a "_k" suffix.
        if scheduler.endswith("_k"):
            params["sampler"] = map_sampler(scheduler[:-2])
            params["scheduler"] = "karras"
        else:
            params["sampler"] = map_sampler(scheduler)
    model = doc.get("model")
    if isinstance(model, dict):
        params["model"] = model.get("name") or model.get("model_name")
        params["model_hash"] = _short_hash(model.get("hash"))
        if model.get("hash") and not params["model_hash"]:
            params["extra"]["model_hash"] = model.get("hash")
    elif isinstance(model, str):
        params["model"] = model
    mode = str(doc.get("generation_mode") or "")
    params["kind"] = ("inpaint" if "inpaint" in mode or "outpaint" in mode
                      else "img2img" if "img2img" in mode else "txt2img")
    if params["kind"] != "txt2img":
        params["strength"] = _to_float(doc.get("strength"))
    for lora in doc.get("loras") or []:
        if not isinstance(lora, dict):
            continue
        ref = lora.get("model") or lora.get("lora") or {}
        name = (ref.get("name") or ref.get("model_name")) if isinstance(ref, dict) else ref
        _add_lora(params, name, lora.get("weight"))
    consumed = {"positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "width",
                "height", "guidance", "clip_skip", "scheduler", "model", "loras", "strength"}
    params["extra"].update({k: v for k, v in doc.items() if k not in consumed})
    return params


def _parse_invokeai_legacy(doc: dict) -> dict[str, Any]:
    """InvokeAI 2.x ``sd-metadata``: {"model_weights", "model_hash", "image": {...}}."""
    params = _empty_params()
    image = doc.get("image") if isinstance(doc.get("image"), dict) else {}
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
    params["prompt"] = str(prompt or "")
    params["steps"] = _to_int(image.get("steps"))
    params["cfg"] = _to_float(image.get("cfg_scale"))
    params["seed"] = _to_int(image.get("seed"))
    params["width"], params["height"] = _to_int(image.get("width")), _to_int(image.get("height"))
    _set_sampler(params, image.get("sampler"))
    params["model"] = doc.get("model_weights")
    params["model_hash"] = _short_hash(doc.get("model_hash"))
    params["kind"] = "img2img" if image.get("type") == "img2img" else "txt2img"
    if params["kind"] == "img2img":
        params["strength"] = _to_float(image.get("strength"))
    params["extra"].update({k: v for k, v in doc.items() if k != "image"})
    return params


def _parse_swarmui(doc: dict) -> dict[str, Any]:
    params = _empty_params()
    sp = doc.get("sui_image_params") if isinstance(doc.get("sui_image_params"), dict) else {}
    params["prompt"] = str(sp.get("prompt") or "")
    params["negative_prompt"] = str(sp.get("negativeprompt") or "")
    params["seed"] = _to_int(sp.get("seed"))
    params["steps"] = _to_int(sp.get("steps"))
    params["cfg"] = _to_float(sp.get("cfgscale"))
    params["width"], params["height"] = _to_int(sp.get("width")), _to_int(sp.get("height"))
    params["guidance"] = _to_float(sp.get("fluxguidancescale"))
    _set_scheduler(params, sp.get("scheduler"))
    _set_sampler(params, sp.get("sampler"))
    params["model"] = _basename(sp.get("model"))
    clip_layer = _to_int(sp.get("clipstopatlayer"))
    params["clip_skip"] = -clip_layer if clip_layer is not None and clip_layer < -1 else None
    params["strength"] = _to_float(sp.get("initimagecreativity"))
    params["kind"] = _kind_from_strength(params["strength"])
    names = sp.get("loras") if isinstance(sp.get("loras"), list) else []
    weights = sp.get("loraweights") if isinstance(sp.get("loraweights"), list) else []
    for index, name in enumerate(names):
        _add_lora(params, name, weights[index] if index < len(weights) else None)
    for model in doc.get("sui_models") or []:
        if isinstance(model, dict) and model.get("param") == "model":
            params["model_hash"] = _short_hash(model.get("hash"))
    consumed = {"prompt", "negativeprompt", "seed", "steps", "cfgscale", "width", "height",
                "fluxguidancescale", "scheduler", "sampler", "model", "clipstopatlayer",
                "initimagecreativity", "loras", "loraweights"}
    params["extra"].update({k: v for k, v in sp.items() if k not in consumed})
    if isinstance(doc.get("sui_extra_data"), dict):
        params["extra"]["sui_extra_data"] = doc["sui_extra_data"]
    return params


_FOOOCUS_MARKERS = {"base_model", "guidance_scale", "full_prompt", "sharpness", "adm_guidance",
                    "performance", "fooocus_v2_expansion", "refiner_model"}


def _snake(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", key.strip().lower())


def _looks_fooocus(doc: dict) -> bool:
    keys = {_snake(str(k)) for k in doc}
    return bool(keys & _FOOOCUS_MARKERS) or "fooocus" in str(doc.get("version", "")).lower()


def _parse_fooocus(doc: dict) -> dict[str, Any]:
    params = _empty_params()
    data = {_snake(str(k)): v for k, v in doc.items()}

    def joined(value: Any) -> str:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value or "")

    # The full prompt (styles and expansion applied) is what the model actually saw.
    params["prompt"] = joined(data.get("full_prompt")) or joined(data.get("prompt"))
    params["negative_prompt"] = (joined(data.get("full_negative_prompt"))
                                 or joined(data.get("negative_prompt")))
    params["steps"] = _to_int(data.get("steps"))
    params["seed"] = _to_int(data.get("seed"))
    params["cfg"] = _to_float(data.get("guidance_scale"))
    _set_scheduler(params, data.get("scheduler"))
    _set_sampler(params, data.get("sampler"))
    params["model"] = _basename(data.get("base_model"))
    params["model_hash"] = _short_hash(data.get("base_model_hash"))
    params["clip_skip"] = _to_int(data.get("clip_skip"))
    size = re.search(r"(\d+)\s*[,x×]\s*(\d+)", str(data.get("resolution") or ""))
    if size:
        params["width"], params["height"] = int(size.group(1)), int(size.group(2))
    params["kind"] = "txt2img"
    for lora in data.get("loras") or []:
        if isinstance(lora, (list, tuple)) and lora:
            _add_lora(params, lora[0], lora[1] if len(lora) > 1 else None,
                      lora[2] if len(lora) > 2 else None)
    for key, value in doc.items():
        label = re.fullmatch(r"LoRA \[(.+)\] weight", str(key))
        if label:
            _add_lora(params, label.group(1), value)
        elif _snake(str(key)).startswith("lora_combined_") and " : " in str(value):
            name, weight = str(value).rsplit(" : ", 1)
            _add_lora(params, name, weight)
    consumed = {"full_prompt", "prompt", "full_negative_prompt", "negative_prompt", "steps", "seed",
                "guidance_scale", "scheduler", "sampler", "base_model", "base_model_hash",
                "clip_skip", "resolution", "loras"}
    params["extra"].update({k: v for k, v in doc.items() if _snake(str(k)) not in consumed})
    if data.get("prompt") and params["prompt"] != data.get("prompt"):
        params["extra"]["raw_prompt"] = data.get("prompt")
    return params


def _parse_ddtui(doc: dict) -> dict[str, Any]:
    stored = doc.get("params") if isinstance(doc.get("params"), dict) else doc
    params = _empty_params()
    params.update(stored)
    return params


# ---------------------------------------------------------------------------------------------
# ComfyUI API-format graph
# ---------------------------------------------------------------------------------------------

_MAX_DEPTH = 64
_COMFY_SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
_COMFY_SCHEDULER_NODES = {
    "KarrasScheduler": "karras", "ExponentialScheduler": "exponential",
    "AlignYourStepsScheduler": "ays", "GITSScheduler": "gits", "SDTurboScheduler": "turbo",
    "BetaSamplingScheduler": "beta", "PolyexponentialScheduler": "polyexponential",
}
_NOT_CONDITIONING = {"clip", "model", "vae", "image", "images", "pixels", "mask", "control_net",
                     "style_model", "clip_vision", "clip_vision_output", "upscale_model",
                     "latent", "latent_image", "samples"}
_TEXT_KEYS = ("text", "text_g", "t5xxl", "clip_g", "clip_l", "prompt", "text_l")


class _Graph:
    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = {str(k): v for k, v in nodes.items() if isinstance(v, dict)}
        self.guidance: float | None = None

    def node(self, node_id: Any) -> dict | None:
        return self.nodes.get(str(node_id))

    def is_link(self, value: Any) -> bool:
        return (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
                and str(value[0]) in self.nodes)

    def inputs(self, node: dict | None) -> dict[str, Any]:
        data = node.get("inputs") if node else None
        return data if isinstance(data, dict) else {}

    def class_type(self, node: dict | None) -> str:
        return str(node.get("class_type", "")) if node else ""

    def value(self, value: Any, want: type, depth: int = 0) -> Any:
        """Resolve a literal or a link to a primitive/string node into a ``want`` value."""
        if self.is_link(value) and depth < 8:
            inputs = self.inputs(self.node(value[0]))
            for key in ("value", "text", "string", "seed", "noise_seed", "int", "float", "number"):
                if key in inputs:
                    return self.value(inputs[key], want, depth + 1)
            return None
        if want is str:
            return value if isinstance(value, str) else None
        if want is float:
            return _to_float(value) if isinstance(value, (int, float)) else None
        return _to_int(value) if isinstance(value, (int, float)) else None

    def is_sampler(self, node: dict) -> bool:
        kind = self.class_type(node)
        if kind in _COMFY_SAMPLERS:
            return True
        inputs = self.inputs(node)
        return (kind.startswith(("KSampler", "SamplerCustom")) and kind != "KSamplerSelect"
                and any(k in inputs for k in ("positive", "guider", "latent_image")))

    def upstream(self, start_ids: list[str], keys: tuple[str, ...] | None = None):
        """Breadth-first walk over link inputs (optionally only input names containing ``keys``)."""
        seen = set(start_ids)
        queue = list(start_ids)
        while queue:
            node_id = queue.pop(0)
            yield node_id
            for key, value in self.inputs(self.node(node_id)).items():
                if keys is not None and not any(k in key for k in keys):
                    continue
                if self.is_link(value) and str(value[0]) not in seen:
                    seen.add(str(value[0]))
                    queue.append(str(value[0]))

    def main_sampler(self) -> str | None:
        # Saved images first: a PreviewImage of an intermediate pass must not win over them.
        outputs = [nid for nid, n in self.nodes.items() if "save" in self.class_type(n).lower()]
        if not outputs:
            outputs = [nid for nid, n in self.nodes.items()
                       if "preview" in self.class_type(n).lower()]
        if not outputs:
            referenced = {str(v[0]) for n in self.nodes.values()
                          for v in self.inputs(n).values() if self.is_link(v)}
            outputs = [nid for nid in self.nodes if nid not in referenced]
        for node_id in self.upstream(sorted(outputs, key=_node_order)):
            if self.is_sampler(self.nodes[node_id]):
                return node_id
        samplers = [nid for nid, n in self.nodes.items() if self.is_sampler(n)]
        return sorted(samplers, key=_node_order)[0] if samplers else None

    def texts(self, link: Any, depth: int = 0, seen: set | None = None) -> list[str]:
        """Prompt texts feeding a conditioning link, through combine/guidance/controlnet nodes."""
        seen = set() if seen is None else seen
        if not self.is_link(link) or depth > _MAX_DEPTH or (str(link[0]), link[1]) in seen:
            return []
        seen.add((str(link[0]), link[1]))
        node = self.node(link[0])
        kind, inputs = self.class_type(node), self.inputs(node)
        if kind == "ConditioningZeroOut":
            return [""]
        if kind == "CLIPTextEncodeFlux" or kind == "FluxGuidance":
            self.guidance = self.guidance if self.guidance is not None else self.value(
                inputs.get("guidance"), float)
        for key in _TEXT_KEYS:
            if key in inputs:
                text = self.value(inputs[key], str)
                if text is not None:
                    return [text]
        if "positive" in inputs and "negative" in inputs:
            # ControlNetApplyAdvanced / InpaintModelConditioning: output 0 is positive, 1 negative.
            return self.texts(inputs["positive" if link[1] == 0 else "negative"], depth + 1, seen)
        found: list[str] = []
        keys = sorted(inputs, key=lambda k: 0 if "cond" in k else 1)
        for key in keys:
            if key in _NOT_CONDITIONING:
                continue
            for text in self.texts(inputs[key], depth + 1, seen):
                if text not in found:
                    found.append(text)
        return found

    def model(self, link: Any, params: dict) -> None:
        """Follow the model chain to the loader, collecting LoRAs on the way."""
        seen: set[str] = set()
        while self.is_link(link) and str(link[0]) not in seen and len(seen) < _MAX_DEPTH:
            seen.add(str(link[0]))
            node = self.node(link[0])
            inputs = self.inputs(node)
            for key in ("ckpt_name", "unet_name", "model_name"):
                name = self.value(inputs.get(key), str)
                if name:
                    params["model"] = _basename(name)
                    return
            if "lora_name" in inputs:
                _add_lora(params, self.value(inputs["lora_name"], str),
                          self.value(inputs.get("strength_model"), float))
            link = inputs.get("model")
            if not self.is_link(link):
                link = next((v for v in inputs.values() if self.is_link(v)), None)

    def latent_origin(self, link: Any) -> tuple[int | None, int | None, str, str | None]:
        """Width, height, kind and upstream sampler id (hires pass) for a latent input."""
        width = height = None
        kind = "txt2img"
        if not self.is_link(link):
            return width, height, kind, None
        for node_id in self.upstream([str(link[0])], ("latent", "samples", "pixels", "image")):
            node = self.nodes[node_id]
            ctype, inputs = self.class_type(node), self.inputs(node)
            if self.is_sampler(node):
                return width, height, kind, node_id
            if ctype in ("VAEEncodeForInpaint", "SetLatentNoiseMask", "InpaintModelConditioning"):
                kind = "inpaint"
            elif ctype.startswith("VAEEncode") and kind == "txt2img":
                kind = "img2img"
            if width is None and "width" in inputs and "height" in inputs:
                width, height = self.value(inputs["width"], int), self.value(inputs["height"], int)
        return width, height, kind, None

    def sampler_settings(self, node_id: str) -> dict[str, Any]:
        inputs = self.inputs(self.nodes[node_id])
        guider = self.inputs(self.node(inputs["guider"][0])) if self.is_link(inputs.get("guider")) else {}
        settings: dict[str, Any] = {
            "seed": self.value(inputs.get("seed", inputs.get("noise_seed")), int),
            "steps": self.value(inputs.get("steps"), int),
            "cfg": self.value(inputs.get("cfg", guider.get("cfg")), float),
            "sampler": self.value(inputs.get("sampler_name"), str),
            "scheduler": self.value(inputs.get("scheduler"), str),
            "denoise": self.value(inputs.get("denoise"), float),
            "model": inputs.get("model", guider.get("model")),
            "positive": inputs.get("positive", guider.get("positive", guider.get("conditioning",
                                                                                guider.get("cond1")))),
            "negative": inputs.get("negative", guider.get("negative")),
            "latent": inputs.get("latent_image"),
        }
        if settings["seed"] is None and self.is_link(inputs.get("noise")):
            settings["seed"] = self.value(self.inputs(self.node(inputs["noise"][0])).get("noise_seed"), int)
        if self.is_link(inputs.get("sampler")):
            settings["sampler"] = self.value(self.inputs(self.node(inputs["sampler"][0])).get("sampler_name"), str)
        link, hops = inputs.get("sigmas"), 0
        while self.is_link(link) and hops < 8:
            hops += 1
            sigma_node = self.node(link[0])
            sigma_inputs = self.inputs(sigma_node)
            if "steps" in sigma_inputs or self.class_type(sigma_node) in _COMFY_SCHEDULER_NODES:
                settings["steps"] = self.value(sigma_inputs.get("steps"), int)
                settings["scheduler"] = (self.value(sigma_inputs.get("scheduler"), str)
                                         or _COMFY_SCHEDULER_NODES.get(self.class_type(sigma_node)))
                settings["denoise"] = self.value(sigma_inputs.get("denoise"), float)
                break
            link = sigma_inputs.get("sigmas")  # SplitSigmas and friends wrap another sigmas node
        return settings


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), node_id) if node_id.isdigit() else (1 << 62, node_id)


def _is_comfy_graph(doc: Any) -> bool:
    return isinstance(doc, dict) and any(
        isinstance(n, dict) and "class_type" in n and isinstance(n.get("inputs"), dict)
        for n in doc.values())


def _parse_comfyui(doc: dict) -> dict[str, Any]:
    params = _empty_params()
    graph = _Graph(doc)
    final_id = graph.main_sampler()
    if final_id is None:
        return params
    final = graph.sampler_settings(final_id)
    width, height, kind, base_id = graph.latent_origin(final["latent"])
    main = final
    if base_id is not None:
        # Hires-fix workflow: the first pass defines the image; the second is recorded as extra.
        params["extra"]["hires"] = {"steps": final["steps"], "denoise": final["denoise"],
                                    "sampler": final["sampler"], "scheduler": final["scheduler"],
                                    "width": width, "height": height}
        main = graph.sampler_settings(base_id)
        width, height, kind, _ = graph.latent_origin(main["latent"])
    params["seed"], params["steps"], params["cfg"] = main["seed"], main["steps"], main["cfg"]
    _set_scheduler(params, main["scheduler"])
    _set_sampler(params, main["sampler"])
    params["width"], params["height"] = width, height
    params["kind"] = kind
    if kind != "txt2img":
        params["strength"] = main["denoise"]
    elif main["denoise"] is not None and main["denoise"] < 1.0:
        params["extra"]["denoise"] = main["denoise"]
    params["prompt"] = "\n".join(t for t in graph.texts(main["positive"]) if t)
    params["negative_prompt"] = "\n".join(t for t in graph.texts(main["negative"]) if t)
    graph.model(main["model"], params)
    params["loras"].reverse()  # the walk runs output-to-loader; list them in application order
    for node in graph.nodes.values():
        ctype, inputs = graph.class_type(node), graph.inputs(node)
        if ctype == "CLIPSetLastLayer":
            layer = graph.value(inputs.get("stop_at_clip_layer"), int)
            if layer is not None and layer < -1:
                params["clip_skip"] = -layer
        if ctype == "FluxGuidance" and graph.guidance is None:
            graph.guidance = graph.value(inputs.get("guidance"), float)
    params["guidance"] = graph.guidance
    return params


# ---------------------------------------------------------------------------------------------
# Reading image files
# ---------------------------------------------------------------------------------------------

def decode_user_comment(value: bytes | str) -> str:
    """Decode an EXIF UserComment (8-byte charset prefix + payload) to text.

    "UNICODE\\0" payloads are UTF-16: a BOM wins, otherwise the byte order whose zero bytes sit
    where ASCII-range text would put them (piexif, used by A1111, writes big-endian).
    """
    if isinstance(value, str):
        return value.rstrip("\x00")
    data = bytes(value)
    prefix, body = data[:8], data[8:]
    if prefix == b"UNICODE\x00":
        if body.startswith((b"\xfe\xff", b"\xff\xfe")):
            text = body.decode("utf-16", errors="replace")
        else:
            body = body[: len(body) - len(body) % 2]
            zeros_even = body[0::2].count(0)
            zeros_odd = body[1::2].count(0)
            text = body.decode("utf-16-be" if zeros_even >= zeros_odd else "utf-16-le",
                               errors="replace")
    elif prefix == b"ASCII\x00\x00\x00":
        # Plenty of writers put UTF-8 behind the ASCII prefix.
        text = body.decode("utf-8", errors="replace")
    elif prefix == b"JIS\x00\x00\x00\x00\x00":
        text = body.decode("shift_jis", errors="replace")
    elif prefix == b"\x00" * 8:
        text = body.decode("utf-8", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.rstrip("\x00")


def _fix_text_chunk(value: str) -> str:
    # tEXt is latin-1 by spec, but sd.cpp (stb) and others store UTF-8 bytes there.
    if type(value) is str:  # noqa: E721 - iTXt subclasses str and is already proper UTF-8
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value
    return str(value)


def _decode_bytes(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return None


def _collect_chunks(im: Image.Image, notes: list[str]) -> dict[str, str]:
    chunks: dict[str, str] = {}
    text = getattr(im, "text", None)  # PNG: tEXt/zTXt/iTXt from before and after IDAT
    for key, value in (text if isinstance(text, dict) else {}).items():
        if isinstance(value, str):
            chunks[str(key)] = _fix_text_chunk(value)
    for key, value in im.info.items():
        if isinstance(value, str) and str(key) not in chunks:
            chunks[str(key)] = _fix_text_chunk(value)

    comment = im.info.get("comment")
    if isinstance(comment, (bytes, bytearray)):
        raw = bytes(comment)
        if raw.startswith(b"parameters\x00"):  # sd.cpp JPEG: COM segment "parameters\0<text>"
            chunks.setdefault(PARAMETERS_KEY, raw[11:].rstrip(b"\x00\xff").decode("utf-8", "replace"))
        else:
            chunks["comment"] = raw.rstrip(b"\x00").decode("utf-8", "replace")

    xmp = _decode_bytes(im.info.get("xmp"))
    if xmp:
        found = re.search(r"<sdcpp:parameters>(.*?)</sdcpp:parameters>", xmp, re.DOTALL)
        if found:  # sd.cpp WebP: XMP packet with an XML-escaped parameters element
            chunks.setdefault(PARAMETERS_KEY, html.unescape(found.group(1)))
        chunks["xmp"] = xmp

    try:
        exif = im.getexif()
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block must not hide the other chunks
        notes.append(f"unreadable EXIF: {exc}")
        return chunks
    # A1111 puts UserComment in the Exif IFD; Fooocus puts it straight into IFD0.
    comment_value = exif_ifd.get(_TAG_USER_COMMENT, exif.get(_TAG_USER_COMMENT))
    if isinstance(comment_value, (bytes, bytearray, str)) and comment_value:
        chunks["exif:UserComment"] = decode_user_comment(comment_value)
    maker = exif_ifd.get(_TAG_MAKER_NOTE, exif.get(_TAG_MAKER_NOTE))
    if isinstance(maker, (bytes, bytearray, str)) and 0 < len(maker) < 64:
        chunks["exif:MakerNote"] = (_decode_bytes(maker) or "").rstrip("\x00")
    software = exif.get(_TAG_SOFTWARE)
    if isinstance(software, str):
        chunks["exif:Software"] = software
    for tag in range(0x010D, 0x0111):
        # ComfyUI WebP: IFD0 Model/Make/... hold "prompt:{json}" and "workflow:{json}".
        found = re.match(r"(\w+):(\{.*)", str(exif.get(tag, "")), re.DOTALL)
        if found:
            chunks.setdefault(found.group(1), found.group(2))
    return chunks


def parse_metadata_chunks(chunks: dict[str, str]) -> ImportedMetadata:
    """Detect the writing tool from an image's text chunks and map its parameters."""
    notes: list[str] = []

    def result(source: str, params: dict, raw: str, document: dict | None = None) -> ImportedMetadata:
        return ImportedMetadata(source, params, raw, dict(chunks), document, notes)

    doc = _loads(chunks.get(DDTUI_KEY))
    if isinstance(doc, dict):
        return result("ddtui", _parse_ddtui(doc), chunks[DDTUI_KEY], doc)
    if DDTUI_KEY in chunks:
        notes.append("ddtui chunk is not valid JSON; falling back to other metadata")

    doc = _loads(chunks.get("invokeai_metadata"))
    if isinstance(doc, dict):
        return result("invokeai", _parse_invokeai(doc), chunks["invokeai_metadata"])

    text = chunks.get(PARAMETERS_KEY) or chunks.get("exif:UserComment") or ""
    scheme = (chunks.get("fooocus_scheme") or chunks.get("exif:MakerNote") or "").strip().lower()
    prompt_only: dict | None = None
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

