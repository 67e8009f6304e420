"""Tests for ddtui.core.metadata (image generation metadata) and ddtui.core.hashing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ddtui import __version__
from ddtui.core import hashing
from ddtui.core.metadata import (
    ImageReadError,
    MetadataError,
    decode_user_comment,
    format_a1111_parameters,
    map_sampler,
    map_scheduler,
    parse_parameters_text,
    png_info,
    read_image_metadata,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def write_png(path: Path, chunks: dict[str, str | bytes], size=(64, 48)) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)  # bytes are written verbatim into tEXt, like stb does
    Image.new("RGB", size, (200, 30, 30)).save(path, "PNG", pnginfo=info)
    return path


def exif_with_user_comment(comment: bytes | str, *, ifd0: bool = False) -> Image.Exif:
    exif = Image.Exif()
    if ifd0:
        exif[0x9286] = comment
    else:
        exif.get_ifd(0x8769)[0x9286] = comment
    return exif


def write_with_exif(path: Path, exif: Image.Exif, fmt: str, size=(64, 48)) -> Path:
    Image.new("RGB", size, (10, 120, 30)).save(path, fmt, exif=exif)
    return path


BASE_PARAMS = {
    "prompt": "a cat, sitting: on a mat",
    "negative_prompt": "blurry",
    "steps": 24,
    "sampler": "euler_a",
    "scheduler": "karras",
    "cfg": 6.5,
    "seed": 123456789,
    "width": 768,
    "height": 512,
    "model": "sd_v1-5.safetensors",
    "model_hash": "6ce0161689",
    "strength": None,
    "clip_skip": None,
    "guidance": None,
    "loras": [],
    "kind": "txt2img",
}

ROUND_TRIP_KEYS = ("prompt", "negative_prompt", "steps", "sampler", "scheduler", "cfg", "seed",
                   "width", "height", "model", "model_hash", "strength", "clip_skip", "guidance",
                   "loras")

TRICKY_PROMPTS = [
    ("simple prompt", ""),
    ('quotes "inside", commas, colons: yes', 'neg "quoted": a, b'),
    ("line one\nline two, with comma\n  indented: line", "neg line one\nneg line two"),
    ("unicode 猫 café — ☕ ðŸ, emoji 🦊", "ошибка, 悪い"),
    ("Steps: 1, Sampler: x, Seed: 2", "Size: 1x1, Model: m, CFG scale: 3"),
    ("<lora:detail:0.8> portrait, {a|b}, [c:d:0.5]", ""),
    ("", "only a negative"),
]


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def test_format_exact_text():
    text = format_a1111_parameters(BASE_PARAMS)
    assert text == (
        "a cat, sitting: on a mat\n"
        "Negative prompt: blurry\n"
        "Steps: 24, Sampler: Euler a, Schedule type: Karras, CFG scale: 6.5, Seed: 123456789, "
        "Size: 768x512, Model hash: 6ce0161689, Model: sd_v1-5.safetensors, "
        f"Version: ddtui {__version__}"
    )


def test_format_quotes_values_like_a1111_and_adds_img2img_fields():
    p = dict(BASE_PARAMS, model='my, "odd": model.safetensors', kind="img2img", strength=0.55,
             clip_skip=2, guidance=3.5, negative_prompt="",
             loras=[{"name": "detail", "weight": 0.8, "hash": "7c6bad76eb54"},
                    {"name": "style", "weight": 1}])
    text = format_a1111_parameters(p)
    assert "Negative prompt" not in text
    assert 'Model: "my, \\"odd\\": model.safetensors"' in text
    assert "Denoising strength: 0.55" in text
    assert "Clip skip: 2" in text
    assert "Guidance: 3.5" in text
    assert 'Lora hashes: "detail: 7c6bad76eb54"' in text
    assert 'Lora weights: "detail: 0.8, style: 1"' in text
    # txt2img never writes a denoising strength even if one is present
    assert "Denoising" not in format_a1111_parameters(dict(p, kind="txt2img"))


def test_png_info_chunks_are_written(tmp_path):
    info = png_info("prompt\nSteps: 1, Seed: 2, CFG scale: 3", {"params": {"prompt": "p"}})
    path = tmp_path / "out.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    with Image.open(path) as im:
        im.load()
        assert im.text["parameters"] == "prompt\nSteps: 1, Seed: 2, CFG scale: 3"
        assert json.loads(im.text["ddtui"]) == {"params": {"prompt": "p"}}


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt,negative", TRICKY_PROMPTS)
def test_text_round_trip(prompt, negative):
    p = dict(BASE_PARAMS, prompt=prompt, negative_prompt=negative, kind="img2img", strength=0.4,
             clip_skip=3, guidance=2.5, model="weird, name: v2.safetensors",
             loras=[{"name": "detail", "weight": 0.8, "hash": "7c6bad76eb54"}])
    parsed = parse_parameters_text(format_a1111_parameters(p))
    for key in ROUND_TRIP_KEYS:
        assert parsed[key] == p[key], key
    assert parsed["kind"] == "img2img"
    assert parsed["sampler_label"] == "Euler a"
    assert parsed["extra"] == {"Version": f"ddtui {__version__}"}


_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"),
    max_size=60,
).filter(lambda s: s == s.strip() and "Negative prompt:" not in s)


@settings(max_examples=200, deadline=None)
@given(prompt=_line_text, negative=_line_text, model=_line_text.filter(bool),
       seed=st.integers(min_value=0, max_value=2**63 - 1),
       cfg=st.floats(min_value=0, max_value=30, allow_nan=False))
def test_text_round_trip_property(prompt, negative, model, seed, cfg):
    p = dict(BASE_PARAMS, prompt=prompt, negative_prompt=negative, model=model, seed=seed,
             cfg=cfg)
    parsed = parse_parameters_text(format_a1111_parameters(p))
    for key in ROUND_TRIP_KEYS:
        assert parsed[key] == p[key], key


@pytest.mark.parametrize("prompt,negative", TRICKY_PROMPTS)
def test_png_round_trip_via_ddtui_chunk(tmp_path, prompt, negative):
    p = dict(BASE_PARAMS, prompt=prompt, negative_prompt=negative,
             loras=[{"name": "detail.safetensors", "weight": 0.75}])
    lineage = {"parent_id": 17, "operation": "variation"}
    path = tmp_path / "gen.png"
    Image.new("RGB", (768, 512)).save(
        path, pnginfo=png_info(format_a1111_parameters(p), {"params": p, "lineage": lineage}))

    meta = read_image_metadata(path)
    assert meta.source == "ddtui"
    for key in (*ROUND_TRIP_KEYS, "kind"):
        assert meta.params[key] == p[key], key
    assert meta.document["lineage"] == lineage
    assert meta.chunks["parameters"] == format_a1111_parameters(p)


@pytest.mark.parametrize("prompt,negative", TRICKY_PROMPTS)
def test_png_round_trip_parameters_only(tmp_path, prompt, negative):
    # JPEG exports or stripped files may keep only the text; it must still read back exactly.
    p = dict(BASE_PARAMS, prompt=prompt, negative_prompt=negative)
    if "<lora:detail:0.8>" in prompt:  # a tag in the prompt is a LoRA sd.cpp applies
        p["loras"] = [{"name": "detail", "weight": 0.8}]
    path = write_png(tmp_path / "text-only.png", {"parameters": format_a1111_parameters(p)})
    meta = read_image_metadata(path)
    assert meta.source == "ddtui"
    for key in ROUND_TRIP_KEYS:
        assert meta.params[key] == p[key], key


def test_flat_ddtui_document_is_accepted(tmp_path):
    path = write_png(tmp_path / "flat.png", {"ddtui": json.dumps({"prompt": "flat", "steps": 9})})
    meta = read_image_metadata(path)
    assert meta.source == "ddtui"
    assert meta.params["prompt"] == "flat"
    assert meta.params["steps"] == 9
    assert (meta.params["width"], meta.params["height"]) == (64, 48)  # filled from the image


# ---------------------------------------------------------------------------------------------
# AUTOMATIC1111 / Forge
# ---------------------------------------------------------------------------------------------

A1111_TEXT = (
    "masterpiece, best quality, 1girl, (smile:1.2), <lora:add_detail:0.8>\n"
    "standing in a field\n"
    "Negative prompt: lowres, bad anatomy, (worst quality:1.4)\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, "
    "Size: 832x1216, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, "
    "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, "
    'Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03, '
    'bad-hands: 1234567890ab", Emphasis: Original, Version: v1.10.1'
)


def test_a1111_png(tmp_path):
    meta = read_image_metadata(write_png(tmp_path / "a1111.png", {"parameters": A1111_TEXT}))
    p = meta.params
    assert meta.source == "a1111"
    assert meta.raw == A1111_TEXT
    assert p["prompt"] == ("masterpiece, best quality, 1girl, (smile:1.2), <lora:add_detail:0.8>\n"
                           "standing in a field")
    assert p["negative_prompt"] == "lowres, bad anatomy, (worst quality:1.4)"
    assert (p["steps"], p["cfg"], p["seed"]) == (28, 7.0, 1234567890)
    assert (p["sampler"], p["sampler_label"]) == ("dpm++2m", "DPM++ 2M")
    assert (p["scheduler"], p["scheduler_label"]) == ("karras", "Karras")
    assert (p["width"], p["height"]) == (832, 1216)
    assert (p["model"], p["model_hash"]) == ("v1-5-pruned-emaonly", "6ce0161689")
    assert p["clip_skip"] == 2
    assert p["kind"] == "txt2img" and p["strength"] is None
    assert p["loras"] == [{"name": "add_detail", "weight": 0.8, "hash": "7c6bad76eb54"}]
    assert p["extra"]["TI hashes"] == "EasyNegative: c74b4e810b03, bad-hands: 1234567890ab"
    assert p["extra"]["VAE"] == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert p["extra"]["Version"] == "v1.10.1"


def test_a1111_old_sampler_label_with_schedule_suffix():
    p = parse_parameters_text("a dog\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, "
                              "Seed: 1, Size: 512x512, Model hash: 6ce0161689, Model: sd15")
    assert (p["sampler"], p["scheduler"]) == ("dpm++2m", "karras")
    assert p["sampler_label"] == "DPM++ 2M Karras"
    unknown = parse_parameters_text("x\nSteps: 20, Sampler: DPM++ 2M SDE Karras, Seed: 1, CFG scale: 5")
    assert (unknown["sampler"], unknown["scheduler"]) == (None, "karras")


def test_a1111_img2img_inpaint_and_hires():
    img2img = parse_parameters_text("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, "
                                    "Size: 512x512, Denoising strength: 0.45")
    assert (img2img["kind"], img2img["strength"]) == ("img2img", 0.45)
    inpaint = parse_parameters_text("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, "
                                    "Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked")
    assert (inpaint["kind"], inpaint["strength"]) == ("inpaint", 0.75)
    hires = parse_parameters_text("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, "
                                  "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 10, "
                                  "Hires upscaler: Latent")
    assert (hires["kind"], hires["strength"]) == ("txt2img", None)
    assert hires["extra"]["Denoising strength"] == "0.5"
    assert hires["extra"]["Hires upscaler"] == "Latent"


def test_forge_flux_distilled_cfg():
    text = ("a cat in a hat\nSteps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, "
            "Distilled CFG Scale: 3.5, Seed: 5, Size: 896x1152, Model hash: bea01d51bd, "
            "Model: flux1-dev-bnb-nf4-v2, Version: f2.0.1v1.10.1-previous-313-g8a042934, "
            "Module 1: ae")
    p = parse_parameters_text(text)
    assert (p["guidance"], p["cfg"], p["scheduler"], p["sampler"]) == (3.5, 1.0, "simple", "euler")
    assert p["extra"]["Module 1"] == "ae"


def test_bare_flags_and_unknown_keys_go_to_extra():
    p = parse_parameters_text("p\nSteps: 5, Tiling, Seed: 1, CFG scale: 2, Foo bar: baz")
    assert p["extra"] == {"Tiling": "Tiling", "Foo bar": "baz"}


def test_prompt_only_text_has_no_settings(tmp_path):
    meta = read_image_metadata(write_png(tmp_path / "p.png", {"parameters": "just, a prompt"}))
    assert meta.source == "a1111"
    assert meta.params["prompt"] == "just, a prompt"
    assert meta.params["steps"] is None
    assert any("no settings line" in w for w in meta.warnings)


A1111_JPEG_TEXT = ("a portrait of an old man, 8k\nNegative prompt: cartoon\n"
                   "Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5.5, "
                   "Seed: 77, Size: 640x960, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, "
                   "Version: v1.9.4")


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("WEBP", "webp")])
def test_a1111_exif_user_comment_unicode_big_endian(tmp_path, fmt, suffix):
    # piexif.helper.UserComment.dump(text, encoding="unicode"), as used by A1111
    comment = b"UNICODE\x00" + A1111_JPEG_TEXT.encode("utf-16-be")
    path = write_with_exif(tmp_path / f"a1111.{suffix}", exif_with_user_comment(comment), fmt)
    meta = read_image_metadata(path)
    assert meta.source == "a1111"
    assert meta.params["prompt"] == "a portrait of an old man, 8k"
    assert meta.params["negative_prompt"] == "cartoon"
    assert (meta.params["sampler"], meta.params["scheduler"]) == ("euler_a", None)
    assert meta.params["scheduler_label"] == "Automatic"
    assert (meta.params["cfg"], meta.params["seed"]) == (5.5, 77)
    assert (meta.params["width"], meta.params["height"]) == (640, 960)


def test_user_comment_decoding_variants():
    text = "Prompt: héllo, 猫"
    assert decode_user_comment(b"UNICODE\x00" + text.encode("utf-16-be")) == text
    assert decode_user_comment(b"UNICODE\x00" + text.encode("utf-16-le")) == text
    assert decode_user_comment(b"UNICODE\x00" + text.encode("utf-16")) == text  # with BOM
    assert decode_user_comment(b"ASCII\x00\x00\x00plain text\x00") == "plain text"
    assert decode_user_comment(b"ASCII\x00\x00\x00" + "utf8 ü".encode()) == "utf8 ü"
    assert decode_user_comment(b"\x00" * 8 + b"undefined") == "undefined"
    assert decode_user_comment(b"no prefix at all") == "no prefix at all"
    assert decode_user_comment("already text\x00") == "already text"


# ---------------------------------------------------------------------------------------------
# stable-diffusion.cpp
# ---------------------------------------------------------------------------------------------

SDCPP_JSON = {
    "schema": "sdcpp.image.params/v1", "mode": "img_gen",
    "generator": {"name": "stable-diffusion.cpp", "version": "master-5c61e91", "commit": "5c61e91"},
    "seed": 42, "width": 512, "height": 768,
    "prompt": {"positive": "a lovely cat, 猫 ", "negative": "blurry, lowres"},
    "sampling": {"steps": 20, "eta": 0.0, "shifted_timestep": 0, "flow_shift": 3.0,
                 "guidance": {"txt_cfg": 7.0, "img_cfg": 7.0, "distilled_guidance": 3.5,
                              "slg": {"scale": 2.5, "layers": [7, 8, 9], "start": 0.01, "end": 0.2}},
                 "method": "euler_a", "scheduler": "karras", "custom_sigmas": []},
    "models": {"model": "v1-5-pruned-emaonly.safetensors", "vae": "vae.safetensors"},
    "clip_skip": 2, "strength": 0.75, "control_strength": 0.9, "rng": "cuda",
    "loras": [{"name": "detail.safetensors", "multiplier": 0.8, "is_high_noise": False}],
}
# Layout of get_image_params() in examples/common/common.cpp (values via std::to_string).
SDCPP_TEXT = (
    "a lovely cat, 猫 <lora:detail:0.8>\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, CFG scale: 7.000000, SLG scale: 2.500000, Skip layers: [7, 8, 9, ], "
    "Skip layer start: 0.010000, Skip layer end: 0.200000, Guidance: 3.500000, Eta: 0.000000, "
    "Seed: 42, Size: 512x768, Model: v1-5-pruned-emaonly.safetensors, RNG: cuda, "
    "Sampler: euler_a karras, VAE: vae.safetensors, Clip skip: 2, Version: stable-diffusion.cpp, "
    "SDCPP: " + json.dumps(SDCPP_JSON, ensure_ascii=False, separators=(",", ":"))
)


def _assert_sdcpp(meta):
    p = meta.params
    assert meta.source == "sdcpp"
    assert p["prompt"] == "a lovely cat, 猫 <lora:detail:0.8>"
    assert p["negative_prompt"] == "blurry, lowres"
    assert (p["steps"], p["cfg"], p["guidance"], p["seed"]) == (20, 7.0, 3.5, 42)
    assert (p["sampler"], p["scheduler"]) == ("euler_a", "karras")
    assert (p["width"], p["height"]) == (512, 768)
    assert p["model"] == "v1-5-pruned-emaonly.safetensors"
    assert p["clip_skip"] == 2
    assert p["loras"] == [{"name": "detail", "weight": 0.8}]
    assert p["kind"] is None
    assert p["extra"]["Skip layers"] == "[7, 8, 9, ]"
    assert p["extra"]["RNG"] == "cuda"
    assert p["extra"]["sdcpp"]["schema"] == "sdcpp.image.params/v1"


def test_sdcpp_png_with_utf8_in_text_chunk(tmp_path):
    # stb_image_write puts raw UTF-8 into a tEXt chunk (latin-1 by spec)
    path = write_png(tmp_path / "sdcpp.png", {"parameters": SDCPP_TEXT.encode("utf-8")})
    _assert_sdcpp(read_image_metadata(path))


def test_sdcpp_jpeg_comment_segment(tmp_path):
    path = tmp_path / "sdcpp.jpg"
    Image.new("RGB", (32, 32)).save(path, "JPEG",
                                    comment=b"parameters\x00" + SDCPP_TEXT.encode() + b"\x00")
    _assert_sdcpp(read_image_metadata(path))


def test_sdcpp_webp_xmp_packet(tmp_path):
    escaped = SDCPP_TEXT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&quot;")
    xmp = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">'
           '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description>'
           f"<sdcpp:parameters>{escaped}</sdcpp:parameters></rdf:Description></rdf:RDF>"
           '</x:xmpmeta>\n<?xpacket end="w"?>')
    path = tmp_path / "sdcpp.webp"
    Image.new("RGB", (32, 32)).save(path, "WEBP", xmp=xmp.encode())
    _assert_sdcpp(read_image_metadata(path))


# ---------------------------------------------------------------------------------------------
# ComfyUI
# ---------------------------------------------------------------------------------------------

COMFY_DEFAULT = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
        "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0],
        "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "SD1.5\\v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {
        "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
        "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["10", 1]}},
    "10": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
COMFY_WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}


def _assert_comfy_default(p):
    assert p["prompt"] == "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
    assert p["negative_prompt"] == "text, watermark"
    assert (p["seed"], p["steps"], p["cfg"]) == (156680208700286, 20, 8.0)
    assert (p["sampler"], p["sampler_label"]) == ("euler", "euler")
    assert (p["scheduler"], p["scheduler_label"]) == ("discrete", "normal")
    assert (p["width"], p["height"]) == (512, 640)
    assert p["model"] == "v1-5-pruned-emaonly.safetensors"
    assert p["clip_skip"] == 2
    assert (p["kind"], p["strength"]) == ("txt2img", None)


def test_comfyui_default_graph_png(tmp_path):
    path = write_png(tmp_path / "comfy.png", {"prompt": json.dumps(COMFY_DEFAULT),
                                              "workflow": json.dumps(COMFY_WORKFLOW)})
    meta = read_image_metadata(path)
    assert meta.source == "comfyui"
    _assert_comfy_default(meta.params)
    assert "workflow" in meta.chunks


def test_comfyui_webp_exif_prompt(tmp_path):
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(COMFY_DEFAULT)
    exif[0x010F] = "workflow:" + json.dumps(COMFY_WORKFLOW)
    meta = read_image_metadata(write_with_exif(tmp_path / "comfy.webp", exif, "WEBP"))
    assert meta.source == "comfyui"
    _assert_comfy_default(meta.params)


COMFY_FLUX = {
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["30", 0], "clip": ["11", 0]}},
    "30": {"class_type": "PrimitiveStringMultiline",
           "inputs": {"value": "a fox in the snow, cinematic:\nwide shot"}},
    "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
    "22": {"class_type": "BasicGuider", "inputs": {"model": ["40", 0], "conditioning": ["26", 0]}},
    "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 987654321}},
    "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "17": {"class_type": "BasicScheduler",
           "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1, "model": ["12", 0]}},
    "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["17", 0],
        "latent_image": ["27", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "flux", "images": ["8", 0]}},
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
                                                  "weight_dtype": "default"}},
    "41": {"class_type": "ModelSamplingFlux", "inputs": {
        "model": ["42", 0], "max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 768}},
    "42": {"class_type": "LoraLoaderModelOnly", "inputs": {
        "lora_name": "styles/base_style.safetensors", "strength_model": 1.0, "model": ["12", 0]}},
    "40": {"class_type": "LoraLoaderModelOnly", "inputs": {
        "lora_name": "styles/pixel_art.safetensors", "strength_model": 0.7, "model": ["41", 0]}},
    "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                      "clip_name2": "clip_l.safetensors", "type": "flux"}},
    "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
}


def test_comfyui_flux_custom_sampler_graph(tmp_path):
    meta = read_image_metadata(write_png(tmp_path / "flux.png", {"prompt": json.dumps(COMFY_FLUX)}))
    p = meta.params
    assert meta.source == "comfyui"
    assert p["prompt"] == "a fox in the snow, cinematic:\nwide shot"
    assert p["negative_prompt"] == ""
    assert (p["seed"], p["steps"], p["cfg"], p["guidance"]) == (987654321, 20, None, 3.5)
    assert (p["sampler"], p["scheduler"]) == ("euler", "simple")
    assert (p["width"], p["height"]) == (1024, 768)
    assert p["model"] == "flux1-dev.safetensors"
    assert p["loras"] == [{"name": "base_style", "weight": 1.0}, {"name": "pixel_art", "weight": 0.7}]


COMFY_HIRES = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 11, "steps": 20, "cfg": 7, "sampler_name": "euler_ancestral", "scheduler": "karras",
        "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "castle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "people", "clip": ["4", 1]}},
    "10": {"class_type": "LatentUpscale", "inputs": {
        "samples": ["3", 0], "upscale_method": "nearest-exact", "width": 1024, "height": 1024,
        "crop": "disabled"}},
    "11": {"class_type": "KSampler", "inputs": {
        "seed": 11, "steps": 12, "cfg": 7, "sampler_name": "dpmpp_2m", "scheduler": "simple",
        "denoise": 0.5, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["10", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "hires", "images": ["8", 0]}},
    "1": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}


def test_comfyui_hires_two_pass_graph():
    from ddtui.core.metadata import parse_metadata_chunks

    meta = parse_metadata_chunks({"prompt": json.dumps(COMFY_HIRES)})
    p = meta.params
    assert meta.source == "comfyui"
    assert (p["prompt"], p["negative_prompt"]) == ("castle", "people")
    assert (p["steps"], p["sampler"], p["scheduler"]) == (20, "euler_a", "karras")
    assert (p["width"], p["height"], p["kind"]) == (512, 512, "txt2img")
    assert p["extra"]["hires"] == {"steps": 12, "denoise": 0.5, "sampler": "dpmpp_2m",
                                   "scheduler": "simple", "width": 1024, "height": 1024}


COMFY_IMG2IMG = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "input.png", "upload": "image"}},
    "2": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}},
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 5, "steps": 30, "cfg": 5.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
        "denoise": 0.65, "model": ["4", 0], "positive": ["50", 0], "negative": ["50", 1],
        "latent_image": ["2", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
    "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
        "text_g": "oil painting of a harbour", "text_l": "oil painting of a harbour",
        "width": 1024, "height": 1024, "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "photo", "clip": ["4", 1]}},
    "50": {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["51", 0], "image": ["1", 0],
        "strength": 0.8}},
    "51": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "i2i"}},
}


def test_comfyui_img2img_with_controlnet(tmp_path):
    path = write_png(tmp_path / "i2i.png", {"prompt": json.dumps(COMFY_IMG2IMG)}, size=(96, 80))
    p = read_image_metadata(path).params
    assert (p["prompt"], p["negative_prompt"]) == ("oil painting of a harbour", "photo")
    assert (p["kind"], p["strength"]) == ("img2img", 0.65)
    assert (p["sampler"], p["scheduler"], p["cfg"]) == ("dpm++2m", "karras", 5.5)
    assert (p["width"], p["height"]) == (96, 80)  # not in the graph: taken from the image


# ---------------------------------------------------------------------------------------------
# InvokeAI
# ---------------------------------------------------------------------------------------------

INVOKE_V4 = {
    "generation_mode": "sdxl_txt2img", "positive_prompt": "a castle on a hill, golden hour",
    "negative_prompt": "fog", "width": 1024, "height": 1024, "seed": 3141592,
    "rand_device": "cpu", "cfg_scale": 6.5, "cfg_rescale_multiplier": 0, "steps": 30,
    "scheduler": "dpmpp_2m_k",
    "model": {"key": "5f1e2a", "hash": "blake3:8f5ad4b2c1", "name": "Juggernaut XL v9",
              "base": "sdxl", "type": "main"},
    "loras": [{"model": {"key": "k1", "hash": "blake3:aa", "name": "add-detail-xl", "base": "sdxl",
                         "type": "lora"}, "weight": 0.75}],
    "app_version": "4.2.7",
}


def test_invokeai_metadata_chunk(tmp_path):
    path = write_png(tmp_path / "invoke.png", {"invokeai_metadata": json.dumps(INVOKE_V4),
                                               "invokeai_graph": "{}"})
    meta = read_image_metadata(path)
    p = meta.params
    assert meta.source == "invokeai"
    assert (p["prompt"], p["negative_prompt"]) == ("a castle on a hill, golden hour", "fog")
    assert (p["seed"], p["steps"], p["cfg"]) == (3141592, 30, 6.5)
    assert (p["sampler"], p["scheduler"], p["sampler_label"]) == ("dpm++2m", "karras", "dpmpp_2m_k")
    assert (p["model"], p["model_hash"]) == ("Juggernaut XL v9", None)
    assert p["extra"]["model_hash"] == "blake3:8f5ad4b2c1"
    assert p["loras"] == [{"name": "add-detail-xl", "weight": 0.75}]
    assert (p["kind"], p["strength"]) == ("txt2img", None)
    assert p["extra"]["app_version"] == "4.2.7"


def test_invokeai_img2img_and_v3_model_layout():
    from ddtui.core.metadata import parse_metadata_chunks

    doc = dict(INVOKE_V4, generation_mode="img2img", strength=0.7, scheduler="euler_a",
               model={"model_name": "stable-diffusion-v1-5", "base_model": "sd-1"},
               loras=[{"lora": {"model_name": "detail", "base_model": "sd-1"}, "weight": 0.5}])
    p = parse_metadata_chunks({"invokeai_metadata": json.dumps(doc)}).params
    assert (p["kind"], p["strength"], p["sampler"], p["scheduler"]) == ("img2img", 0.7, "euler_a", None)
    assert p["model"] == "stable-diffusion-v1-5"
    assert p["loras"] == [{"name": "detail", "weight": 0.5}]


def test_invokeai_legacy_sd_metadata(tmp_path):
    doc = {"model": "stable diffusion", "model_weights": "stable-diffusion-1.5",
           "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
           "app_id": "invoke-ai/InvokeAI", "app_version": "2.3.0",
           "image": {"prompt": [{"prompt": "a cat in space", "weight": 1.0}], "steps": 50,
                     "cfg_scale": 7.5, "threshold": 0, "perlin": 0, "height": 512, "width": 512,
                     "seed": 42, "seamless": False, "hires_fix": False, "type": "txt2img",
                     "postprocessing": None, "sampler": "k_euler_a", "variations": []}}
    meta = read_image_metadata(write_png(tmp_path / "v2.png", {"sd-metadata": json.dumps(doc),
                                                               "Dream": '"a cat in space" -s 50'}))
    p = meta.params
    assert meta.source == "invokeai"
    assert (p["prompt"], p["steps"], p["cfg"], p["seed"]) == ("a cat in space", 50, 7.5, 42)
    assert (p["sampler"], p["model"], p["model_hash"]) == ("euler_a", "stable-diffusion-1.5", "cc6cb27103")


# ---------------------------------------------------------------------------------------------
# SwarmUI
# ---------------------------------------------------------------------------------------------

SWARM = {
    "sui_image_params": {
        "prompt": "a red fox, autumn forest", "negativeprompt": "blurry, lowres",
        "model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "seed": 1234, "steps": 25,
        "cfgscale": 6, "aspectratio": "1:1", "width": 1024, "height": 1024, "sampler": "dpmpp_2m",
        "scheduler": "karras", "loras": ["foxy", "sdxl/detail"], "loraweights": ["0.6", "1"],
        "clipstopatlayer": -2, "swarm_version": "0.9.2.1", "date": "2024-08-01",
        "generation_time": "0.01 (prep) and 5.10 (gen) seconds"},
    "sui_extra_data": {"date": "2024-08-01"},
    "sui_models": [{"name": "sd_xl_base_1.0.safetensors", "param": "model",
                    "hash": "0x31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"}],
}


def _assert_swarm(meta):
    p = meta.params
    assert meta.source == "swarmui"
    assert (p["prompt"], p["negative_prompt"]) == ("a red fox, autumn forest", "blurry, lowres")
    assert (p["seed"], p["steps"], p["cfg"]) == (1234, 25, 6.0)
    assert (p["sampler"], p["scheduler"]) == ("dpm++2m", "karras")
    assert (p["model"], p["model_hash"]) == ("sd_xl_base_1.0.safetensors", "31e35c80fc")
    assert p["clip_skip"] == 2
    assert p["loras"] == [{"name": "foxy", "weight": 0.6}, {"name": "detail", "weight": 1.0}]
    assert p["extra"]["swarm_version"] == "0.9.2.1"


def test_swarmui_png(tmp_path):
    _assert_swarm(read_image_metadata(write_png(tmp_path / "swarm.png",
                                                {"parameters": json.dumps(SWARM)})))


def test_swarmui_jpeg_user_comment_little_endian(tmp_path):
    comment = b"UNICODE\x00" + json.dumps(SWARM).encode("utf-16-le")
    path = write_with_exif(tmp_path / "swarm.jpg", exif_with_user_comment(comment), "JPEG")
    _assert_swarm(read_image_metadata(path))


# ---------------------------------------------------------------------------------------------
# Fooocus
# ---------------------------------------------------------------------------------------------

FOOOCUS_JSON = {
    "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion.safetensors",
    "base_model_hash": "aeb7e9e689", "clip_skip": 2,
    "full_negative_prompt": ["(worst quality, low quality:1.4)", "blurry"],
    "full_prompt": ["a lighthouse at dusk", "cinematic, dramatic light"], "guidance_scale": 4,
    "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]],
    "metadata_scheme": "fooocus", "negative_prompt": "", "performance": "Speed",
    "prompt": "a lighthouse at dusk", "prompt_expansion": "a lighthouse at dusk, cinematic",
    "refiner_model": "None", "resolution": "(1152, 896)", "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras", "seed": "8112358745201966338", "sharpness": 2, "steps": 30,
    "styles": "['Fooocus V2', 'Fooocus Enhance']", "vae": "Default (model)",
    "version": "Fooocus v2.5.5",
}


def test_fooocus_json_scheme(tmp_path):
    path = write_png(tmp_path / "fooocus.png", {"parameters": json.dumps(FOOOCUS_JSON),
                                                "fooocus_scheme": "fooocus"})
    meta = read_image_metadata(path)
    p = meta.params
    assert meta.source == "fooocus"
    assert p["prompt"] == "a lighthouse at dusk, cinematic, dramatic light"
    assert p["negative_prompt"] == "(worst quality, low quality:1.4), blurry"
    assert p["extra"]["raw_prompt"] == "a lighthouse at dusk"
    assert (p["steps"], p["seed"], p["cfg"]) == (30, 8112358745201966338, 4.0)
    assert (p["sampler"], p["sampler_label"], p["scheduler"]) == (None, "dpmpp_2m_sde_gpu", "karras")
    assert (p["model"], p["model_hash"]) == ("juggernautXL_v8Rundiffusion.safetensors", "aeb7e9e689")
    assert (p["width"], p["height"], p["clip_skip"]) == (1152, 896, 2)
    assert p["loras"] == [{"name": "sd_xl_offset_example-lora_1.0", "weight": 0.1,
                           "hash": "4852686128"}]
    assert p["extra"]["performance"] == "Speed"


def test_fooocus_label_keys_without_scheme_chunk(tmp_path):
    doc = {"Prompt": "a lighthouse", "Negative Prompt": "ugly", "Fooocus V2 Expansion": "x",
           "Styles": "['Fooocus V2']", "Performance": "Speed", "Resolution": "(1024, 1024)",
           "Sharpness": 2, "Guidance Scale": 4.5, "ADM Guidance": "(1.5, 0.8, 0.3)",
           "Base Model": "juggernautXL_version6Rundiffusion.safetensors", "Refiner Model": "None",
           "Sampler": "euler_ancestral", "Scheduler": "karras", "Seed": 1234,
           "LoRA [sd_xl_offset_example-lora_1.0.safetensors] weight": 0.1, "Version": "v2.1.865"}
    meta = read_image_metadata(write_png(tmp_path / "f.png", {"parameters": json.dumps(doc)}))
    p = meta.params
    assert meta.source == "fooocus"
    assert (p["prompt"], p["negative_prompt"], p["cfg"], p["seed"]) == ("a lighthouse", "ugly", 4.5, 1234)
    assert (p["sampler"], p["width"], p["height"]) == ("euler_a", 1024, 1024)
    assert p["loras"] == [{"name": "sd_xl_offset_example-lora_1.0", "weight": 0.1}]


FOOOCUS_A1111_TEXT = (
    "a lighthouse at dusk, cinematic\nNegative prompt: blurry\n"
    'ADM Guidance: "(1.5, 0.8, 0.3)", CFG scale: 4, Lora hashes: "sd_xl_offset: 4852686128", '
    'Lora weights: "sd_xl_offset: 0.1", Model: juggernautXL_v8Rundiffusion, Model hash: aeb7e9e689, '
    "Performance: Speed, Raw negative prompt: blurry, Raw prompt: a lighthouse at dusk, "
    "Resolution: 1152x896, Sampler: DPM++ 2M SDE, Scheduler: Karras, Seed: 99, Sharpness: 2, "
    "Steps: 30, Version: Fooocus v2.5.5"
)


def test_fooocus_a1111_scheme_jpeg_in_ifd0(tmp_path):
    exif = Image.Exif()
    exif[0x9286] = FOOOCUS_A1111_TEXT  # Fooocus writes a plain string into IFD0
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = "a1111"
    meta = read_image_metadata(write_with_exif(tmp_path / "fooocus.jpg", exif, "JPEG"))
    p = meta.params
    assert meta.source == "fooocus"
    assert (p["prompt"], p["negative_prompt"]) == ("a lighthouse at dusk, cinematic", "blurry")
    assert (p["steps"], p["seed"], p["cfg"], p["scheduler"]) == (30, 99, 4.0, "karras")
    assert p["loras"] == [{"name": "sd_xl_offset", "weight": 0.1, "hash": "4852686128"}]
    assert p["extra"]["Raw prompt"] == "a lighthouse at dusk"
    assert meta.chunks["exif:MakerNote"] == "a1111"


# ---------------------------------------------------------------------------------------------
# detection edge cases
# ---------------------------------------------------------------------------------------------


def test_no_metadata_is_unknown(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (16, 16)).save(path)
    meta = read_image_metadata(path)
    assert meta.source == "unknown"
    assert meta.params["prompt"] == "" and meta.params["steps"] is None
    assert meta.params["width"] is None  # unknown metadata is not filled from the image


def test_unrelated_chunks_are_unknown_but_kept(tmp_path):
    meta = read_image_metadata(write_png(tmp_path / "c.png", {"Comment": "holiday 2019",
                                                              "Software": "GIMP 2.10"}))
    assert meta.source == "unknown"
    assert meta.chunks["Comment"] == "holiday 2019"
    json_meta = read_image_metadata(write_png(tmp_path / "j.png", {"parameters": '{"foo": 1}'}))
    assert json_meta.source == "unknown"


def test_invalid_ddtui_chunk_falls_back(tmp_path):
    meta = read_image_metadata(write_png(tmp_path / "bad.png", {"ddtui": "{not json",
                                                                "parameters": A1111_TEXT}))
    assert meta.source == "a1111"
    assert meta.params["seed"] == 1234567890
    assert any("ddtui chunk" in w for w in meta.warnings)


def test_parameters_preferred_over_comfy_graph(tmp_path):
    meta = read_image_metadata(write_png(tmp_path / "both.png", {
        "prompt": json.dumps(COMFY_DEFAULT), "parameters": A1111_TEXT}))
    assert meta.source == "a1111"


def test_sampler_and_scheduler_mapping_table():
    assert [map_sampler(s) for s in ("Euler a", "euler_ancestral", "DPM++ 2S a", "dpmpp_2m",
                                     "DDIM", "LCM", "ipndm_v", "tcd", "DPM++ 2M SDE", None)] == [
        "euler_a", "euler_a", "dpm++2s_a", "dpm++2m", "ddim_trailing", "lcm", "ipndm_v", "tcd",
        None, None]
    assert [map_scheduler(s) for s in ("Karras", "SGM Uniform", "normal", "Align Your Steps",
                                       "Align Your Steps GITS", "kl_optimal", "Automatic", "beta")] == [
        "karras", "sgm_uniform", "discrete", "ays", "gits", "kl_optimal", None, None]


# ---------------------------------------------------------------------------------------------
# unreadable files
# ---------------------------------------------------------------------------------------------


def _assert_read_error(path: Path, fragment: str):
    with pytest.raises(ImageReadError) as info:
        read_image_metadata(path)
    assert isinstance(info.value, MetadataError)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _assert_read_error(path, "empty")


def test_missing_file_and_directory(tmp_path):
    _assert_read_error(tmp_path / "nope.png", "No such file")
    _assert_read_error(tmp_path, "not a regular file")


def test_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"this is not an image at all" * 10)
    _assert_read_error(path, "not a recognised image")


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_truncated_files(tmp_path, fmt, suffix):
    full = tmp_path / f"full.{suffix}"
    noise = Image.effect_noise((256, 256), 64).convert("RGB")  # incompressible enough to be long
    info = png_info(A1111_TEXT, {"params": BASE_PARAMS}) if fmt == "PNG" else None
    noise.save(full, fmt, **({"pnginfo": info} if info else {}))
    data = full.read_bytes()
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info_:
        read_image_metadata(path)
    assert str(path) in str(info_.value)


def test_corrupt_png_body(tmp_path):
    path = tmp_path / "corrupt.png"
    Image.effect_noise((128, 128), 64).convert("RGB").save(path)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    _assert_read_error(path, "corrupt or truncated")


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # 10000 px: warning range
    _assert_read_error(path, "decompression bomb")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # >2x: Pillow's hard error
    _assert_read_error(path, "decompression bomb")


# ---------------------------------------------------------------------------------------------
# hashing
# ---------------------------------------------------------------------------------------------


def test_hashing_known_values(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hashing.file_sha256(path) == expected
    assert hashing.image_content_hash(path) == expected
    assert hashing.short_model_hash(path) == "ba7816bf8f"


def test_hashing_streams_across_chunks_and_sees_changes(tmp_path):
    path = tmp_path / "model.safetensors"
    payload = bytes(range(256)) * 9000  # ~2.2 MiB: spans several read chunks
    path.write_bytes(payload)
    assert hashing.file_sha256(path) == hashlib.sha256(payload).hexdigest()
    assert hashing.short_model_hash(path) == hashlib.sha256(payload).hexdigest()[:10]
    path.write_bytes(payload + b"x")  # size changes, so the memoised hash must not be reused
    assert hashing.short_model_hash(path) == hashlib.sha256(payload + b"x").hexdigest()[:10]
