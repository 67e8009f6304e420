"""AUTOMATIC1111's `parameters` text: what ddtui writes into its own PNGs, and reading it as A1111, Forge,
Fooocus and stable-diffusion.cpp write it (prompt, `Negative prompt:` line, one `Key: value, ...` settings line).
"""

from __future__ import annotations

import json
import re
from typing import Any

from PIL.PngImagePlugin import PngInfo

from ddtui import __version__

from .common import (
    _add_lora,
    DDTUI_KEY,
    _empty_params,
    _fmt_number,
    _kind_from_strength,
    _loads,
    PARAMETERS_KEY,
    _quote,
    _SAMPLER_LABELS,
    _SCHEDULER_LABELS,
    _set_sampler,
    _set_scheduler,
    _to_float,
    _to_int,
    _weight,
)
from .sdcpp import _apply_sdcpp_json


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
            flag_end = n if comma < 0 else comma
            if line[pos:flag_end].strip():
                flags.append(line[pos:flag_end].strip())
            pos = flag_end + 1
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


def _text_source(params: dict[str, Any]) -> str:
    extra = params["extra"]
    version = str(extra.get("Version", ""))
    if "sdcpp" in extra or "SDCPP" in extra or version.startswith("stable-diffusion.cpp"):
        return "sdcpp"
    if version.startswith("ddtui"):
        return "ddtui"
    if "fooocus" in version.lower():
        return "fooocus"
    return "a1111"
