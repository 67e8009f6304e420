"""ComfyUI: the API-format node graph in the `prompt` chunk, walked back from the sampler that made the image."""

from __future__ import annotations

from typing import Any, Iterator

from .common import _add_lora, _basename, _empty_params, _set_sampler, _set_scheduler, _to_float, _to_int


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

    def node(self, node_id: Any) -> dict[str, Any] | None:
        return self.nodes.get(str(node_id))

    def is_link(self, value: Any) -> bool:
        return (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
                and str(value[0]) in self.nodes)

    def inputs(self, node: dict[str, Any] | None) -> dict[str, Any]:
        data = node.get("inputs") if node else None
        return data if isinstance(data, dict) else {}

    def class_type(self, node: dict[str, Any] | None) -> str:
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

    def is_sampler(self, node: dict[str, Any]) -> bool:
        kind = self.class_type(node)
        if kind in _COMFY_SAMPLERS:
            return True
        inputs = self.inputs(node)
        return (kind.startswith(("KSampler", "SamplerCustom")) and kind != "KSamplerSelect"
                and any(k in inputs for k in ("positive", "guider", "latent_image")))

    def upstream(self, start_ids: list[str], keys: tuple[str, ...] | None = None) -> Iterator[str]:
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

    def texts(self, link: Any, depth: int = 0, seen: set[tuple[str, Any]] | None = None) -> list[str]:
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

    def model(self, link: Any, params: dict[str, Any]) -> None:
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
        link: Any = inputs.get("sigmas")
        hops = 0
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


def _parse_comfyui(doc: dict[str, Any]) -> dict[str, Any]:
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
