"""Tiny synthetic stable-diffusion.cpp models: real architectures, random weights.

Owns the writers for the demo image-generation set that the real
stable-diffusion.cpp (via stable-diffusion-cpp-python 0.4.7) loads and runs:

* ``write_flux2_klein_diffusion`` - FLUX.2 [klein] DiT, standalone diffusion
  model file (``diffusion_model_path``), hidden 128, 1 double + 1 single block;
* ``write_qwen3_text_encoder`` - one-layer Qwen3 LLM text encoder (``llm_path``),
  hidden 32, full 151936-token vocabulary (the built-in tokenizer emits ids up
  to 151644+);
* ``write_flux2_tiny_autoencoder`` - FLUX.2 tiny autoencoder "taef2"
  (``taesd_path``), encoder + decoder so img2img / inpaint work without a VAE;
* ``write_lora`` - a rank-4 LoRA on real layers of the DiT above;
* ``write_esrgan`` - an RRDBNet ESRGAN for the upscaler (``upscaler_path``).

Everything is numpy only, deterministic from ``seed`` and written atomically
with the in-house safetensors writer. Shapes mirror the C++ sources of the
vendored stable-diffusion.cpp (flux.hpp, llm.hpp, tae.hpp, esrgan.hpp,
lora.hpp, model.cpp, name_conversion.cpp), noted next to each tensor group.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np

from .safetensors import write_safetensors

__all__ = [
    "FLUX2_HIDDEN",
    "QWEN3_HIDDEN",
    "QWEN3_VOCAB",
    "RECOMMENDED_GENERATION",
    "write_esrgan",
    "write_flux2_klein_diffusion",
    "write_flux2_tiny_autoencoder",
    "write_lora",
    "write_qwen3_text_encoder",
]

PathLike = str | os.PathLike[str]

# --- FLUX.2 DiT (flux.hpp FluxRunner, sd_version_is_flux2 branch) -------------
FLUX2_HIDDEN = 128  # read from txt_in.weight; must equal num_heads * head_dim
FLUX2_HEAD_DIM = 128  # RoPE axes_dim {32,32,32,32} is hard-coded, so head_dim is 128
FLUX2_LATENT_CHANNELS = 128  # in/out channels are hard-coded: 32 TAE channels x 2x2 patchify
FLUX2_MLP_HIDDEN = 3 * FLUX2_HIDDEN  # mlp_ratio is hard-coded to 3
FLUX2_TIME_DIM = 256  # sinusoidal timestep embedding width fed to time_in

# --- Qwen3 text encoder (llm.hpp LLMRunner, LLMArch::QWEN3) -----------------
QWEN3_HIDDEN = 32  # read from embed_tokens; becomes the DiT context_in_dim
QWEN3_VOCAB = 151936  # the built-in Qwen2 tokenizer's ids (e.g. <|im_start|>=151644) must index it
QWEN3_HEADS = 32  # hard-coded for QWEN3 unless num_layers == 28
QWEN3_KV_HEADS = 8  # hard-coded
QWEN3_HEAD_DIM = 128  # hard-coded
QWEN3_INTERMEDIATE = 96  # read from mlp.gate_proj.weight

# --- Tiny autoencoder "taef2" (tae.hpp TAESD with taef2 = true) ---------------
TAE_CHANNELS = 64  # hard-coded in TinyEncoder / TinyDecoder
TAE_LATENT_CHANNELS = 32  # z_channels for FLUX.2; the DiT sees them patchified 2x2 (128)
TAE_BLOCKS = 3  # num_blocks per stage, hard-coded

# --- ESRGAN (esrgan.hpp RRDBNet; only scale and block count are read from the file)
ESRGAN_FEAT = 64
ESRGAN_GROW = 32

# Generation settings that suit this set (the catalog sidecar copies them).
RECOMMENDED_GENERATION: dict[str, object] = {
    "width": 64,
    "height": 64,
    "sample_steps": 4,
    "cfg_scale": 1.0,  # klein is guidance-distilled; 1.0 also skips the unconditional pass
    "sample_method": "euler",  # sd.cpp's own default for DiT models
    "scheduler": "default",  # -> discrete; FLUX.2 derives its flow shift from the image size
    "strength": 0.75,
}

_U64 = (1 << 64) - 1


class _Init:
    """Deterministic weight factory: one numpy Generator per (seed, file kind)."""

    def __init__(self, seed: int, kind: str) -> None:
        # Salting with the kind keeps files from sharing a random stream for the same seed.
        self.rng = np.random.default_rng([int(seed) & _U64, zlib.crc32(kind.encode())])

    def normal(self, shape: tuple[int, ...], std: float, dtype=np.float32) -> np.ndarray:
        out = self.rng.standard_normal(shape, dtype=np.float32)
        out *= np.float32(std)
        return out.astype(dtype, copy=False)

    def linear(self, out_f: int, in_f: int, gain: float = 1.0, dtype=np.float32) -> np.ndarray:
        # torch layout [out, in]; std gain/sqrt(fan_in) keeps activations O(1) at any width.
        return self.normal((out_f, in_f), gain / math.sqrt(in_f), dtype)

    def conv(self, out_c: int, in_c: int, k: int, gain: float = 1.0) -> np.ndarray:
        # sd.cpp stores every Conv2d kernel as F16, so write F16 and skip a load-time conversion.
        return self.normal((out_c, in_c, k, k), gain / math.sqrt(in_c * k * k), np.float16)


def _ones(n: int) -> np.ndarray:
    return np.ones((n,), dtype=np.float32)


def _zeros(n: int) -> np.ndarray:
    return np.zeros((n,), dtype=np.float32)


def _meta(kind: str, seed: int, **extra: str) -> dict[str, str]:
    return {"format": "pt", "ddtui.synthetic": kind, "ddtui.seed": str(int(seed)), **extra}


# =============================================================================
# FLUX.2 [klein] diffusion model
# =============================================================================


def _flux2_tensors(seed: int) -> dict[str, np.ndarray]:
    init = _Init(seed, "flux2-klein-diffusion")
    h, m, c = FLUX2_HIDDEN, FLUX2_MLP_HIDDEN, FLUX2_LATENT_CHANNELS
    t: dict[str, np.ndarray] = {}
    # FLUX.2 sets disable_bias: no Linear has a bias. LayerNorms are affine-free.
    t["img_in.weight"] = init.linear(h, c)
    t["txt_in.weight"] = init.linear(h, QWEN3_HIDDEN)  # context_in_dim = TE hidden
    t["time_in.in_layer.weight"] = init.linear(h, FLUX2_TIME_DIM)
    t["time_in.out_layer.weight"] = init.linear(h, h)
    # share_modulation: one modulation per stream; this name is what model.cpp keys
    # FLUX.2 detection on (no single_blocks.47 -> the klein variant).
    t["double_stream_modulation_img.lin.weight"] = init.linear(6 * h, h, 0.5)
    t["double_stream_modulation_txt.lin.weight"] = init.linear(6 * h, h, 0.5)
    t["single_stream_modulation.lin.weight"] = init.linear(3 * h, h, 0.5)
    # Depth is counted from the highest double_blocks.N / single_blocks.N index.
    for stream in ("img", "txt"):
        p = f"double_blocks.0.{stream}_"
        t[p + "attn.qkv.weight"] = init.linear(3 * h, h)
        t[p + "attn.norm.query_norm.scale"] = _ones(FLUX2_HEAD_DIM)  # head_dim read from key_norm
        t[p + "attn.norm.key_norm.scale"] = _ones(FLUX2_HEAD_DIM)
        t[p + "attn.proj.weight"] = init.linear(h, h)
        t[p + "mlp.0.weight"] = init.linear(2 * m, h)  # SiLU-gated MLP: gate and value halves
        t[p + "mlp.2.weight"] = init.linear(h, m)
    t["single_blocks.0.linear1.weight"] = init.linear(3 * h + 2 * m, h)  # qkv + gated mlp
    t["single_blocks.0.linear2.weight"] = init.linear(h, h + m)
    t["single_blocks.0.norm.query_norm.scale"] = _ones(FLUX2_HEAD_DIM)
    t["single_blocks.0.norm.key_norm.scale"] = _ones(FLUX2_HEAD_DIM)
    t["final_layer.adaLN_modulation.1.weight"] = init.linear(2 * h, h, 0.5)
    t["final_layer.linear.weight"] = init.linear(c, h)  # patch_size 1 -> 128 outputs
    return t


def write_flux2_klein_diffusion(path: PathLike, seed: int) -> Path:
    """Write a FLUX.2 [klein]-architecture DiT as a standalone diffusion model file.

    Tensor names are the original (BFL) ones without prefix; sd.cpp adds
    ``model.diffusion_model.`` when loading it as ``diffusion_model_path``.
    """
    return write_safetensors(
        path,
        _flux2_tensors(seed),
        _meta(
            "flux2-klein-diffusion", seed, architecture="flux2-klein", hidden_size=str(FLUX2_HIDDEN)
        ),
    )


# =============================================================================
# Qwen3 text encoder
# =============================================================================


def write_qwen3_text_encoder(path: PathLike, seed: int) -> Path:
    """Write a one-layer Qwen3 LLM (HF naming) for ``llm_path``.

    The 151936 x 32 embedding dominates the size, so it and the projections
    are F16 (~10 MB); norms stay F32 as sd.cpp allocates them in F32.
    """
    init = _Init(seed, "qwen3-text-encoder")
    h, f16 = QWEN3_HIDDEN, np.float16
    q_dim, kv_dim = QWEN3_HEADS * QWEN3_HEAD_DIM, QWEN3_KV_HEADS * QWEN3_HEAD_DIM
    t: dict[str, np.ndarray] = {}
    # Unit-variance embeddings: RMSNorm rescales them anyway, and F16 keeps them exact enough.
    t["model.embed_tokens.weight"] = init.normal((QWEN3_VOCAB, h), 1.0, f16)
    p = "model.layers.0."
    t[p + "input_layernorm.weight"] = _ones(h)
    t[p + "self_attn.q_proj.weight"] = init.linear(q_dim, h, dtype=f16)
    t[p + "self_attn.k_proj.weight"] = init.linear(kv_dim, h, dtype=f16)
    t[p + "self_attn.v_proj.weight"] = init.linear(kv_dim, h, dtype=f16)
    t[p + "self_attn.o_proj.weight"] = init.linear(h, q_dim, dtype=f16)
    t[p + "self_attn.q_norm.weight"] = _ones(QWEN3_HEAD_DIM)  # Qwen3 qk_norm over head_dim
    t[p + "self_attn.k_norm.weight"] = _ones(QWEN3_HEAD_DIM)
    t[p + "post_attention_layernorm.weight"] = _ones(h)
    t[p + "mlp.gate_proj.weight"] = init.linear(QWEN3_INTERMEDIATE, h, dtype=f16)
    t[p + "mlp.up_proj.weight"] = init.linear(QWEN3_INTERMEDIATE, h, dtype=f16)
    t[p + "mlp.down_proj.weight"] = init.linear(h, QWEN3_INTERMEDIATE, dtype=f16)
    # With one layer none of klein's out_layers {9,18,27} exist, so sd.cpp returns norm(x).
    t["model.norm.weight"] = _ones(h)
    return write_safetensors(path, t, _meta("qwen3-text-encoder", seed, architecture="qwen3"))


# =============================================================================
# FLUX.2 tiny autoencoder (taef2)
# =============================================================================


def _tae_block(t: dict, init: _Init, prefix: str, with_pool: bool) -> None:
    # TAEBlock(64, 64): relu(conv4(relu(conv2(relu(conv0(x))))) + x), optional GN "pool" first.
    ch = TAE_CHANNELS
    if with_pool:
        # use_midblock_gn: x + conv(relu(groupnorm(conv(x)))) with 4x channels, no biases.
        t[prefix + "pool.0.weight"] = init.conv(4 * ch, ch, 1)
        t[prefix + "pool.1.weight"] = _ones(4 * ch)
        t[prefix + "pool.1.bias"] = _zeros(4 * ch)
        t[prefix + "pool.3.weight"] = init.conv(ch, 4 * ch, 1, 0.2)
    # He gain before ReLUs; a small last conv keeps ten stacked residuals from blowing up.
    for idx, gain in (("0", math.sqrt(2.0)), ("2", math.sqrt(2.0)), ("4", 0.3)):
        t[f"{prefix}conv.{idx}.weight"] = init.conv(ch, ch, 3, gain)
        t[f"{prefix}conv.{idx}.bias"] = init.normal((ch,), 0.02)


def _taef2_tensors(seed: int) -> dict[str, np.ndarray]:
    init = _Init(seed, "flux2-tiny-autoencoder")
    ch, z = TAE_CHANNELS, TAE_LATENT_CHANNELS
    t: dict[str, np.ndarray] = {}

    # Decoder (TinyDecoder): indices 1, 5, 10, 15 are ReLU / Upsample (no weights).
    d = "decoder.layers."
    t[d + "0.weight"] = init.conv(ch, z, 3, math.sqrt(2.0))
    t[d + "0.bias"] = _zeros(ch)
    index = 2
    for stage in range(3):
        for _ in range(TAE_BLOCKS):
            # taef2 puts the GroupNorm pool in the first (lowest resolution) decoder stage.
            _tae_block(t, init, f"{d}{index}.", with_pool=stage == 0)
            index += 1
        index += 1  # nn.Upsample
        t[f"{d}{index}.weight"] = init.conv(ch, ch, 3)  # bias-free conv after upsampling
        index += 1
    _tae_block(t, init, f"{d}{index}.", with_pool=False)
    index += 1
    # Output is used as-is in [0, 1]: centre at 0.5 with enough spread to show structure.
    w_out = init.conv(3, ch, 3, 1.0).astype(np.float32)
    # Features are post-ReLU (all positive): zero-mean kernels stop a random colour cast.
    w_out -= w_out.mean(axis=(1, 2, 3), keepdims=True)
    t[f"{d}{index}.weight"] = w_out.astype(np.float16)
    t[f"{d}{index}.bias"] = np.full((3,), 0.5, dtype=np.float32)

    # Encoder (TinyEncoder): input pixels are in [0, 1] (TAE skips the [-1, 1] rescale).
    e = "encoder.layers."
    t[e + "0.weight"] = init.conv(ch, 3, 3, math.sqrt(2.0) * 2.0)
    t[e + "0.bias"] = init.normal((ch,), 0.1)
    _tae_block(t, init, e + "1.", with_pool=False)
    index = 2
    for stage in range(3):
        t[f"{e}{index}.weight"] = init.conv(ch, ch, 3)  # stride-2 downsample, bias-free
        index += 1
        for _ in range(TAE_BLOCKS):
            # The encoder's GroupNorm pool sits in its last (lowest resolution) stage.
            _tae_block(t, init, f"{e}{index}.", with_pool=stage == 2)
            index += 1
    t[f"{e}{index}.weight"] = init.conv(z, ch, 3)  # -> 32 latent channels at 1/8
    t[f"{e}{index}.bias"] = _zeros(z)
    return t


def write_flux2_tiny_autoencoder(path: PathLike, seed: int) -> Path:
    """Write a FLUX.2 tiny autoencoder (taef2 layout) for ``taesd_path``.

    Includes the encoder, so the binding can run img2img and inpaint with
    ``vae_decode_only=False`` (its default) and no full VAE at all.
    """
    return write_safetensors(
        path, _taef2_tensors(seed), _meta("flux2-tiny-autoencoder", seed, architecture="taef2")
    )


# =============================================================================
# LoRA for the FLUX.2 DiT
# =============================================================================

# (layer name, out features, in features) for the adapted Linear layers.
_FLUX2_LORA_LAYERS = (
    ("double_blocks.0.img_attn.qkv", 3 * FLUX2_HIDDEN, FLUX2_HIDDEN),
    ("double_blocks.0.img_mlp.0", 2 * FLUX2_MLP_HIDDEN, FLUX2_HIDDEN),
    ("double_blocks.0.txt_attn.qkv", 3 * FLUX2_HIDDEN, FLUX2_HIDDEN),
    ("single_blocks.0.linear1", 3 * FLUX2_HIDDEN + 2 * FLUX2_MLP_HIDDEN, FLUX2_HIDDEN),
    ("single_blocks.0.linear2", FLUX2_HIDDEN, FLUX2_HIDDEN + FLUX2_MLP_HIDDEN),
    ("final_layer.linear", FLUX2_LATENT_CHANNELS, FLUX2_HIDDEN),
)
LORA_RANK = 4


def write_lora(path: PathLike, seed: int, target: str = "flux2") -> Path:
    """Write a rank-4 LoRA for the synthetic FLUX.2 DiT (kohya/comfy naming).

    Names are ``diffusion_model.<layer>.lora_down.weight`` / ``.lora_up.weight``
    / ``.alpha``; sd.cpp maps them onto ``model.diffusion_model.<layer>.weight``.
    The delta is about half the size of the weights it touches, so a
    ``<lora:name:0.8>`` tag visibly changes the image.
    """
    if target != "flux2":
        raise ValueError(f"unsupported LoRA target {target!r} (only 'flux2')")
    init = _Init(seed, "flux2-lora")
    t: dict[str, np.ndarray] = {}
    for layer, out_f, in_f in _FLUX2_LORA_LAYERS:
        p = f"diffusion_model.{layer}."
        # delta = up @ down * alpha / rank; element std ~ 0.5 / sqrt(in_f), half the base weights'.
        t[p + "lora_down.weight"] = init.linear(LORA_RANK, in_f)
        t[p + "lora_up.weight"] = init.normal((out_f, LORA_RANK), 0.5 / math.sqrt(LORA_RANK))
        t[p + "alpha"] = np.array(float(LORA_RANK), dtype=np.float32)  # scale alpha/rank = 1
    return write_safetensors(
        path, t, _meta("lora", seed, target=target, rank=str(LORA_RANK), architecture="flux2-klein")
    )


# =============================================================================
# ESRGAN upscaler
# =============================================================================


def _identity_conv(out_c: int, in_c: int, init: _Init, noise: float) -> np.ndarray:
    # Centre-tap identity on the first min(out, in) channels plus small noise: an
    # "upscaler" that keeps the picture recognisable instead of painting static.
    w = init.normal((out_c, in_c, 3, 3), noise / math.sqrt(in_c * 9))
    n = min(out_c, in_c, 3)
    w[np.arange(n), np.arange(n), 1, 1] += 1.0
    return w.astype(np.float16)


def write_esrgan(path: PathLike, seed: int, scale: int = 2, blocks: int = 0) -> Path:
    """Write an RRDBNet ESRGAN (BasicSR naming) that sd.cpp's upscaler loads.

    sd.cpp reads the scale from ``conv_up1`` / ``conv_up2`` and the block
    count from ``body.N``; widths are fixed (64 features, growth 32). The
    colour path is near-identity with seeded noise, so the result looks like
    the input upscaled with a faint texture. x2 with 0 blocks is ~0.23 MB.
    """
    if scale not in (1, 2, 4):
        raise ValueError("ESRGAN scale must be 1, 2 or 4")
    if blocks < 0:
        raise ValueError("blocks must be >= 0")
    init = _Init(seed, "esrgan")
    nf, gc = ESRGAN_FEAT, ESRGAN_GROW
    t: dict[str, np.ndarray] = {}
    t["conv_first.weight"] = _identity_conv(nf, 3, init, 0.2)
    t["conv_first.bias"] = _zeros(nf)
    for b in range(blocks):
        for r in (1, 2, 3):
            p = f"body.{b}.rdb{r}."
            for k in range(1, 6):
                in_c = nf + (k - 1) * gc
                out_c = nf if k == 5 else gc
                # Small residual branches: the identity path through the trunk dominates.
                t[f"{p}conv{k}.weight"] = init.conv(out_c, in_c, 3, 0.1)
                t[f"{p}conv{k}.bias"] = _zeros(out_c)
    # conv_body output is added to the trunk: keep it a faint perturbation.
    t["conv_body.weight"] = init.conv(nf, nf, 3, 0.05)
    t["conv_body.bias"] = _zeros(nf)
    ups = {1: (), 2: ("conv_up1",), 4: ("conv_up1", "conv_up2")}[scale]
    for name in ups + ("conv_hr",):
        t[f"{name}.weight"] = _identity_conv(nf, nf, init, 0.05)
        t[f"{name}.bias"] = _zeros(nf)
    t["conv_last.weight"] = _identity_conv(3, nf, init, 0.1)
    t["conv_last.bias"] = _zeros(3)
    return write_safetensors(
        path,
        t,
        _meta("esrgan", seed, architecture="RRDBNet", scale=str(scale), num_block=str(blocks)),
    )
