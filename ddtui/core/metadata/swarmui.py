"""SwarmUI: the `sui_image_params` JSON document in the `parameters` chunk."""

from __future__ import annotations

from typing import Any

from .common import (
    _add_lora,
    _basename,
    _empty_params,
    _items,
    _kind_from_strength,
    _object,
    _set_sampler,
    _set_scheduler,
    _short_hash,
    _to_float,
    _to_int,
)


def _parse_swarmui(doc: dict[str, Any]) -> dict[str, Any]:
    params = _empty_params()
    sp = _object(doc, "sui_image_params")
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
    names = _items(sp, "loras")
    weights = _items(sp, "loraweights")
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
