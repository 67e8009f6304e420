"""InvokeAI: the `invokeai_metadata` JSON of 3.x and later, the 2.x `sd-metadata` JSON, and the 1.x `Dream`
command line (`"prompt [negative]" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms`, read by sd-parsers)."""

from __future__ import annotations

from typing import Any

from sd_parsers.exceptions import ParserError
from sd_parsers.parsers import InvokeAIParser

from .common import _add_lora, _empty_params, _object, _set_sampler, _short_hash, _to_float, _to_int, map_sampler


def _parse_invokeai(doc: dict[str, Any]) -> dict[str, Any]:
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


def _parse_invokeai_legacy(doc: dict[str, Any]) -> dict[str, Any]:
    """InvokeAI 2.x ``sd-metadata``: {"model_weights", "model_hash", "image": {...}}."""
    params = _empty_params()
    image = _object(doc, "image")
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


_INVOKEAI = InvokeAIParser(normalize_parameters=True)


def _parse_invokeai_dream(text: str) -> dict[str, Any] | None:
    """InvokeAI 1.x `Dream` chunk; None when sd-parsers cannot read it."""
    try:
        info = _INVOKEAI.parse({"Dream": text})
    except (ParserError, KeyError, TypeError, ValueError):
        return None
    params = _empty_params()
    sampler = info.samplers[0]
    settings, meta = sampler.parameters, dict(info.metadata)
    params["prompt"] = ", ".join(p.value for p in sampler.prompts)
    params["negative_prompt"] = ", ".join(p.value for p in sampler.negative_prompts)
    params["steps"] = _to_int(settings.get("steps"))
    params["seed"] = _to_int(settings.get("seed"))
    params["cfg"] = _to_float(settings.get("cfg_scale"))
    params["width"], params["height"] = _to_int(meta.pop("width", None)), _to_int(meta.pop("height", None))
    _set_sampler(params, sampler.name)
    # -f is img2img's strength in the dream command line
    params["strength"] = _to_float(meta.pop("f", None))
    params["kind"] = "img2img" if params["strength"] is not None else "txt2img"
    params["extra"].update(meta)
    return params
