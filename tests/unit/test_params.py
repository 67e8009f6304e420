"""Generation parameters: precedence (request > preset > sidecar > built-in) and every bad-input error."""

import pytest
from PIL import Image

from ddtui.catalog.models import Catalog
from ddtui.core.params import ParamError, build_generate_payload, parse_loras, parse_size, rerun_request


@pytest.fixture(scope="module")
def catalog(demo_models):
    return Catalog.scan(demo_models)


def build(catalog, **req):
    req.setdefault("prompt", "a cat")
    return build_generate_payload(req, catalog, "stable-diffusion/demo-flux2-klein.safetensors")


def test_sidecar_defaults_then_request(catalog):
    p = build(catalog, seed=7)
    assert (p["width"], p["height"], p["steps"], p["cfg"], p["sampler"]) == (64, 64, 4, 1.0, "euler")
    assert p["options"]["format"] == "diffusion_model"
    assert p["options"]["components"]["taesd"] == "vae/demo-taef2.safetensors"
    assert p["seed"] == 7 and p["mode"] == "txt2img" and p["kind"] == "txt2img"
    p = build(catalog, steps=9, width=128, height=96, sampler="euler_a", seed=-1)
    assert (p["steps"], p["width"], p["height"], p["sampler"]) == (9, 128, 96, "euler_a")
    assert 0 <= p["seed"] < 2**32


def test_preset_sits_between_request_and_sidecar(catalog):
    preset = {"id": 3, "model": "demo-flux2-klein", "params": {"steps": 6, "width": 96}}
    p = build_generate_payload({"prompt": "x", "width": 128}, catalog, "", preset)
    assert p["steps"] == 6 and p["width"] == 128 and p["preset_id"] == 3


@pytest.mark.parametrize(
    "req, message",
    [
        ({"width": 100}, "width 100 is not a multiple of 8 (try 96 or 104)"),
        ({"height": 8192}, "height must be from 64 to 4096"),
        ({"steps": 0}, "steps must be an integer from 1 to 500"),
        ({"sampler": "dpm_fancy"}, "sampler must be one of"),
        ({"scheduler": "weekly"}, "scheduler must be one of"),
        ({"prompt": "   "}, "the prompt is empty"),
        ({"prompt": "x" * 20001}, "the limit is 20000"),
        ({"prompt": "a\0b"}, "contains a NUL character"),
        ({"seed": "lucky"}, "seed must be a whole number"),
        ({"batch": 0}, "batch count must be from 1 to 64"),
        ({"model": "nope"}, "no image model 'nope'"),
        ({"prompt": "a <lora:../../etc/passwd:1>"}, "is not allowed"),
        ({"prompt": "a <lora:missing:1>"}, "LoRA 'missing' not found"),
        ({"prompt": "a <lora:demo-lora:lots>"}, "is not a number"),
        ({"mask_image": "/tmp/m.png"}, "a mask needs an init image"),
        ({"init_image": "/nonexistent/x.png"}, "does not exist"),
        ({"hires": {"enabled": True, "scale": 9}}, "hires scale must be above 1"),
    ],
)
def test_bad_input_is_named(catalog, req, message):
    with pytest.raises(ParamError) as err:
        build(catalog, **req)
    assert message in str(err.value)


def test_loras_resolve_inside_lora_folder(catalog, demo_models):
    assert parse_loras("x <lora:demo-lora:0.5> y", demo_models / "lora") == [{"name": "demo-lora", "weight": 0.5}]
    assert parse_loras("<lora:demo-lora>", demo_models / "lora") == [{"name": "demo-lora", "weight": 1.0}]


def test_init_and_mask_images(catalog, tmp_path):
    init, mask, bad = tmp_path / "i.png", tmp_path / "m.png", tmp_path / "bad.png"
    Image.new("RGB", (64, 64)).save(init)
    Image.new("L", (64, 64), 255).save(mask)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    p = build(catalog, init_image=str(init), strength=0.4)
    assert p["mode"] == "img2img" and p["strength"] == 0.4 and p["init_path"] == str(init.resolve())
    p = build(catalog, init_image=str(init), mask_image=str(mask))
    assert p["mode"] == "inpaint" and p["kind"] == "inpaint"
    with pytest.raises(ParamError, match="not a readable image"):
        build(catalog, init_image=str(bad))
    with pytest.raises(ParamError, match="strength must be"):
        build(catalog, init_image=str(init), strength=1.5)


def test_parse_size():
    assert parse_size("512x768") == (512, 768)
    assert parse_size(" 64 X 64 ") == (64, 64)
    for bad in ("512", "512x", "axb", "513x512"):
        with pytest.raises(ParamError):
            parse_size(bad)


def test_rerun_request_keeps_everything_that_matters(catalog):
    p = build(catalog, seed=11, batch=3, negative_prompt="dark", steps=5)
    again = build_generate_payload(rerun_request(p), catalog)
    for key in ("prompt", "negative_prompt", "model", "width", "height", "steps", "cfg", "sampler", "scheduler",
                "seed", "options"):
        assert again[key] == p[key], key
    assert again["batch"] == 1
