"""Import of NovelAI, AUTOMATIC1111's stealth (pixel-bit) metadata and InvokeAI's 1.x `Dream` line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ddtui.core.metadata import read_image_metadata
from ddtui.core.metadata.stealth import read_stealth, write_stealth

A1111_TEXT = ("a lighthouse at dusk, <lora:film:0.6>\nNegative prompt: blurry\n"
              "Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 96x64, "
              "Model hash: 31e35c80fc, Model: sd15")

NOVELAI_COMMENT = {"prompt": "1girl, reading, library", "steps": 28, "height": 64, "width": 96, "scale": 5.0,
                   "uncond_scale": 1.0, "cfg_rescale": 0.0, "seed": 987654321, "n_samples": 1, "strength": 0.7,
                   "noise": 0.0, "noise_schedule": "karras", "sampler": "k_euler_ancestral",
                   "uc": "lowres, bad anatomy", "request_type": "PromptGenerateRequest"}


def _png(path, chunks=None, image=None):
    info = PngInfo()
    for key, value in (chunks or {}).items():
        info.add_text(key, value)
    (image or Image.new("RGB", (96, 64), (10, 120, 200))).save(path, "PNG", pnginfo=info)
    return path


def _novelai_chunks(comment=None):
    return {"Title": "AI generated image", "Description": "1girl, reading, library", "Software": "NovelAI",
            "Source": "Stable Diffusion XL C1E1DE52", "Comment": json.dumps(comment or NOVELAI_COMMENT)}


def test_novelai_png_chunks(tmp_path):
    meta = read_image_metadata(_png(tmp_path / "nai.png", _novelai_chunks()))
    p = meta.params
    assert meta.source == "novelai"
    assert p["prompt"] == "1girl, reading, library" and p["negative_prompt"] == "lowres, bad anatomy"
    assert (p["steps"], p["cfg"], p["seed"], p["width"], p["height"]) == (28, 5.0, 987654321, 96, 64)
    assert (p["sampler"], p["scheduler"], p["sampler_label"]) == ("euler_a", "karras", "k_euler_ancestral")
    assert (p["model"], p["model_hash"]) == ("Stable Diffusion XL", "c1e1de52")
    assert p["kind"] == "txt2img" and p["strength"] is None


def test_novelai_img2img_keeps_its_strength(tmp_path):
    comment = dict(NOVELAI_COMMENT, request_type="Img2ImgRequest", strength=0.45, sampler="k_dpmpp_2m")
    p = read_image_metadata(_png(tmp_path / "nai.png", _novelai_chunks(comment))).params
    assert (p["kind"], p["strength"], p["sampler"]) == ("img2img", 0.45, "dpm++2m")


def test_novelai_with_a_broken_comment_is_not_lost(tmp_path):
    chunks = dict(_novelai_chunks(), Comment='{"steps": 28')
    meta = read_image_metadata(_png(tmp_path / "nai.png", chunks))
    assert meta.source == "unknown" and "NovelAI" in " ".join(meta.warnings)


@pytest.mark.parametrize("mode, compressed", [("alpha", True), ("alpha", False), ("rgb", True), ("rgb", False)])
def test_stealth_a1111_text_in_the_pixel_bits(tmp_path, mode, compressed):
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (64, 96, 4), dtype=np.uint8), "RGBA")
    hidden = write_stealth(base, A1111_TEXT, mode, compressed)
    path = tmp_path / "stealth.png"
    hidden.save(path, "PNG")  # no text chunk at all: only the pixels carry it
    meta = read_image_metadata(path)
    p = meta.params
    assert meta.source == "a1111" and meta.chunks["stealth"] == A1111_TEXT
    assert (p["prompt"], p["negative_prompt"]) == ("a lighthouse at dusk, <lora:film:0.6>", "blurry")
    assert (p["steps"], p["sampler"], p["scheduler"], p["cfg"], p["seed"]) == (24, "dpm++2m", "karras", 6.5, 1234)
    assert p["loras"] == [{"name": "film", "weight": 0.6}]


def test_stealth_novelai_json_in_the_alpha_channel(tmp_path):
    base = Image.new("RGBA", (96, 64), (200, 40, 40, 255))
    path = tmp_path / "nai-stealth.png"
    write_stealth(base, json.dumps(_novelai_chunks()), "alpha", True).save(path, "PNG")
    meta = read_image_metadata(path)
    assert meta.source == "novelai" and meta.params["seed"] == 987654321


def test_plain_images_and_noise_carry_no_stealth(tmp_path):
    rng = np.random.default_rng(2)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA")
    assert read_stealth(noisy) is None and read_stealth(Image.new("RGB", (8, 8))) is None
    assert read_image_metadata(_png(tmp_path / "plain.png")).source == "unknown"
    # A signature whose length runs past the image is refused, not read out of bounds.
    bits = np.unpackbits(np.frombuffer(b"stealth_pnginfo" + (10**6).to_bytes(4, "big"), np.uint8))
    alpha = np.full(64 * 64, 254, np.uint8)
    alpha[: bits.size] |= bits
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[:, :, 3] = alpha.reshape(64, 64).T  # column-major, as the writer lays the bits
    assert read_stealth(Image.fromarray(arr, "RGBA")) is None


def test_invokeai_dream_line(tmp_path):
    dream = '"a castle on a hill [fog, people]" -s 30 -S 42 -W 96 -H 64 -C 7.5 -A k_euler_a'
    meta = read_image_metadata(_png(tmp_path / "dream.png", {"Dream": dream}))
    p = meta.params
    assert meta.source == "invokeai"
    assert p["prompt"] == "a castle on a hill" and p["negative_prompt"] == "fog, people"
    assert (p["steps"], p["seed"], p["width"], p["height"], p["cfg"], p["sampler"]) == (30, 42, 96, 64, 7.5,
                                                                                         "euler_a")
    assert p["kind"] == "txt2img"


def test_invokeai_sd_metadata_still_reads(tmp_path):
    doc = {"model_weights": "stable-diffusion-1.5", "model_hash": "c" * 64,
           "image": {"prompt": [{"prompt": "a red barn", "weight": 1.0}], "steps": 20, "cfg_scale": 7.0,
                     "seed": 5, "width": 96, "height": 64, "sampler": "k_lms", "type": "txt2img"}}
    p = read_image_metadata(_png(tmp_path / "sdm.png", {"sd-metadata": json.dumps(doc)})).params
    assert (p["prompt"], p["steps"], p["seed"], p["model_hash"]) == ("a red barn", 20, 5, "cccccccccc")
