"""Which model family a file holds, read from its tensors, and what follows from the family.

Detection reads only the tensor index (names and shapes) of a `.safetensors`, `.gguf` or `.ckpt` file, never
the weights, and applies the same evidence stable-diffusion.cpp's loader uses (its `get_sd_version`): a UNet
with two text encoders is SDXL, a CLIP token embedding 768 wide is SD1.x and 1024 wide SD2.x, `joint_blocks`
is SD3, `double_blocks` FLUX.1 (with a `distilled_guidance_layer`: Chroma), the shared modulation FLUX.2,
`cap_embedder` Z-Image, `img_mod` Qwen-Image, `cross_attn.norm_k` Wan. Results are cached per path, size and
modification time, so listing a folder of multi-gigabyte models costs a few header reads once.

The family decides the defaults a model gets when its sidecar gives none, which generation parameters apply
(there is no "Guidance" on an SD1.5 image) and the size alignment: the installed stable-diffusion.cpp rounds a
request up to `VAE scale x diffusion-model down factor` pixels — 8 x 8 = 64 for the UNet families, 8 x 1 = 8 for
most DiT families (they pad to their patch size inside the model and crop back), 16 x 1 for FLUX.2 (its
autoencoder scales by 16) and 8 x 2 for Wan (16 x 2 for Wan 2.2 TI2V).
"""

from __future__ import annotations

import json
import os
import pickletools
import struct
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["FAMILIES", "Family", "ModelInfo", "detect", "detect_from_tensors", "family", "family_of_version"]


@dataclass(frozen=True)
class Family:
    """A model family and what ddtui does differently for it."""

    id: str
    label: str
    architecture: str  # "unet" or "dit"
    align: int  # the sampled width and height are multiples of this (pixels)
    defaults: dict[str, Any]  # width, height, steps, cfg, sampler, scheduler
    prediction: str  # what stable-diffusion.cpp uses for it ("" = it decides from the weights)
    clip_skip: bool  # a CLIP text encoder: "clip skip" applies


def _d(size: tuple[int, int], steps: int, cfg: float, sampler: str, scheduler: str = "discrete") -> dict[str, Any]:
    return {"width": size[0], "height": size[1], "steps": steps, "cfg": cfg, "sampler": sampler,
            "scheduler": scheduler}


FAMILIES: dict[str, Family] = {f.id: f for f in (
    Family("sd1", "SD 1.x", "unet", 64, _d((512, 512), 20, 7.0, "euler_a"), "eps", True),
    Family("sd2", "SD 2.x", "unet", 64, _d((768, 768), 20, 7.0, "euler_a"), "", True),
    Family("sdxl", "SDXL", "unet", 64, _d((1024, 1024), 25, 6.0, "dpm++2m", "karras"), "eps", True),
    Family("sd3", "SD 3.x", "dit", 8, _d((1024, 1024), 28, 4.5, "euler"), "flow", False),
    Family("flux", "FLUX.1", "dit", 8, _d((1024, 1024), 20, 1.0, "euler"), "flux_flow", False),
    Family("flux2", "FLUX.2", "dit", 16, _d((1024, 1024), 28, 1.0, "euler"), "flux2_flow", False),
    Family("chroma", "Chroma", "dit", 8, _d((1024, 1024), 26, 4.0, "euler"), "flux_flow", False),
    Family("z-image", "Z-Image", "dit", 8, _d((1024, 1024), 8, 1.0, "euler", "simple"), "flow", False),
    Family("qwen-image", "Qwen-Image", "dit", 8, _d((1024, 1024), 20, 2.5, "euler"), "flow", False),
    Family("wan", "Wan", "dit", 16, _d((832, 480), 30, 6.0, "euler"), "flow", False),
    # Nothing known: stable-diffusion.cpp's own choices, and the strictest alignment so any model lines up.
    Family("unknown", "unknown", "", 64, _d((512, 512), 20, 7.0, "euler_a"), "", False),
)}

# Sidecar `family` values (informative, kept for existing sidecars) -> the family they belong to.
SIDECAR_FAMILIES: dict[str, str] = {
    **{fid: fid for fid in FAMILIES},
    "sd3.5": "sd3", "flux2-klein": "flux2", "kontext": "flux", "qwen-image-edit": "qwen-image", "ovis": "flux",
    "lumina": "unknown", "other": "unknown",
}

