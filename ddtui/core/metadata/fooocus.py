"""Fooocus: its JSON `parameters` document (its A1111-scheme text goes through the A1111 reader)."""

from __future__ import annotations

import re
from typing import Any

from .common import (
    _add_lora,
    _basename,
    _empty_params,
    _set_sampler,
    _set_scheduler,
    _short_hash,
    _to_float,
    _to_int,
)


_FOOOCUS_MARKERS = {"base_model", "guidance_scale", "full_prompt", "sharpness", "adm_guidance",
                    "performance", "fooocus_v2_expansion", "refiner_model"}


def _snake(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", key.strip().lower())


def _looks_fooocus(doc: dict[str, Any]) -> bool:
    keys = {_snake(str(k)) for k in doc}
    return bool(keys & _FOOOCUS_MARKERS) or "fooocus" in str(doc.get("version", "")).lower()


def _parse_fooocus(doc: dict[str, Any]) -> dict[str, Any]:
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
