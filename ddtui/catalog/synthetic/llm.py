"""Synthetic tiny LLM and vision-projector GGUF files for tests and demos.

Owns ``write_tiny_llama`` (a 2-layer LLaMA-architecture model with an embedded
byte-level BPE tokenizer and a ChatML Jinja chat template) and
``write_tiny_mmproj`` (a CLIP vision encoder + llava "mlp" projector whose
output width matches the tiny LLaMA), both loadable by the llama.cpp bundled
with llama-cpp-python.  Weights are random (seeded), so the models produce
gibberish, but every code path (load, tokenize, chat template, sampling,
grammar, streaming, image encoding) runs for real in milliseconds.

Everything is deterministic in ``seed``: same seed -> byte-identical file.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddtui.catalog.synthetic.gguf import GGMLType, GGUFWriter

__all__ = [
    "CHATML_TEMPLATE",
    "TinyLlamaConfig",
    "TinyMmprojConfig",
    "TinyTokenizer",
    "build_tokenizer",
    "write_tiny_llama",
    "write_tiny_mmproj",
]

# ChatML; content may be a string, None, or a list of OpenAI-style parts.
# Image parts render as nothing here: the vision handler (MTMDChatHandler)
# replaces them with its media marker *before* rendering, and a text-only
# chat must not paste a multi-kB data: URI into the prompt.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- set content = message['content'] -%}"
    "{%- if content is string -%}"
    "{{- content -}}"
    "{%- elif content is iterable and content is not mapping -%}"
    "{%- for part in content -%}"
    "{%- if part is string -%}"
    "{{- part -}}"
    "{%- elif part is mapping and part['type'] == 'text' -%}"
    "{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)

BOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (BOS_TOKEN, IM_START, IM_END)

# llama.cpp token types (llama.h enum llama_token_type)
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_CONTROL = 3

# general.file_type values (llama.h enum llama_ftype)
FTYPE_ALL_F32 = 0
FTYPE_MOSTLY_F16 = 1

# Fixed merge-training text: tag/caption/JSON-ish English so common pieces
# like " the", "ing", '":' become single tokens.  Never changes with the seed.
_MERGE_CORPUS = (
    "the image shows a photo of the cat sitting on the red chair in the garden. "
    "a portrait of a woman with long hair, digital painting, highly detailed, "
    "sharp focus, studio lighting, landscape with mountains and a lake at sunset. "
    "tags: cat, dog, tree, house, city, street, night, rain, snow, forest, river. "
    'the prompt is {"caption": "a red car", "tags": ["car", "red"], "score": 3}. '
    "enhance the prompt, describe the style, the colors and the composition. "
    "there is the thing that the people think is interesting in the picture. "
)

# GPT-2 pre-tokenizer shape (letters, digits, other, whitespace), ASCII-only is enough here
_PRETOKENIZE_RE = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 byte -> printable unicode char map used by byte-level BPE vocabularies."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


@dataclass(frozen=True)
class TinyTokenizer:
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    merges: tuple[str, ...]
    bos_id: int
    eos_id: int
    im_start_id: int
    im_end_id: int


@functools.lru_cache(maxsize=8)
def build_tokenizer(n_merges: int = 64) -> TinyTokenizer:
    """Byte-level BPE vocab: ids 0..255 are the byte symbols (id == byte value),
    then ``n_merges`` learned merges, then the control tokens."""
    if n_merges < 1:
        # llama.cpp accepts an empty merges list, but then it is not really BPE
        raise ValueError("n_merges must be >= 1")
    b2u = _bytes_to_unicode()
    tokens: list[str] = [b2u[b] for b in range(256)]
    known = set(tokens)

    words = Counter(
        tuple(b2u[b] for b in piece.encode("utf-8")) for piece in _PRETOKENIZE_RE.findall(_MERGE_CORPUS)
    )
    merges: list[str] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, freq in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += freq
        if not pairs:
            break
        # most frequent pair, ties broken lexicographically so the result never depends on dict order
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merged = best[0] + best[1]
        merges.append(f"{best[0]} {best[1]}")
        if merged not in known:
            # two different merges can produce the same string; llama.cpp requires unique tokens
            tokens.append(merged)
            known.add(merged)
        new_words: Counter[tuple[str, ...]] = Counter()
        for word, freq in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] += freq
        words = new_words

    token_types = [TOKEN_TYPE_NORMAL] * len(tokens)
    base = len(tokens)
    tokens.extend(SPECIAL_TOKENS)
    token_types.extend([TOKEN_TYPE_CONTROL] * len(SPECIAL_TOKENS))
    return TinyTokenizer(
        tokens=tuple(tokens),
        token_types=tuple(token_types),
        merges=tuple(merges),
        bos_id=base + SPECIAL_TOKENS.index(BOS_TOKEN),
        eos_id=base + SPECIAL_TOKENS.index(IM_END),
        im_start_id=base + SPECIAL_TOKENS.index(IM_START),
        im_end_id=base + SPECIAL_TOKENS.index(IM_END),
    )


@dataclass(frozen=True)
class TinyLlamaConfig:
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2  # GQA, like most current models
    n_ff: int = 128
    n_ctx_train: int = 2048
    n_merges: int = 64
    rms_eps: float = 1e-5
    rope_freq_base: float = 10000.0
    init_std: float = 0.02
    f16: bool = True  # 2-D weights as F16 (as real checkpoints); norms stay F32


@dataclass(frozen=True)
class TinyMmprojConfig:
    image_size: int = 32
    patch_size: int = 8
    n_embd: int = 32
    # llava uses the second-to-last encoder layer, so 2 layers means 1 actually runs
    n_layer: int = 2
    n_head: int = 2
    n_ff: int = 64  # must differ from n_embd: clip.cpp swaps "legacy" ffn up/down when down.ne[0] == n_embd
    proj_hidden: int = 64
    projection_dim: int = 64  # must equal the text model's n_embd
    eps: float = 1e-5
    init_std: float = 0.02


# distinct SeedSequence streams so the LLM and the projector never share random numbers
_STREAM_LLAMA = 0x11A
_STREAM_MMPROJ = 0xC11F


def _rng(seed: int, stream: int) -> np.random.Generator:
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return np.random.default_rng([int(seed), stream])


def write_tiny_llama(
    path: str | os.PathLike[str], seed: int = 0, *, config: TinyLlamaConfig = TinyLlamaConfig()
) -> Path:
    """Write a tiny random-weight LLaMA GGUF with a ChatML template; returns the path."""
    c = config
    if c.n_embd % c.n_head or c.n_head % c.n_head_kv:
        raise ValueError("n_embd must be divisible by n_head, and n_head by n_head_kv")
    head_dim = c.n_embd // c.n_head
    tok = build_tokenizer(c.n_merges)
    n_vocab = len(tok.tokens)
    rng = _rng(seed, _STREAM_LLAMA)
    wtype = GGMLType.F16 if c.f16 else GGMLType.F32

    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.type", "model")
    w.add_string("general.name", f"ddtui-tiny-llama-s{seed}")
    w.add_string("general.description", "synthetic random-weight test model (ddtui)")
    w.add_uint32("general.file_type", FTYPE_MOSTLY_F16 if c.f16 else FTYPE_ALL_F32)
    w.add_uint32("general.quantization_version", 2)
    w.add_uint32("llama.vocab_size", n_vocab)
    w.add_uint32("llama.context_length", c.n_ctx_train)
    w.add_uint32("llama.embedding_length", c.n_embd)
    w.add_uint32("llama.block_count", c.n_layer)
    w.add_uint32("llama.feed_forward_length", c.n_ff)
    w.add_uint32("llama.attention.head_count", c.n_head)
    w.add_uint32("llama.attention.head_count_kv", c.n_head_kv)
    # llama.cpp insists n_rot == head_dim for the llama arch
    w.add_uint32("llama.rope.dimension_count", head_dim)
    w.add_float32("llama.rope.freq_base", c.rope_freq_base)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", c.rms_eps)

    w.add_string("tokenizer.ggml.model", "gpt2")
    # explicit pre-tokenizer: a missing one makes llama.cpp log a "GENERATION QUALITY WILL BE DEGRADED" banner
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_string_array("tokenizer.ggml.tokens", tok.tokens)
    w.add_int32_array("tokenizer.ggml.token_type", tok.token_types)
    w.add_string_array("tokenizer.ggml.merges", tok.merges)
    w.add_uint32("tokenizer.ggml.bos_token_id", tok.bos_id)
    w.add_uint32("tokenizer.ggml.eos_token_id", tok.eos_id)
    w.add_uint32("tokenizer.ggml.padding_token_id", tok.bos_id)
    # ChatML needs no BOS; the chat formatter already controls special tokens
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_string("tokenizer.chat_template", CHATML_TEMPLATE)

    def mat(rows: int, cols: int) -> np.ndarray:
        # numpy (out, in) == ggml ne {in, out}, the layout llama.cpp's matmuls expect
        return (rng.standard_normal((rows, cols), dtype=np.float32) * c.init_std).astype(np.float32)

    ones = np.ones(c.n_embd, dtype=np.float32)
    kv_dim = head_dim * c.n_head_kv
    w.add_tensor("token_embd.weight", mat(n_vocab, c.n_embd), wtype)
    for i in range(c.n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones, GGMLType.F32)
        w.add_tensor(p + "attn_q.weight", mat(c.n_embd, c.n_embd), wtype)
        w.add_tensor(p + "attn_k.weight", mat(kv_dim, c.n_embd), wtype)
        w.add_tensor(p + "attn_v.weight", mat(kv_dim, c.n_embd), wtype)
        w.add_tensor(p + "attn_output.weight", mat(c.n_embd, c.n_embd), wtype)
        w.add_tensor(p + "ffn_norm.weight", ones, GGMLType.F32)
        w.add_tensor(p + "ffn_gate.weight", mat(c.n_ff, c.n_embd), wtype)
        w.add_tensor(p + "ffn_up.weight", mat(c.n_ff, c.n_embd), wtype)
        w.add_tensor(p + "ffn_down.weight", mat(c.n_embd, c.n_ff), wtype)
    w.add_tensor("output_norm.weight", ones, GGMLType.F32)
    # untied output head so logits do not just mirror the input embedding
    w.add_tensor("output.weight", mat(n_vocab, c.n_embd), wtype)

    dest = Path(path)
    w.write(dest)
    return dest


def write_tiny_mmproj(
    path: str | os.PathLike[str], seed: int = 0, *, config: TinyMmprojConfig = TinyMmprojConfig()
) -> Path:
    """Write a tiny CLIP + llava-MLP projector GGUF (mmproj) for the tiny LLaMA; returns the path."""
    c = config
    if c.image_size % c.patch_size:
        raise ValueError("image_size must be a multiple of patch_size")
    if c.n_embd % c.n_head:
        raise ValueError("n_embd must be divisible by n_head")
    if c.n_ff == c.n_embd:
        raise ValueError("n_ff must differ from n_embd (clip.cpp would treat ffn up/down as swapped)")
    n_patches = (c.image_size // c.patch_size) ** 2
    n_pos = n_patches + 1  # + class token
    rng = _rng(seed, _STREAM_MMPROJ)

    w = GGUFWriter()
    w.add_string("general.architecture", "clip")
    w.add_string("general.type", "mmproj")
    w.add_string("general.name", f"ddtui-tiny-mmproj-s{seed}")
    w.add_string("general.description", "synthetic random-weight vision projector (ddtui)")
    w.add_uint32("general.file_type", FTYPE_MOSTLY_F16)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    # clip.cpp reads these with typed getters that abort on a type mismatch: u32 / f32 / bool exactly
    w.add_uint32("clip.vision.image_size", c.image_size)
    w.add_uint32("clip.vision.patch_size", c.patch_size)
    w.add_uint32("clip.vision.embedding_length", c.n_embd)
    w.add_uint32("clip.vision.feed_forward_length", c.n_ff)
    w.add_uint32("clip.vision.block_count", c.n_layer)
    w.add_uint32("clip.vision.projection_dim", c.projection_dim)
    w.add_uint32("clip.vision.attention.head_count", c.n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", c.eps)
    w.add_float32_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    w.add_float32_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    w.add_bool("clip.use_gelu", False)

    def mat(rows: int, cols: int) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * c.init_std

    def vec(n: int, std: float | None = None) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32) * (c.init_std if std is None else std)

    ones = np.ones(c.n_embd, dtype=np.float32)
    zeros = np.zeros(c.n_embd, dtype=np.float32)
    # conv kernel: numpy (out_ch, in_ch, kh, kw) == ggml ne {kw, kh, in_ch, out_ch}
    patch = rng.standard_normal((c.n_embd, 3, c.patch_size, c.patch_size), dtype=np.float32) * c.init_std
    w.add_tensor("v.patch_embd.weight", patch, GGMLType.F16)
    w.add_tensor("v.patch_embd.bias", zeros, GGMLType.F32)
    # class embedding is concatenated with F32 activations, so it must be F32
    w.add_tensor("v.class_embd", vec(c.n_embd), GGMLType.F32)
    w.add_tensor("v.position_embd.weight", mat(n_pos, c.n_embd), GGMLType.F32)
    w.add_tensor("v.pre_ln.weight", ones, GGMLType.F32)
    w.add_tensor("v.pre_ln.bias", zeros, GGMLType.F32)
    for i in range(c.n_layer):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(p + name + ".weight", mat(c.n_embd, c.n_embd), GGMLType.F16)
            w.add_tensor(p + name + ".bias", vec(c.n_embd), GGMLType.F32)
        w.add_tensor(p + "ln1.weight", ones, GGMLType.F32)
        w.add_tensor(p + "ln1.bias", zeros, GGMLType.F32)
        w.add_tensor(p + "ln2.weight", ones, GGMLType.F32)
        w.add_tensor(p + "ln2.bias", zeros, GGMLType.F32)
        w.add_tensor(p + "ffn_up.weight", mat(c.n_ff, c.n_embd), GGMLType.F16)
        w.add_tensor(p + "ffn_up.bias", vec(c.n_ff), GGMLType.F32)
        w.add_tensor(p + "ffn_down.weight", mat(c.n_embd, c.n_ff), GGMLType.F16)
        w.add_tensor(p + "ffn_down.bias", vec(c.n_embd), GGMLType.F32)
    # llava-1.5 projector: Linear(n_embd -> hidden), GELU, Linear(hidden -> text n_embd)
    w.add_tensor("mm.0.weight", mat(c.proj_hidden, c.n_embd), GGMLType.F16)
    w.add_tensor("mm.0.bias", vec(c.proj_hidden), GGMLType.F32)
    w.add_tensor("mm.2.weight", mat(c.projection_dim, c.proj_hidden), GGMLType.F16)
    w.add_tensor("mm.2.bias", vec(c.projection_dim), GGMLType.F32)

    dest = Path(path)
    w.write(dest)
    return dest
