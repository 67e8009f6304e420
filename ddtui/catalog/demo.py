"""`ddtui models demo`: a complete, working synthetic model set in the catalog layout, with sidecars.

Random weights in the real architectures (see `synthetic/`): the bindings load and run every file, so every
feature can be tried end to end before real models arrive. Deterministic from the seed; about 20 MB; written
in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import write_json_atomic
from .models import FOLDERS
from .synthetic.llm import write_tiny_llama, write_tiny_mmproj
from .synthetic.sd import (
    write_esrgan,
    write_flux2_klein_diffusion,
    write_flux2_tiny_autoencoder,
    write_lora,
    write_qwen3_text_encoder,
)

IMAGE_MODEL = "stable-diffusion/demo-flux2-klein.safetensors"
TEXT_ENCODER = "text-encoder/demo-qwen3.safetensors"
TINY_AUTOENCODER = "vae/demo-taef2.safetensors"
LORA = "lora/demo-lora.safetensors"
ESRGAN = "esrgan/demo-esrgan-x2.safetensors"
LLM = "llm/demo-llama.gguf"
MMPROJ = "llm/demo-llama-mmproj.gguf"

IMAGE_SIDECAR = {
    "description": "Synthetic FLUX.2-klein-shaped model with random weights (ddtui demo set)",
    "format": "diffusion_model",
    "family": "flux2-klein",
    "components": {"llm": TEXT_ENCODER, "taesd": TINY_AUTOENCODER},
    # Defaults suit the tiny model: 64x64 in about half a second on one CPU thread.
    "defaults": {"steps": 4, "cfg": 1.0, "sampler": "euler", "scheduler": "discrete", "width": 64, "height": 64},
}
LORA_SIDECAR = {
    "description": "Synthetic rank-4 LoRA for the demo image model",
    "trigger_words": ["demo style"],
    "default_weight": 0.8,
}
LLM_SIDECAR = {
    "description": "Synthetic 2-layer LLaMA with a byte-level BPE tokenizer and a ChatML template",
    "mmproj": MMPROJ,
    "context_size": 2048,
}


@dataclass
class DemoSet:
    model_dir: Path
    files: list[Path] = field(default_factory=list)


def write_demo_set(model_dir: Path, seed: int = 0) -> DemoSet:
    """Write the demo models and their sidecars under `model_dir` (existing demo files are replaced)."""
    model_dir = Path(model_dir)
    for folder in FOLDERS:
        (model_dir / folder).mkdir(parents=True, exist_ok=True)
    demo = DemoSet(model_dir)

    def put(rel: str, writer, *extra) -> None:  # noqa: ANN001 - a writer from synthetic/
        path = model_dir / rel
        writer(path, seed, *extra)
        demo.files.append(path)

    put(TEXT_ENCODER, write_qwen3_text_encoder)
    put(TINY_AUTOENCODER, write_flux2_tiny_autoencoder)
    put(IMAGE_MODEL, write_flux2_klein_diffusion)
    put(LORA, write_lora)
    put(ESRGAN, write_esrgan)
    put(LLM, write_tiny_llama)
    put(MMPROJ, write_tiny_mmproj)
    for rel, data in ((IMAGE_MODEL, IMAGE_SIDECAR), (LORA, LORA_SIDECAR), (LLM, LLM_SIDECAR)):
        sidecar = model_dir / (rel + ".json")
        write_json_atomic(sidecar, data)
        demo.files.append(sidecar)
    return demo


def demo_config_patch() -> dict:
    """Config values that point ddtui's defaults at the demo set."""
    return {"sd": {"default_model": IMAGE_MODEL}, "llm": {"default_model": LLM, "default_mmproj": MMPROJ}}
