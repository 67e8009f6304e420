"""What every format reader shares: the result type, errors, sampler and scheduler names, value helpers."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any


SOURCES = ("ddtui", "a1111", "sdcpp", "comfyui", "invokeai", "swarmui", "fooocus", "novelai", "unknown")

PARAMETERS_KEY = "parameters"
DDTUI_KEY = "ddtui"

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


def _set_sampler(params: dict[str, Any], label: Any) -> None:
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


def _set_scheduler(params: dict[str, Any], label: Any) -> None:
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


def _add_lora(params: dict[str, Any], name: Any, weight: Any = None, hash_: Any = None) -> None:
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


def _quote(value: Any) -> str:
    text = str(value)
    # A1111's infotext quoting: JSON string when the value would break the "k: v, k: v" line.
    if any(c in text for c in ',:"\n\r') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _weight(value: Any) -> float:
    number = _to_float(value)
    return 1.0 if number is None else number


def _object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """The JSON object under `key`, or an empty one when it is missing or of another type."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _items(doc: dict[str, Any], key: str) -> list[Any]:
    """The JSON list under `key`, or an empty one when it is missing or of another type."""
    value = doc.get(key)
    return value if isinstance(value, list) else []
