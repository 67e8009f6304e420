"""NovelAI: prompt in `Description`, settings JSON in `Comment`, model and its hash in `Source`.

The reading itself is sd-parsers' `NovelAIParser`; this module maps its result onto ddtui's keys
(k-diffusion sampler names, `noise_schedule`, `uc` as the negative prompt, img2img from the request type).
"""

from __future__ import annotations

from typing import Any

from sd_parsers.exceptions import ParserError
from sd_parsers.parsers import NovelAIParser

from .common import _empty_params, _set_sampler, _set_scheduler, _short_hash, _to_float, _to_int

_PARSER = NovelAIParser(normalize_parameters=True)
_KEYS = ("Description", "Comment", "Source")


def looks_novelai(chunks: dict[str, Any]) -> bool:
    return all(isinstance(chunks.get(k), str) for k in _KEYS) and (
        "novelai" in str(chunks.get("Software", "")).lower() or str(chunks.get("Comment", "")).lstrip().startswith("{"))


def parse_novelai(chunks: dict[str, Any]) -> dict[str, Any] | None:
    """ddtui params from NovelAI's chunks, or None when sd-parsers cannot read them."""
    try:
        info = _PARSER.parse({k: chunks[k] for k in _KEYS})
    except (ParserError, KeyError, TypeError, ValueError):
        return None
    params = _empty_params()
    sampler = info.samplers[0]
    settings, meta = sampler.parameters, dict(info.metadata)
    params["prompt"] = ", ".join(p.value for p in sampler.prompts)
    params["negative_prompt"] = ", ".join(p.value for p in sampler.negative_prompts)
    params["seed"] = _to_int(settings.get("seed"))
    params["cfg"] = _to_float(settings.get("cfg_scale"))
    params["steps"] = _to_int(meta.pop("steps", None))
    params["width"], params["height"] = _to_int(meta.pop("width", None)), _to_int(meta.pop("height", None))
    _set_scheduler(params, meta.pop("noise_schedule", None))
    # NovelAI writes k-diffusion names ("k_euler_ancestral", "k_dpmpp_2m"): drop the prefix before mapping.
    name = sampler.name[2:] if sampler.name.startswith("k_") else sampler.name
    _set_sampler(params, name.replace("dpmpp", "dpm++").replace("ancestral", "a"))
    params["sampler_label"] = sampler.name
    if sampler.model is not None:
        params["model"] = sampler.model.name
        params["model_hash"] = _short_hash(sampler.model.hash)
    request = str(meta.get("request_type", ""))
    params["kind"] = "img2img" if "img2img" in request.lower() else "txt2img"
    if params["kind"] == "img2img":
        params["strength"] = _to_float(settings.get("strength"))
    params["extra"].update({k: v for k, v in meta.items() if k not in ("prompt", "uc")})
    params["extra"]["Source"] = chunks.get("Source")
    return params