# stable-diffusion.cpp's "Version: ..." log label -> (family, alignment when it differs from the family's).
_SDCPP_VERSIONS: dict[str, tuple[str, int | None]] = {
    "SD 1.x": ("sd1", None), "SD 1.x Inpaint": ("sd1", None), "Instruct-Pix2Pix": ("sd1", None),
    "SD 1.x Tiny UNet": ("sd1", None), "SDXS (512-DS)": ("sd1", None),
    "SD 2.x": ("sd2", None), "SD 2.x Inpaint": ("sd2", None), "SD 2.x Tiny UNet": ("sd2", None),
    "SDXS (09)": ("sd2", None),
    "SDXL": ("sdxl", None), "SDXL Inpaint": ("sdxl", None), "SDXL Instruct-Pix2Pix": ("sdxl", None),
    "SDXL (Vega)": ("sdxl", None), "SDXL (SSD1B)": ("sdxl", None), "SVD": ("unknown", 64),
    "SD3.x": ("sd3", None), "Flux": ("flux", None), "Flux Fill": ("flux", None), "Flux Control": ("flux", None),
    "Flex.2": ("flux", None), "Ovis Image": ("flux", None), "Chroma Radiance": ("chroma", 8),
    "Wan 2.x": ("wan", None), "Wan 2.2 I2V": ("wan", None), "Wan 2.2 TI2V": ("wan", 32),
    "Qwen Image": ("qwen-image", None), "Anima": ("unknown", 8), "Flux.2": ("flux2", None),
    "Flux.2 klein": ("flux2", None), "Z-Image": ("z-image", None), "Ernie Image": ("unknown", 16),
}


def family(family_id: str) -> Family:
    """The family for an id or a sidecar's family value ("unknown" for anything else)."""
    return FAMILIES[SIDECAR_FAMILIES.get(family_id or "unknown", "unknown")]


def family_of_version(label: str) -> tuple[Family, int] | None:
    """The family and alignment for the version stable-diffusion.cpp logs at load ("Version: SDXL")."""
    found = _SDCPP_VERSIONS.get(label.strip())
    if found is None:
        return None
    fam = FAMILIES[found[0]]
    return fam, found[1] or fam.align


@dataclass
class ModelInfo:
    """What the tensors of one file say."""

    family: str = "unknown"
    variant: str = ""  # stable-diffusion.cpp's finer label: "SD 1.x Inpaint", "Flux.2 klein", ...
    align: int = 64
    guidance: bool = False  # the model has a distilled-guidance input (FLUX.1 dev, FLUX.2 dev)
    prediction: str = ""  # beyond the family's: SDXL "v" / "edm_v" markers
    components: str = ""  # "checkpoint" (UNet/VAE/text encoders in one file) or "diffusion_model"
    error: str = ""  # why the file could not be read (the family is then "unknown")
    tensors: int = 0

    @property
    def label(self) -> str:
        return self.variant or FAMILIES[self.family].label

    def to_dict(self) -> dict[str, Any]:
        out = {"family": self.family, "label": self.label, "align": self.align, "guidance": self.guidance,
               "layout": self.components}
        if self.prediction:
            out["prediction"] = self.prediction
        if self.error:
            out["error"] = self.error
        return out


# --------------------------------------------------------------------------- reading tensor indexes

Shape = tuple[int, ...] | None  # torch order (outermost first); None when the format does not say


def _safetensors_index(path: Path) -> dict[str, Shape]:
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) != 8:
            raise ValueError("too short for a safetensors file")
        (size,) = struct.unpack("<Q", prefix)
        if not 2 <= size <= 100 * 1024 * 1024:
            raise ValueError(f"implausible safetensors header length {size}")
        header = json.loads(fh.read(size).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the safetensors header is not an object")
    return {name: tuple(int(d) for d in info.get("shape", ())) for name, info in header.items()
            if name != "__metadata__" and isinstance(info, dict)}


def _gguf_index(path: Path) -> dict[str, Shape]:
    from .synthetic.gguf import read_gguf_tensor_infos

    # GGUF lists dimensions innermost first (ggml's ne); turn them into torch order like safetensors.
    return {name: tuple(reversed(ne)) for name, ne in read_gguf_tensor_infos(path).items()}


def _ckpt_index(path: Path) -> dict[str, Shape]:
    """Tensor names of a PyTorch zip checkpoint, read from its pickle without running it (no shapes)."""
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if not pickles:
            raise ValueError("no data.pkl in the checkpoint archive")
        data = zf.read(pickles[0])
    names: dict[str, Shape] = {}
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8") and isinstance(arg, str):
            if "." in arg and (arg.endswith((".weight", ".bias", ".scale")) or "diffusion_model" in arg):
                names[arg] = None
    return names


def tensor_index(path: Path) -> dict[str, Shape]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _safetensors_index(path)
    if suffix == ".gguf":
        return _gguf_index(path)
    if suffix in (".ckpt", ".pt", ".pth"):
        return _ckpt_index(path)
    raise ValueError(f"cannot read tensors of a {suffix} file")


# --------------------------------------------------------------------------- the evidence


def _normalise(names: Iterable[str]) -> list[str]:
    """Names as stable-diffusion.cpp sees them after loading: a standalone diffusion model gets its prefix."""
    names = list(names)
    is_checkpoint = any(n.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.",
                                      "conditioner.", "unet.")) for n in names)
    if is_checkpoint:
        return names
    out = []
    for n in names:
        if n.startswith("diffusion_model."):
            n = n[len("diffusion_model."):]
        elif n.startswith("model."):
            n = n[len("model."):]
        out.append("model.diffusion_model." + n)
    return out


