"""Full-size random-weight checkpoints in the real SD1.5 and SDXL single-file layouts (LDM tensor names).

stable-diffusion.cpp builds its UNet, autoencoder and CLIP text encoders with fixed sizes per family and
refuses a file whose tensor shapes differ, so these are full size: SD1.5 is about 1.07 billion F16 weights
(2.1 GB), SDXL about 3.5 billion (6.9 GB). Writing stays fast because no weight is drawn one by one: every
tensor is a window of one seeded pool of normal numbers, scaled for its fan-in, and the file is streamed a
tensor at a time (`write_safetensors_stream`), so memory stays near the size of the largest tensor.

The tensors follow the original LDM checkpoint naming (`model.diffusion_model.*`, `first_stage_model.*`,
`cond_stage_model.transformer.text_model.*` for SD1.5; `conditioner.embedders.{0,1}.*` for SDXL) with the
shapes of the channel plans in stable-diffusion.cpp's unet.hpp, vae.hpp and clip.hpp. The weights are
random: images are structured noise, but loading, sampling, img2img and inpainting run the real code.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from .safetensors import write_safetensors_stream

__all__ = ["SD15_PARAMS", "SDXL_PARAMS", "sd15_tensors", "sdxl_tensors", "write_sd15_checkpoint",
           "write_sd_vae", "write_sdxl_checkpoint"]

# (name, shape, init): init is a gain for a weight (std gain/sqrt(fan_in)), "one" or "zero"
Spec = tuple[str, tuple[int, ...], "float | str"]

_POOL = 1 << 24  # 16 Mi normal numbers (64 MB) shared by every tensor of a file
_F16 = np.dtype(np.float16)


# --------------------------------------------------------------------------- building blocks


def _norm(prefix: str, ch: int) -> Iterator[Spec]:
    yield f"{prefix}.weight", (ch,), "one"
    yield f"{prefix}.bias", (ch,), "zero"


def _linear(prefix: str, out_f: int, in_f: int, bias: bool = True, gain: float = 1.0) -> Iterator[Spec]:
    yield f"{prefix}.weight", (out_f, in_f), gain
    if bias:
        yield f"{prefix}.bias", (out_f,), "zero"


def _conv(prefix: str, out_c: int, in_c: int, k: int = 3, gain: float = 1.0) -> Iterator[Spec]:
    yield f"{prefix}.weight", (out_c, in_c, k, k), gain
    yield f"{prefix}.bias", (out_c,), "zero"


def _unet_resblock(p: str, in_c: int, out_c: int, emb: int) -> Iterator[Spec]:
    yield from _norm(f"{p}.in_layers.0", in_c)
    yield from _conv(f"{p}.in_layers.2", out_c, in_c, gain=math.sqrt(2))
    yield from _linear(f"{p}.emb_layers.1", out_c, emb)
    yield from _norm(f"{p}.out_layers.0", out_c)
    yield from _conv(f"{p}.out_layers.3", out_c, out_c, gain=0.5)  # trained to start near zero: keep it small
    if in_c != out_c:
        yield from _conv(f"{p}.skip_connection", out_c, in_c, k=1)


def _transformer(p: str, ch: int, context: int, depth: int, linear_proj: bool) -> Iterator[Spec]:
    yield from _norm(f"{p}.norm", ch)
    if linear_proj:
        yield from _linear(f"{p}.proj_in", ch, ch)
    else:
        yield from _conv(f"{p}.proj_in", ch, ch, k=1)
    for d in range(depth):
        b = f"{p}.transformer_blocks.{d}"
        yield from _norm(f"{b}.norm1", ch)
        for proj in ("to_q", "to_k", "to_v"):
            yield from _linear(f"{b}.attn1.{proj}", ch, ch, bias=False)
        yield from _linear(f"{b}.attn1.to_out.0", ch, ch, gain=0.5)
        yield from _norm(f"{b}.norm2", ch)
        yield from _linear(f"{b}.attn2.to_q", ch, ch, bias=False)
        yield from _linear(f"{b}.attn2.to_k", ch, context, bias=False)
        yield from _linear(f"{b}.attn2.to_v", ch, context, bias=False)
        yield from _linear(f"{b}.attn2.to_out.0", ch, ch, gain=0.5)
        yield from _norm(f"{b}.norm3", ch)
        yield from _linear(f"{b}.ff.net.0.proj", ch * 8, ch)  # GEGLU: value and gate halves of 4 x ch
        yield from _linear(f"{b}.ff.net.2", ch, ch * 4, gain=0.5)
    if linear_proj:
        yield from _linear(f"{p}.proj_out", ch, ch, gain=0.5)
    else:
        yield from _conv(f"{p}.proj_out", ch, ch, k=1, gain=0.5)


def _unet(mult: tuple[int, ...], depth: tuple[int, ...], middle: int, context: int, linear_proj: bool,
          adm: int = 0) -> Iterator[Spec]:
    """The LDM UNet of unet.hpp: 320 base channels, two res blocks per level, attention where depth > 0."""
    p, base, emb = "model.diffusion_model", 320, 1280
    yield from _linear(f"{p}.time_embed.0", emb, base)
    yield from _linear(f"{p}.time_embed.2", emb, emb)
    if adm:
        yield from _linear(f"{p}.label_emb.0.0", emb, adm)
        yield from _linear(f"{p}.label_emb.0.2", emb, emb)
    yield from _conv(f"{p}.input_blocks.0.0", base, 4)
    skips, ch, index = [base], base, 1
    for level, m in enumerate(mult):
        for _ in range(2):
            yield from _unet_resblock(f"{p}.input_blocks.{index}.0", ch, base * m, emb)
            ch = base * m
            if depth[level]:
                yield from _transformer(f"{p}.input_blocks.{index}.1", ch, context, depth[level], linear_proj)
            skips.append(ch)
            index += 1
        if level != len(mult) - 1:
            yield from _conv(f"{p}.input_blocks.{index}.0.op", ch, ch)
            skips.append(ch)
            index += 1
    yield from _unet_resblock(f"{p}.middle_block.0", ch, ch, emb)
    yield from _transformer(f"{p}.middle_block.1", ch, context, middle, linear_proj)
    yield from _unet_resblock(f"{p}.middle_block.2", ch, ch, emb)
    index = 0
    for level in reversed(range(len(mult))):
        for i in range(3):
            out = base * mult[level]
            yield from _unet_resblock(f"{p}.output_blocks.{index}.0", ch + skips.pop(), out, emb)
            ch = out
            sub = 1
            if depth[level]:
                yield from _transformer(f"{p}.output_blocks.{index}.1", ch, context, depth[level], linear_proj)
                sub = 2
            if level and i == 2:
                yield from _conv(f"{p}.output_blocks.{index}.{sub}.conv", ch, ch)
            index += 1
    yield from _norm(f"{p}.out.0", ch)
    yield from _conv(f"{p}.out.2", 4, ch)


def _vae_resblock(p: str, in_c: int, out_c: int) -> Iterator[Spec]:
    yield from _norm(f"{p}.norm1", in_c)
    yield from _conv(f"{p}.conv1", out_c, in_c, gain=math.sqrt(2))
    yield from _norm(f"{p}.norm2", out_c)
    yield from _conv(f"{p}.conv2", out_c, out_c, gain=0.5)
    if in_c != out_c:
        yield from _conv(f"{p}.nin_shortcut", out_c, in_c, k=1)


def _vae_mid(p: str, ch: int) -> Iterator[Spec]:
    yield from _vae_resblock(f"{p}.block_1", ch, ch)
    yield from _norm(f"{p}.attn_1.norm", ch)
    for proj in ("q", "k", "v"):
        yield from _conv(f"{p}.attn_1.{proj}", ch, ch, k=1)
    yield from _conv(f"{p}.attn_1.proj_out", ch, ch, k=1, gain=0.5)
    yield from _vae_resblock(f"{p}.block_2", ch, ch)


def _vae() -> Iterator[Spec]:
    """The KL-f8 autoencoder of SD1.x/SDXL: 128 channels x (1, 2, 4, 4), 4 latent channels."""
    p, base, mult = "first_stage_model", 128, (1, 2, 4, 4)
    yield from _conv(f"{p}.encoder.conv_in", base, 3)
    ch = base
    for level, m in enumerate(mult):
        for b in range(2):
            yield from _vae_resblock(f"{p}.encoder.down.{level}.block.{b}", ch, base * m)
            ch = base * m
        if level != len(mult) - 1:
            yield from _conv(f"{p}.encoder.down.{level}.downsample.conv", ch, ch)
    yield from _vae_mid(f"{p}.encoder.mid", ch)
    yield from _norm(f"{p}.encoder.norm_out", ch)
    yield from _conv(f"{p}.encoder.conv_out", 8, ch)  # mean and log-variance
    yield from _conv(f"{p}.quant_conv", 8, 8, k=1)
    yield from _conv(f"{p}.post_quant_conv", 4, 4, k=1)
    ch = base * mult[-1]
    yield from _conv(f"{p}.decoder.conv_in", ch, 4)
    yield from _vae_mid(f"{p}.decoder.mid", ch)
    for level in reversed(range(len(mult))):
        for b in range(3):
            yield from _vae_resblock(f"{p}.decoder.up.{level}.block.{b}", ch, base * mult[level])
            ch = base * mult[level]
        if level:
            yield from _conv(f"{p}.decoder.up.{level}.upsample.conv", ch, ch)
    yield from _norm(f"{p}.decoder.norm_out", ch)
    yield from _conv(f"{p}.decoder.conv_out", 3, ch)


def _clip_l(p: str) -> Iterator[Spec]:
    """OpenAI CLIP ViT-L/14 text model (HF names): 768 wide, 12 layers, 77 positions, 49408 tokens."""
    yield f"{p}.embeddings.token_embedding.weight", (49408, 768), 16.0  # std ~0.6 whatever the fan-in
    yield f"{p}.embeddings.position_embedding.weight", (77, 768), 4.0
    for i in range(12):
        b = f"{p}.encoder.layers.{i}"
        yield from _norm(f"{b}.layer_norm1", 768)
        for proj in ("q_proj", "k_proj", "v_proj"):
            yield from _linear(f"{b}.self_attn.{proj}", 768, 768)
        yield from _linear(f"{b}.self_attn.out_proj", 768, 768, gain=0.5)
        yield from _norm(f"{b}.layer_norm2", 768)
        yield from _linear(f"{b}.mlp.fc1", 3072, 768)
        yield from _linear(f"{b}.mlp.fc2", 768, 3072, gain=0.5)
    yield from _norm(f"{p}.final_layer_norm", 768)


def _clip_bigg(p: str) -> Iterator[Spec]:
    """OpenCLIP ViT-bigG/14 text model (open_clip names): 1280 wide, 32 layers, fused q/k/v."""
    yield f"{p}.token_embedding.weight", (49408, 1280), 20.0
    yield f"{p}.positional_embedding", (77, 1280), 4.0
    for i in range(32):
        b = f"{p}.transformer.resblocks.{i}"
        yield from _norm(f"{b}.ln_1", 1280)
        yield f"{b}.attn.in_proj_weight", (3840, 1280), 1.0
        yield f"{b}.attn.in_proj_bias", (3840,), "zero"
        yield from _linear(f"{b}.attn.out_proj", 1280, 1280, gain=0.5)
        yield from _norm(f"{b}.ln_2", 1280)
        yield from _linear(f"{b}.mlp.c_fc", 5120, 1280)
        yield from _linear(f"{b}.mlp.c_proj", 1280, 5120, gain=0.5)
    yield from _norm(f"{p}.ln_final", 1280)
    yield f"{p}.text_projection", (1280, 1280), 1.0


def sd15_tensors() -> list[Spec]:
    return [*_unet((1, 2, 4, 4), (1, 1, 1, 0), 1, 768, linear_proj=False), *_vae(),
            *_clip_l("cond_stage_model.transformer.text_model")]


def sdxl_tensors() -> list[Spec]:
    return [*_unet((1, 2, 4), (0, 2, 10), 10, 2048, linear_proj=True, adm=2816), *_vae(),
            *_clip_l("conditioner.embedders.0.transformer.text_model"), *_clip_bigg("conditioner.embedders.1.model")]


def _count(specs: list[Spec]) -> int:
    return sum(int(np.prod(shape)) for _, shape, _ in specs)


SD15_PARAMS = _count(sd15_tensors())
SDXL_PARAMS = _count(sdxl_tensors())


# --------------------------------------------------------------------------- writing


class _Pool:
    """One seeded block of normal numbers; each tensor reads a window of it at an offset from its name."""

    def __init__(self, seed: int, kind: str) -> None:
        rng = np.random.default_rng([int(seed) & ((1 << 64) - 1), zlib.crc32(kind.encode())])
        self.numbers = rng.standard_normal(_POOL, dtype=np.float32)
        self.seed = int(seed)

    def window(self, name: str, n: int) -> np.ndarray:
        start = (zlib.crc32(name.encode()) * 2654435761 + self.seed) % _POOL
        if start + n <= _POOL:
            return self.numbers[start:start + n]
        return np.resize(np.roll(self.numbers, -start), n)  # a long tensor wraps around the pool


def _write(path: str | os.PathLike[str], specs: list[Spec], seed: int, kind: str, meta: dict[str, str]) -> Path:
    pool = _Pool(seed, kind)
    inits = {name: init for name, _, init in specs}

    def produce(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        init = inits[name]
        n = int(np.prod(shape))
        if init == "one":
            return np.ones(shape, dtype)
        if init == "zero":
            return np.zeros(shape, dtype)
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        std = np.float32(float(init) / math.sqrt(fan_in))
        return (pool.window(name, n) * std).astype(dtype).reshape(shape)

    meta = {"format": "pt", "ddtui.synthetic": kind, "ddtui.seed": str(int(seed)), **meta}
    return write_safetensors_stream(path, ((name, _F16, shape) for name, shape, _ in specs), produce, meta)


def write_sd15_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """A full SD1.5 single-file checkpoint (UNet, KL-f8 autoencoder, CLIP ViT-L text encoder), F16, ~2.1 GB."""
    return _write(path, sd15_tensors(), seed, "sd15-checkpoint", {"architecture": "sd1"})


def write_sdxl_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """A full SDXL base single-file checkpoint (UNet, autoencoder, CLIP-L and OpenCLIP bigG), F16, ~6.9 GB."""
    return _write(path, sdxl_tensors(), seed, "sdxl-checkpoint", {"architecture": "sdxl"})


def write_sd_vae(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """A standalone KL-f8 autoencoder (`encoder.*`, `decoder.*`), the kind a sidecar's `vae` names; ~168 MB."""
    prefix = "first_stage_model."
    specs = [(name[len(prefix):], shape, init) for name, shape, init in _vae()]
    return _write(path, specs, seed, "sd-vae", {"architecture": "kl-f8"})
