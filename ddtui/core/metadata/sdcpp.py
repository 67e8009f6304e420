"""stable-diffusion.cpp's `SDCPP: {json}` settings entry, which its `parameters` text carries after A1111's keys."""

from __future__ import annotations

from typing import Any

from .common import _add_lora, _basename, _object, _to_float, _to_int, map_sampler, map_scheduler


def _apply_sdcpp_json(params: dict[str, Any], doc: dict[str, Any]) -> None:
    sampling = _object(doc, "sampling")
    if sampling.get("method"):
        params["sampler"] = map_sampler(str(sampling["method"])) or params["sampler"]
        params["sampler_label"] = params["sampler_label"] or str(sampling["method"])
    if sampling.get("scheduler"):
        params["scheduler"] = map_scheduler(str(sampling["scheduler"]))
        params["scheduler_label"] = str(sampling["scheduler"])
    if _to_int(sampling.get("steps")) is not None:
        params["steps"] = _to_int(sampling["steps"])
    guidance = _object(sampling, "guidance")
    if _to_float(guidance.get("txt_cfg")) is not None:
        params["cfg"] = _to_float(guidance["txt_cfg"])
    if _to_float(guidance.get("distilled_guidance")) is not None:
        params["guidance"] = _to_float(guidance["distilled_guidance"])
    for key in ("seed", "width", "height"):
        if _to_int(doc.get(key)) is not None:
            params[key] = _to_int(doc[key])
    prompt = _object(doc, "prompt")
    # The text line holds the prompt with <lora:...> tags (reproducible); JSON has it stripped.
    if not params["prompt"] and isinstance(prompt.get("positive"), str):
        params["prompt"] = prompt["positive"]
    if not params["negative_prompt"] and isinstance(prompt.get("negative"), str):
        params["negative_prompt"] = prompt["negative"]
    models = _object(doc, "models")
    model = models.get("model") or models.get("diffusion_model")
    if model:
        params["model"] = _basename(model)
    clip_skip = _to_int(doc.get("clip_skip"))
    if clip_skip is not None and clip_skip > 0:
        params["clip_skip"] = clip_skip
    for lora in doc.get("loras") or []:
        if isinstance(lora, dict):
            _add_lora(params, lora.get("name"), lora.get("multiplier"))