def detect_from_tensors(index: dict[str, Shape]) -> ModelInfo:
    """The family from a tensor index (name -> torch-order shape), by stable-diffusion.cpp's rules."""
    raw = dict(index)
    names = _normalise(raw)
    shapes = dict(zip(names, raw.values()))
    info = ModelInfo(tensors=len(names))
    info.components = "checkpoint" if any(n.startswith(("first_stage_model.", "cond_stage_model.", "conditioner."))
                                          for n in raw) else "diffusion_model"

    def has(fragment: str) -> bool:
        return any(fragment in n for n in names)

    def shape(name: str) -> Shape:
        return shapes.get(name)

    def done(fam: str, variant: str = "", align: int | None = None) -> ModelInfo:
        info.family, info.variant = fam, variant
        info.align = align or FAMILIES[fam].align
        info.guidance = has("model.diffusion_model.guidance_in.in_layer.weight")
        if fam == "sdxl":
            info.prediction = "edm_v" if "edm_vpred.sigma_max" in raw else "v" if "v_pred" in raw else ""
        return info

    if has("model.diffusion_model.nerf_final_layer_conv."):
        return done("chroma", "Chroma Radiance", 8)
    if has("model.diffusion_model.joint_blocks."):
        return done("sd3")
    if has("model.diffusion_model.transformer_blocks.0.img_mod.1.weight"):
        return done("qwen-image")
    if has("model.diffusion_model.cap_embedder.0.weight"):
        return done("z-image")
    if has("model.diffusion_model.blocks.0.cross_attn.norm_k.weight"):
        patch = shape("model.diffusion_model.patch_embedding.weight")
        merged = patch[0] * patch[1] if patch and len(patch) >= 2 else 0  # sd.cpp sees out x in as one dim
        if merged == 147456 and not has("model.diffusion_model.img_emb"):
            return done("wan", "Wan 2.2 TI2V", 32)
        return done("wan", "Wan 2.2 I2V" if merged == 184320 and not has("model.diffusion_model.img_emb")
                    else "Wan 2.x")
    if has("model.diffusion_model.double_stream_modulation_img.lin.weight"):
        return done("flux2", "Flux.2" if has("single_blocks.47.linear1.weight") else "Flux.2 klein")
    if has("model.diffusion_model.double_blocks."):
        if has("model.diffusion_model.distilled_guidance_layer."):
            return done("chroma")
        return done("flux")

    is_unet = has("model.diffusion_model.input_blocks.") or has("unet.down_blocks.")
    two_encoders = has("conditioner.embedders.1") or has("cond_stage_model.1") or has("te.1")
    first = shape("model.diffusion_model.input_blocks.0.0.weight") or shape("unet.conv_in.weight")
    in_channels = first[1] if first and len(first) == 4 else 4
    inpaint = " Inpaint" if in_channels == 9 else ""
    middle = has("model.diffusion_model.middle_block.1.") or has("unet.mid_block.resnets.1.")
    if is_unet and two_encoders:
        if in_channels == 8:
            return done("sdxl", "SDXL Instruct-Pix2Pix")
        if not middle:
            return done("sdxl", "SDXL (Vega)" if not has("model.diffusion_model.output_blocks.3.1.transformer_blocks.1")
                        else "SDXL (SSD1B)")
        return done("sdxl", "SDXL" + inpaint)
    width = None
    for name in ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                 "cond_stage_model.model.token_embedding.weight", "text_model.embeddings.token_embedding.weight",
                 "te.text_model.embeddings.token_embedding.weight",
                 "conditioner.embedders.0.model.token_embedding.weight",
                 "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"):
        if name in shapes or name in raw:
            emb = shapes.get(name) or raw.get(name)
            width = emb[-1] if emb else (1024 if ".model.token_embedding" in name else 768)
            break
    if is_unet and width == 768:
        return done("sd1", "SD 1.x" + inpaint if middle else "SD 1.x Tiny UNet")
    if is_unet and width == 1024:
        return done("sd2", "SD 2.x" + inpaint if middle else "SD 2.x Tiny UNet")
    if is_unet:
        info.error = "a UNet without a text encoder stable-diffusion.cpp recognises"
    return done("unknown")


_cache: dict[tuple[str, int, int], ModelInfo] = {}
_cache_lock = threading.Lock()


def detect(path: str | os.PathLike[str]) -> ModelInfo:
    """The family of a model file, cached by path, size and modification time."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        return ModelInfo(error=f"cannot read the file: {exc.strerror}")
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        info = detect_from_tensors(tensor_index(p))
    except (OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError, struct.error) as exc:
        info = ModelInfo(error=f"cannot read the tensor index: {exc}")
    with _cache_lock:
        if len(_cache) > 1024:
            _cache.clear()
        _cache[key] = info
    return info
