"""The stable-diffusion.cpp backend of a worker: model contexts, generation, hires fix, upscaling.

Owns every call into ``stable_diffusion_cpp`` (stable-diffusion-cpp-python 0.4.7): one image-model
context per model signature (reused while the signature stays the same), a few ESRGAN upscaler
contexts, ``<lora:name:weight>`` checks, txt2img/img2img/inpaint one image at a time (so each image of
a batch is sent the moment it exists and a cancel stops between images), previews, the flat-image
retry with VAE tiling, and the hires fix the binding silently ignores. Runs on the job thread of
``workers.loop``; never imports Textual.

Binding traps handled here: progress/preview callbacks live in global C state and must be reset after
every call (``reset_callbacks``); ``verbose=False`` swaps the process-wide stdout/stderr fds during each
call and has its log levels inverted, so the worker installs its own log callback and passes
``verbose=True``.

Sizes: stable-diffusion.cpp rounds a request up to its family's multiple (64 for the UNet families, 8 or 16 for
the DiT ones; see ``ddtui.catalog.families``) and stretches the init image and mask to that size. The worker
learns the family from the "Version:" line the library logs at load (the tensors as a fallback), samples at
exactly that aligned size with the init image and mask padded (not stretched) to it, and crops the result back,
so every output pixel lines up with the init image. An inpainted result is then composited with the original
through the feathered mask: outside the mask every pixel is the input's.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from ddtui.catalog.families import detect, family_of_version
from ddtui.catalog.models import (
    COMPONENTS,
    FLAT_KEYS,
    FLAGS,
    FORMATS,
    PREDICTIONS,
    CatalogError,
    nested_form,
    resolve_inside,
    sidecar_path,
)
from ddtui.catalog.synthetic.sdcpp_compat import reset_callbacks

from .loop import JobContext, WorkerError, resolve_model_file, sidecar_options

__all__ = ["SDBackend", "is_flat", "parse_loras"]

log = logging.getLogger("ddtui.worker.sd")
native_log = logging.getLogger("ddtui.worker.sdcpp")

MIN_SIZE, MAX_SIZE = 64, 4096
MAX_INPUT_PIXELS = MAX_SIZE * MAX_SIZE
MAX_BATCH = 64
MAX_UPSCALERS = 2
LORA_EXTENSIONS = (".safetensors", ".gguf", ".pt")  # what the binding tries, in its order
LORA_RE = re.compile(r"<lora:([^:>]+):([^>]+)>")  # the binding's own pattern: validate exactly what it would load
HIGH_NOISE = "|high_noise|"
PREVIEW_METHODS = ("proj", "tae", "vae")
FLAG_ARGS = {"clip_on_cpu": "keep_clip_on_cpu", "vae_on_cpu": "keep_vae_on_cpu",
             "offload_to_cpu": "offload_params_to_cpu", "flash_attn": "flash_attn"}
_SD_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


# --------------------------------------------------------------------------- pure helpers


def is_flat(image: Image.Image, share: float = 0.99) -> bool:
    """True when almost every pixel has the same colour (what a failed VAE decode looks like)."""
    arr = np.asarray(image.convert("RGB"))
    step = max(1, int(math.sqrt(arr.shape[0] * arr.shape[1] / 262144)))  # sample ~256k pixels at most
    flat = arr[::step, ::step].reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    _, counts = np.unique(packed, return_counts=True)
    return bool(counts.max() >= share * packed.size)


def parse_loras(prompt: str, lora_dir: Path, model_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """Check every ``<lora:name:weight>`` tag and rewrite it to the exact file found in ``lora_dir``.

    A name with a path separator, ``..``, a missing file or a non-number weight raises
    ``WorkerError("bad_lora")``: the binding would otherwise resolve absolute or relative paths itself.
    """
    found: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        raw, raw_weight = match.group(1), match.group(2)
        prefix = HIGH_NOISE if raw.startswith(HIGH_NOISE) else ""
        name = raw[len(prefix):].strip()
        if not name or "/" in name or "\\" in name or name in (".", "..") or ":" in name or "\0" in name:
            raise WorkerError("bad_lora", f"LoRA name {raw!r} must be a plain file name inside lora/")
        try:
            weight = float(raw_weight)
        except ValueError:
            raise WorkerError("bad_lora", f"LoRA weight {raw_weight!r} for {name!r} is not a number") from None
        if not math.isfinite(weight):
            raise WorkerError("bad_lora", f"LoRA weight {raw_weight!r} for {name!r} is not finite")
        candidates = [name] if name.lower().endswith(LORA_EXTENSIONS) else [name + ext for ext in LORA_EXTENSIONS]
        for candidate in candidates:
            rel = f"{lora_dir.name}/{candidate}"
            try:
                path = resolve_inside(model_dir, rel)
            except CatalogError as exc:
                raise WorkerError("bad_lora", f"LoRA {name!r}: {exc}") from None
            if path.is_file():
                found.append({"name": Path(candidate).stem, "file": candidate, "weight": weight,
                              "high_noise": bool(prefix)})
                return f"<lora:{prefix}{candidate}:{weight:g}>"
        raise WorkerError("bad_lora", f"no LoRA named {name!r} in {lora_dir.name}/")

    return LORA_RE.sub(replace, prompt), found


def align_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _fit(image: Image.Image, w: int, h: int, gen_w: int, gen_h: int, mode: str) -> Image.Image:
    """Resize to the requested size, then pad right/bottom (edge pixels) to exactly the size that is sampled."""
    image = image.convert(mode)
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.LANCZOS if mode == "RGB" else Image.Resampling.BILINEAR)
    if (gen_w, gen_h) == (w, h):
        return image
    arr = np.asarray(image)
    pad = ((0, gen_h - h), (0, gen_w - w)) + (((0, 0),) if arr.ndim == 3 else ())
    return Image.fromarray(np.pad(arr, pad, mode="edge"), mode)


def composite_inpaint(original: Image.Image, generated: Image.Image, mask: Image.Image, blur: int) -> Image.Image:
    """The generated image inside the mask, the original outside it, blended over a feather inside its edge.

    The feather is a Gaussian blur of the mask clipped to the mask itself, so it softens the seam inwards and
    never reaches outside: wherever the mask is black the result is the original, byte for byte.
    """
    orig = np.asarray(original.convert("RGB"))
    gen = np.asarray(generated.convert("RGB").resize(original.size, Image.Resampling.LANCZOS)
                     if generated.size != original.size else generated.convert("RGB"))
    m = mask.convert("L")
    if m.size != original.size:
        m = m.resize(original.size, Image.Resampling.BILINEAR)
    hard = np.asarray(m)
    # sigma = blur / 2: the blend reaches the generated image about `blur` pixels inside the mask's edge
    soft = np.asarray(m.filter(ImageFilter.GaussianBlur(blur / 2))) if blur > 0 else hard
    alpha = (np.minimum(hard, soft).astype(np.float32) / 255.0)[..., None]
    blended = np.rint(orig + (gen.astype(np.float32) - orig) * alpha).clip(0, 255).astype(np.uint8)
    out = np.where(alpha > 0, blended, orig)
    return Image.fromarray(out, "RGB")


def _png(image: Image.Image, level: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def _decode_image(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        w, h = image.size  # header only: check before decoding pixels
        if w * h > MAX_INPUT_PIXELS or w < 1 or h < 1:
            raise WorkerError("bad_params", f"{what} is {w}x{h}; at most {MAX_INPUT_PIXELS} pixels")
        image.load()
        return image
    except WorkerError:
        raise
    except Exception as exc:
        raise WorkerError("bad_params", f"{what} is not a readable image ({type(exc).__name__})") from None


def _memory_or(reason: str, exc: BaseException) -> WorkerError:
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "memory" in text or "alloc" in text:
        return WorkerError("out_of_memory", f"{type(exc).__name__}: {exc}")
    if "null pointer" in text:
        # The binding dereferences the NULL that stable-diffusion.cpp returns when it cannot run the model.
        return WorkerError(reason, "stable-diffusion.cpp produced no image: the model or one of its components is "
                                   "incomplete or does not match (see the worker log for its messages)")
    return WorkerError(reason, f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- model specs


@dataclass
class ModelSpec:
    """A resolved image model: binding constructor arguments plus per-generation defaults."""

    rel: str
    args: dict[str, Any]
    signature: str
    vae_tiling: bool = False
    flow_shift: float | None = None
    family: str = "unknown"  # from the tensors; replaced by what stable-diffusion.cpp reports at load
    align: int = 64


def _file_stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def resolve_model(model_dir: Path, rel: Any, options: Any) -> ModelSpec:
    """Check the model and its options; ``options`` None means "read the sidecar next to the model"."""
    path = resolve_model_file(model_dir, rel, "model")
    info = detect(path)
    if options is None:
        options = sidecar_options(path, ("format", "components", "flags", "prediction", "flow_shift")
                                  + tuple(FLAT_KEYS))
        try:
            options, _ = nested_form(options, info.components)
        except CatalogError as exc:
            raise WorkerError("load_failed", f"sidecar {sidecar_path(path).name}: {exc}") from None
    if not isinstance(options, dict):
        raise WorkerError("bad_params", "options must be an object")
    fmt = options.get("format") or "checkpoint"
    if fmt not in FORMATS:
        raise WorkerError("bad_params", f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    args: dict[str, Any] = {"model_path" if fmt == "checkpoint" else "diffusion_model_path": str(path)}
    stamps: dict[str, Any] = {"model": [rel, *_file_stamp(path)]}
    components = options.get("components") or {}
    if not isinstance(components, dict):
        raise WorkerError("bad_params", "options.components must be an object")
    for name, comp_rel in sorted(components.items()):
        if name not in COMPONENTS:
            raise WorkerError("bad_params", f"unknown component {name!r} (known: {', '.join(COMPONENTS)})")
        comp = resolve_model_file(model_dir, comp_rel, f"component {name}")
        args[COMPONENTS[name]] = str(comp)
        stamps[name] = [comp_rel, *_file_stamp(comp)]
    flags = options.get("flags") or {}
    if not isinstance(flags, dict) or any(k not in FLAGS or not isinstance(v, bool) for k, v in flags.items()):
        raise WorkerError("bad_params", f"options.flags must map {', '.join(FLAGS)} to true/false")
    for flag, arg in FLAG_ARGS.items():
        if flags.get(flag):
            args[arg] = True
    if flags.get("flash_attn"):
        args["diffusion_flash_attn"] = True
    prediction = options.get("prediction") or ""
    if prediction and prediction not in PREDICTIONS:
        raise WorkerError("bad_params", f"prediction must be one of {', '.join(PREDICTIONS)}")
    if prediction:
        args["prediction"] = prediction
    flow_shift = options.get("flow_shift")
    if flow_shift is not None and (isinstance(flow_shift, bool) or not isinstance(flow_shift, (int, float))):
        raise WorkerError("bad_params", "options.flow_shift must be a number")
    # only what shapes the context goes into the signature; vae_tiling and flow_shift are per generation
    key = {"format": fmt, "files": stamps, "flags": {k: v for k, v in flags.items() if k != "vae_tiling"},
           "prediction": prediction}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return ModelSpec(rel, args, f"{rel}#{digest}", bool(flags.get("vae_tiling")),
                     float(flow_shift) if flow_shift is not None else None, info.family, info.align)


# --------------------------------------------------------------------------- generation parameters


@dataclass
class Hires:
    width: int
    height: int
    steps: int
    strength: float
    upscaler: str


@dataclass
class GenParams:
    mode: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg: float
    guidance: float
    sampler: str
    scheduler: str
    seed: int
    batch: int
    strength: float
    clip_skip: int
    vae_tiling: bool | None
    preview_every: int
    preview_size: int
    preview_method: str
    hires: Hires | None
    mask_blur: int = 10
    loras: list[dict[str, Any]] = field(default_factory=list)


def _num(params: dict[str, Any], name: str, default: Any, lo: float, hi: float, integer: bool = False) -> Any:
    value = params.get(name, default)
    if value is None:
        value = default
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not (lo <= value <= hi):
        kind = "an integer" if integer else "a number"
        raise WorkerError("bad_params", f"{name} must be {kind} from {lo:g} to {hi:g}, got {value!r}")
    return value


def _size(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value % 8 or not MIN_SIZE <= value <= MAX_SIZE:
        raise WorkerError("bad_params", f"{name} must be a multiple of 8 from {MIN_SIZE} to {MAX_SIZE}, got {value!r}")
    return value


def parse_params(params: dict[str, Any], maps: tuple[dict[str, Any], dict[str, Any]]) -> GenParams:
    samplers, schedulers = maps
    mode = params.get("mode", "txt2img")
    if mode not in ("txt2img", "img2img", "inpaint"):
        raise WorkerError("bad_params", f"mode must be txt2img, img2img or inpaint, got {mode!r}")
    prompt = params.get("prompt", "")
    negative = params.get("negative_prompt", "") or ""
    if not isinstance(prompt, str) or not isinstance(negative, str):
        raise WorkerError("bad_params", "prompt and negative_prompt must be strings")
    width, height = _size(params, "width", 512), _size(params, "height", 512)
    sampler = params.get("sampler") or "default"
    scheduler = params.get("scheduler") or "default"
    if sampler not in samplers or sampler.endswith("_count"):
        raise WorkerError("bad_params", f"unknown sampler {sampler!r}")
    if scheduler not in schedulers or scheduler.endswith("_count"):
        raise WorkerError("bad_params", f"unknown scheduler {scheduler!r}")
    seed = params.get("seed")
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed < 0):
        seed = secrets.randbelow(2**31)  # chosen here so the reported seed reproduces the image
    seed = _num({"seed": seed}, "seed", 0, 0, 2**63 - MAX_BATCH, integer=True)
    vae_tiling = params.get("vae_tiling")
    if vae_tiling is not None and not isinstance(vae_tiling, bool):
        raise WorkerError("bad_params", "vae_tiling must be true, false or null")
    preview_method = params.get("preview_method") or "proj"
    if preview_method not in PREVIEW_METHODS:
        raise WorkerError("bad_params", f"preview_method must be one of {', '.join(PREVIEW_METHODS)}")
    steps = _num(params, "steps", 20, 1, 500, integer=True)
    strength = float(_num(params, "strength", 0.75, 0.0, 1.0))
    hires = None
    raw_hires = params.get("hires")
    if raw_hires is not None and not isinstance(raw_hires, dict):
        raise WorkerError("bad_params", "hires must be an object")
    if raw_hires and raw_hires.get("enabled"):
        if raw_hires.get("width") or raw_hires.get("height"):
            hw, hh = _size(raw_hires, "width", width), _size(raw_hires, "height", height)
        else:
            scale = float(_num(raw_hires, "scale", 2.0, 1.0, 8.0))
            hw, hh = int(round(width * scale / 8)) * 8, int(round(height * scale / 8)) * 8
            if not (MIN_SIZE <= hw <= MAX_SIZE and MIN_SIZE <= hh <= MAX_SIZE):
                raise WorkerError("bad_params", f"hires size {hw}x{hh} is outside {MIN_SIZE}..{MAX_SIZE}")
        upscaler = raw_hires.get("upscaler") or ""
        if not isinstance(upscaler, str):
            raise WorkerError("bad_params", "hires.upscaler must be a catalog path or empty")
        hires = Hires(hw, hh, _num(raw_hires, "steps", steps, 1, 500, integer=True),
                      float(_num(raw_hires, "strength", 0.5, 0.0, 1.0)), upscaler)
    return GenParams(
        mode=mode, prompt=prompt, negative_prompt=negative, width=width, height=height, steps=steps,
        cfg=float(_num(params, "cfg", 7.0, 0.0, 50.0)), guidance=float(_num(params, "guidance", 3.5, 0.0, 50.0)),
        sampler=sampler, scheduler=scheduler, seed=seed,
        batch=_num(params, "batch", 1, 1, MAX_BATCH, integer=True), strength=strength,
        clip_skip=_num(params, "clip_skip", -1, -1, 12, integer=True), vae_tiling=vae_tiling,
        preview_every=_num(params, "preview_every", 0, 0, 500, integer=True),
        preview_size=_num(params, "preview_size", 128, 16, 1024, integer=True),
        preview_method=preview_method, hires=hires,
        mask_blur=_num(params, "mask_blur", 10, 0, 256, integer=True),
    )


# --------------------------------------------------------------------------- the backend


class SDBackend:
    """stable-diffusion.cpp behind the worker loop (job thread only, apart from ``describe``)."""

    kind = "sd"
    capabilities = ["txt2img", "img2img", "inpaint", "upscale", "hires", "lora", "preview"]
    job_types = frozenset({"load_model", "generate", "upscale"})

    def __init__(self, model_dir: Path, threads: int) -> None:
        import importlib.metadata
        import platform

        import stable_diffusion_cpp  # noqa: F401 - fail at start, not at the first job
        import stable_diffusion_cpp.stable_diffusion as sd_module
        import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp

        from .devices import backend_of

        self.model_dir = Path(model_dir).resolve()
        self.threads = threads
        self._module = sd_module
        self._maps = (sd_module.SAMPLE_METHOD_MAP, sd_module.SCHEDULER_MAP)
        self._sd: Any = None
        self._spec: ModelSpec | None = None
        self._upscalers: OrderedDict[str, tuple[list[int], Any]] = OrderedDict()
        _install_log_callback(sd_cpp)
        self._describe = {
            "backend": backend_of(sd_cpp._lib),
            "threads": threads,
            "versions": {
                "python": platform.python_version(),
                "stable_diffusion_cpp": importlib.metadata.version("stable-diffusion-cpp-python"),
                "pyzmq": __import__("zmq").__version__,
            },
        }

    # ------------------------------------------------------------------ Backend protocol
    @property
    def loaded_model(self) -> str | None:
        return self._spec.signature if self._spec and self._sd is not None else None

    def describe(self) -> dict[str, Any]:
        return self._describe

    def run(self, ctx: JobContext) -> dict[str, Any]:
        if ctx.msg_type == "generate":
            return self._generate(ctx)
        if ctx.msg_type == "upscale":
            return self._upscale_job(ctx)
        raise WorkerError("unsupported", f"sd worker cannot run {ctx.msg_type}")

    def close(self) -> None:
        self._free_model()
        for _, upscaler in self._upscalers.values():
            upscaler.close()
        self._upscalers.clear()
        reset_callbacks()

    # ------------------------------------------------------------------ models
    def _free_model(self) -> None:
        if self._sd is not None:
            self._sd.close()
            self._sd = None
            reset_callbacks()
        self._spec = None

    def _quiet_binding(self) -> None:
        # the constructor re-applies the binding's inverted levels; only our C log callback should speak
        logging.getLogger("stable-diffusion-cpp-python").setLevel(logging.CRITICAL + 10)

    def ensure_model(self, ctx: JobContext, rel: Any, options: Any) -> tuple[bool, float]:
        """Load (or keep) the model; returns (loaded now, seconds spent loading)."""
        if rel is None and self._spec is not None:
            return False, 0.0
        if rel is None:
            raise WorkerError("bad_params", "no model loaded and none named")
        spec = resolve_model(self.model_dir, rel, options)
        if self._sd is not None and self._spec is not None and self._spec.signature == spec.signature:
            spec.family, spec.align = self._spec.family, self._spec.align  # as the loaded context reported
            self._spec = spec  # same context; per-generation defaults may have changed
            return False, 0.0
        self._free_model()
        ctx.set_state("loading")
        ctx.progress(0, 1, "loading", force=True)
        start = time.monotonic()
        import stable_diffusion_cpp.stable_diffusion_cpp as sd_cpp

        @sd_cpp.sd_progress_callback  # type: ignore[untyped-decorator]  # a ctypes callback type
        def on_load(step: int, steps: int, _t: float, _data: Any) -> None:
            try:
                ctx.progress(step, max(steps, 1), "loading")
            except Exception:  # an exception inside a ctypes callback is only printed
                log.exception("load progress")

        sd_cpp.sd_set_progress_callback(on_load, ctypes.c_void_p(0))
        _versions_seen.clear()
        try:
            self._sd = self._module.StableDiffusion(
                **spec.args,
                lora_model_dir=str(self.model_dir / "lora"),
                n_threads=self.threads,
                verbose=True,
            )
        except Exception as exc:
            self._sd = None
            raise _memory_or("load_failed", exc) from None
        finally:
            reset_callbacks()
            self._quiet_binding()
            ctx.set_state("busy")
        reported = family_of_version(_versions_seen[-1]) if _versions_seen else None
        if reported is not None:
            fam, align = reported
            if fam.id != spec.family and spec.family != "unknown":
                log.warning("%s: the tensors look like %s but stable-diffusion.cpp runs it as %s",
                            spec.rel, spec.family, _versions_seen[-1])
            spec.family, spec.align = fam.id, align
        self._spec = spec
        seconds = time.monotonic() - start
        log.info("loaded %s (%s, sizes aligned to %d) in %.2fs", spec.signature, spec.family, spec.align, seconds)
        return True, seconds

    def _upscaler(self, rel: Any) -> Any:
        path = resolve_model_file(self.model_dir, rel, "upscaler")
        stamp = _file_stamp(path)
        cached = self._upscalers.get(rel)
        if cached is not None and cached[0] == stamp:
            self._upscalers.move_to_end(rel)
            return cached[1]
        if cached is not None:
            cached[1].close()
            del self._upscalers[rel]
        try:
            # a StableDiffusion with only upscaler_path creates no image model, just the ESRGAN context
            upscaler = self._module.StableDiffusion(upscaler_path=str(path), n_threads=self.threads, verbose=True)
        except Exception as exc:
            raise _memory_or("load_failed", exc) from None
        finally:
            reset_callbacks()
            self._quiet_binding()
        self._upscalers[rel] = (stamp, upscaler)
        while len(self._upscalers) > MAX_UPSCALERS:
            _, (_, old) = self._upscalers.popitem(last=False)
            old.close()
        return upscaler

    def _esrgan(self, upscaler: Any, image: Image.Image) -> Image.Image:
        try:
            (out,) = upscaler.upscale(image.convert("RGB"), upscale_factor=1)  # the factor is ignored
        except Exception as exc:
            raise _memory_or("upscale_failed", exc) from None
        finally:
            reset_callbacks()
        upscaled: Image.Image = out.convert("RGB")
        return upscaled

    # ------------------------------------------------------------------ generate
    def _generate(self, ctx: JobContext) -> dict[str, Any]:
        params = dict(ctx.params)
        if "preview_every" not in params and isinstance(ctx.content.get("preview_every"), int):
            params["preview_every"] = ctx.content["preview_every"]  # the registry also allows it top-level
        gp = parse_params(params, self._maps)
        gp.prompt, gp.loras = parse_loras(gp.prompt, self.model_dir / "lora", self.model_dir)
        init = mask = None
        if gp.mode in ("img2img", "inpaint"):
            init = self._buffer_image(ctx, params, "init_buffer", "init image")
        if gp.mode == "inpaint":
            mask = self._buffer_image(ctx, params, "mask_buffer", "mask")
        if gp.hires and gp.hires.upscaler:
            resolve_model_file(self.model_dir, gp.hires.upscaler, "hires upscaler")  # fail before spending a load
        loaded, load_seconds = self.ensure_model(ctx, params.get("model"), params.get("options"))
        assert self._spec is not None
        images = 0
        status = "done"
        for index in range(gp.batch):
            if ctx.cancelled():
                status = "cancelled"
                break
            start = time.monotonic()
            seed = gp.seed + index
            image, info = self._one_image(ctx, gp, seed, init, mask)
            info.update({"seed": seed, "elapsed": round(time.monotonic() - start, 4), "mode": gp.mode,
                         "steps": gp.steps, "loras": gp.loras, "model": self._spec.signature})
            ctx.emit("image", {"index": index, "info": info}, [_png(image, 3)])
            images += 1
        if status == "done" and ctx.cancelled() and images < gp.batch:
            status = "cancelled"
        return {"status": status, "info": {"images": images, "elapsed": round(ctx.elapsed(), 4), "loaded": loaded,
                                           "load_seconds": round(load_seconds, 4), "signature": self._spec.signature}}

    def _buffer_image(self, ctx: JobContext, params: dict[str, Any], name: str, what: str) -> Image.Image:
        index = params.get(name, 0 if name == "init_buffer" else 1)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(ctx.buffers):
            raise WorkerError("bad_params", f"{what}: params.{name} must index one of the {len(ctx.buffers)} buffers")
        return _decode_image(ctx.buffers[index], what)

    def _one_image(
        self, ctx: JobContext, gp: GenParams, seed: int, init: Image.Image | None, mask: Image.Image | None
    ) -> tuple[Image.Image, dict[str, Any]]:
        info: dict[str, Any] = {}
        image = self._sample_checked(ctx, gp, info, seed=seed, init=init, mask=mask, width=gp.width,
                                     height=gp.height, steps=gp.steps, strength=gp.strength, phase="sampling")
        if init is not None and mask is not None:
            original = init.convert("RGB")
            if original.size != image.size:
                original = original.resize(image.size, Image.Resampling.LANCZOS)
            image = composite_inpaint(original, image, mask, gp.mask_blur)
            info["mask_blur"] = gp.mask_blur
        if gp.hires is not None:
            hr = gp.hires
            ctx.progress(0, 1, "upscaling", force=True)
            if hr.upscaler:
                upscaler = self._upscaler(hr.upscaler)
                for _ in range(4):  # an x2 model may need two passes for a x3/x4 target
                    if image.width >= hr.width and image.height >= hr.height:
                        break
                    image = self._esrgan(upscaler, image)
            if image.size != (hr.width, hr.height):
                image = image.resize((hr.width, hr.height), Image.Resampling.LANCZOS)
            ctx.progress(1, 1, "upscaling", force=True)
            image = self._sample_checked(ctx, gp, info, seed=seed, init=image, mask=None, width=hr.width,
                                         height=hr.height, steps=hr.steps, strength=hr.strength, phase="hires")
            info["hires"] = {"width": hr.width, "height": hr.height, "steps": hr.steps, "strength": hr.strength,
                             "upscaler": hr.upscaler, "base_width": gp.width, "base_height": gp.height}
        assert self._spec is not None
        info.update({"width": image.width, "height": image.height, "family": self._spec.family,
                     "align": self._spec.align})
        return image, info

    def _sample_checked(self, ctx: JobContext, gp: GenParams, info: dict[str, Any], **kw: Any) -> Image.Image:
        assert self._spec is not None
        tiling = gp.vae_tiling if gp.vae_tiling is not None else self._spec.vae_tiling
        image = self._sample(ctx, gp, vae_tiling=tiling, **kw)
        if is_flat(image):
            if tiling:
                raise WorkerError("flat_image", "the decoded image is flat (VAE failure) even with VAE tiling")
            log.warning("flat image at %dx%d: retrying with VAE tiling", kw["width"], kw["height"])
            image = self._sample(ctx, gp, vae_tiling=True, **kw)
            info["retried_with_vae_tiling"] = True
            if is_flat(image):
                raise WorkerError("flat_image", "the decoded image is flat (VAE failure) even with VAE tiling")
        return image

    def _sample(
        self, ctx: JobContext, gp: GenParams, *, seed: int, init: Image.Image | None, mask: Image.Image | None,
        width: int, height: int, steps: int, strength: float, phase: str, vae_tiling: bool,
    ) -> Image.Image:
        assert self._sd is not None and self._spec is not None
        gen_w, gen_h = align_up(width, self._spec.align), align_up(height, self._spec.align)
        state = {"phase": phase}

        def on_progress(step: int, total: int, _t: float) -> None:
            try:
                ctx.progress(step, total, state["phase"])
                if state["phase"] == phase and step >= total:
                    state["phase"] = "decoding"  # later callbacks (tiled VAE) belong to decoding
                    ctx.progress(0, 1, "decoding", force=True)
            except Exception:  # an exception inside a ctypes callback is only printed
                log.exception("progress callback")

        def on_preview(step: int, frames: list[Image.Image], _noisy: bool) -> None:
            try:
                if not frames:
                    return
                frame = frames[0].convert("RGB")
                fw, fh = frame.size
                frame = frame.crop((0, 0, max(1, round(fw * width / gen_w)), max(1, round(fh * height / gen_h))))
                frame.thumbnail((gp.preview_size, gp.preview_size), Image.Resampling.BILINEAR)
                ctx.emit("preview", {"step": int(step), "width": frame.width, "height": frame.height},
                         [_png(frame, 1)])
            except Exception:
                log.exception("preview callback")

        kwargs: dict[str, Any] = dict(
            prompt=gp.prompt, negative_prompt=gp.negative_prompt, clip_skip=gp.clip_skip,
            width=gen_w, height=gen_h, cfg_scale=gp.cfg, guidance=gp.guidance, scheduler=gp.scheduler,
            sample_method=gp.sampler, sample_steps=steps, strength=strength, seed=seed, batch_count=1,
            vae_tiling=vae_tiling, progress_callback=on_progress,
        )
        if self._spec.flow_shift is not None:
            kwargs["flow_shift"] = self._spec.flow_shift
        if init is not None:
            kwargs["init_image"] = _fit(init, width, height, gen_w, gen_h, "RGB")
        if mask is not None:
            kwargs["mask_image"] = _fit(mask, width, height, gen_w, gen_h, "L")
        if gp.preview_every > 0:
            kwargs.update(preview_method=gp.preview_method, preview_interval=gp.preview_every,
                          preview_callback=on_preview)
        ctx.progress(0, steps, "encoding", force=True)
        try:
            images = self._sd.generate_image(**kwargs)
        except WorkerError:
            raise
        except Exception as exc:
            raise _memory_or("generation_failed", exc) from None
        finally:
            reset_callbacks()
        if not images:
            raise WorkerError("generation_failed", "the binding returned no image")
        image: Image.Image = images[0].convert("RGB")  # the binding returns RGBA
        if image.size != (gen_w, gen_h):
            # The library aligned differently than its family says: scale back so the padding maps right.
            log.warning("asked for %dx%d, stable-diffusion.cpp returned %dx%d", gen_w, gen_h, *image.size)
            image = image.resize((gen_w, gen_h), Image.Resampling.LANCZOS)
        if image.size != (width, height):
            image = image.crop((0, 0, width, height))
        return image

    # ------------------------------------------------------------------ upscale
    def _upscale_job(self, ctx: JobContext) -> dict[str, Any]:
        params = ctx.params
        rel = params.get("upscaler")
        if not isinstance(rel, str) or not rel:
            raise WorkerError("bad_params", "params.upscaler must name an ESRGAN model (esrgan/...)")
        repeats = _num(params, "repeats", 1, 1, 4, integer=True)
        if not ctx.buffers:
            raise WorkerError("bad_params", "upscale needs the image as buffer 0")
        image = _decode_image(ctx.buffers[0], "image").convert("RGB")
        upscaler = self._upscaler(rel)
        for n in range(repeats):
            ctx.progress(n, repeats, "upscaling", force=True)
            image = self._esrgan(upscaler, image)
            if image.width * image.height > MAX_INPUT_PIXELS * 4:
                raise WorkerError("bad_params", f"upscaled image would be {image.width}x{image.height}; too large")
        ctx.progress(repeats, repeats, "upscaling", force=True)
        info = {"width": image.width, "height": image.height, "upscaler": rel, "repeats": repeats,
                "elapsed": round(ctx.elapsed(), 4)}
        ctx.emit("image", {"index": 0, "info": info}, [_png(image, 3)])
        return {"status": "done", "info": {"images": 1, "elapsed": round(ctx.elapsed(), 4)}}


# --------------------------------------------------------------------------- native logging

_log_callback_ref: Any = None
_VERSION_LINE = re.compile(rb" - Version: (.+?)\s*$")  # "stable-diffusion.cpp:305  - Version: SDXL "
_versions_seen: list[str] = []  # the "Version: ..." labels stable-diffusion.cpp logged while loading


def _install_log_callback(sd_cpp: Any) -> None:
    """Route sd.cpp's log through ``logging`` with the right levels (kept alive for the process)."""
    global _log_callback_ref
    if _log_callback_ref is not None:
        return

    @sd_cpp.sd_log_callback  # type: ignore[untyped-decorator]  # a ctypes callback type
    def on_log(level: int, text: bytes, _data: Any) -> None:
        try:
            py_level = _SD_LEVELS.get(level, logging.INFO)
            found = _VERSION_LINE.search(text)
            if found:
                _versions_seen.append(found.group(1).decode("utf-8", "replace").strip())
            if native_log.isEnabledFor(py_level):
                native_log.log(py_level, "%s", text.decode("utf-8", "replace").rstrip())
        except Exception:
            pass  # never raise into C

    _log_callback_ref = on_log
    sd_cpp.sd_set_log_callback(on_log, ctypes.c_void_p(0))
    logging.getLogger("stable-diffusion-cpp-python").setLevel(logging.CRITICAL + 10)
