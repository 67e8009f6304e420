"""The model catalog: scanning, sidecars, and one clear problem per bad model while the rest stay usable."""

import json
import os

import pytest

from ddtui.catalog.models import Catalog, CatalogError, parse_sidecar, resolve_inside


def put(root, rel, data=b"\0" * 16):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def sidecar(root, rel, data):
    p = root / (rel + ".json")
    p.write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.fixture
def models(tmp_path):
    root = tmp_path / "models"
    put(root, "stable-diffusion/flux2-klein.safetensors")
    put(root, "text-encoder/qwen3.safetensors")
    put(root, "vae/taef2.safetensors")
    put(root, "vae/flux2-ae.safetensors")
    put(root, "lora/ink.safetensors")
    put(root, "esrgan/x2.pth")
    put(root, "llm/tiny.gguf")
    put(root, "llm/tiny-mmproj.gguf")
    put(root, "llm/notes.txt")  # not a model extension: ignored
    sidecar(root, "stable-diffusion/flux2-klein.safetensors", {
        "format": "diffusion_model", "family": "flux2-klein",
        "components": {"llm": "text-encoder/qwen3.safetensors", "taesd": "vae/taef2.safetensors"},
        "flags": {"vae_tiling": True, "clip_on_cpu": False},
        "prediction": "flux2_flow", "flow_shift": 3,
        "defaults": {"steps": 4, "cfg": 1.0, "sampler": "euler", "scheduler": "simple", "width": 64, "height": 64},
    })
    sidecar(root, "lora/ink.safetensors", {"trigger_words": ["inkstyle"], "default_weight": 0.8})
    sidecar(root, "llm/tiny.gguf", {"mmproj": "llm/tiny-mmproj.gguf", "context_size": 512})
    return root


def test_scan_finds_every_kind(models):
    cat = Catalog.scan(models)
    kinds = {e.rel_path: e.kind for e in cat.entries}
    assert kinds == {
        "stable-diffusion/flux2-klein.safetensors": "image",
        "text-encoder/qwen3.safetensors": "text_encoder",
        "vae/flux2-ae.safetensors": "vae",
        "vae/taef2.safetensors": "vae",
        "lora/ink.safetensors": "lora",
        "esrgan/x2.pth": "esrgan",
        "llm/tiny-mmproj.gguf": "llm",
        "llm/tiny.gguf": "llm",
    }
    main = cat.find("flux2-klein", kind="image")
    assert main.usable
    assert main.sidecar.format == "diffusion_model"
    assert main.sidecar.flow_shift == 3.0
    assert main.sidecar.defaults["steps"] == 4
    assert main.component_paths(models)["llm"] == (models / "text-encoder/qwen3.safetensors").resolve()
    assert cat.find("ink.safetensors").sidecar.trigger_words == ["inkstyle"]
    assert cat.find("llm/tiny.gguf").sidecar.mmproj == "llm/tiny-mmproj.gguf"


def test_every_family_is_expressible(models):
    # A full SDXL checkpoint with a separate VAE, and SD3.5 / FLUX.1 / Z-Image / Qwen-Image standalone models.
    put(models, "text-encoder/clip_l.safetensors")
    put(models, "text-encoder/clip_g.safetensors")
    put(models, "text-encoder/t5xxl.gguf")
    examples = [
        {"family": "sdxl", "components": {"vae": "vae/flux2-ae.safetensors"}, "prediction": "eps"},
        {"family": "sd3.5", "format": "diffusion_model", "components": {
            "clip_l": "text-encoder/clip_l.safetensors", "clip_g": "text-encoder/clip_g.safetensors",
            "t5xxl": "text-encoder/t5xxl.gguf", "vae": "vae/flux2-ae.safetensors"}},
        {"family": "flux", "format": "diffusion_model", "components": {
            "clip_l": "text-encoder/clip_l.safetensors", "t5xxl": "text-encoder/t5xxl.gguf",
            "vae": "vae/flux2-ae.safetensors"}, "flags": {"clip_on_cpu": True, "offload_to_cpu": True}},
        {"family": "z-image", "format": "diffusion_model", "components": {
            "llm": "text-encoder/qwen3.safetensors", "vae": "vae/flux2-ae.safetensors"}, "flags": {"flash_attn": True}},
        {"family": "qwen-image", "format": "diffusion_model", "components": {
            "llm": "text-encoder/qwen3.safetensors", "vae": "vae/flux2-ae.safetensors"}, "flow_shift": 3.0},
    ]
    for data in examples:
        sc = parse_sidecar(data, "image", models)
        assert sc.family == data["family"]


@pytest.mark.parametrize(
    "data, fragment",
    [
        ("{oops", "not valid JSON"),
        ({"components": {"vae": "vae/missing.safetensors"}}, "'components.vae': file 'vae/missing.safetensors' is missing"),
        ({"components": {"vae": "../outside.safetensors"}}, "leaves the model folder"),
        ({"components": {"vae": "/etc/passwd"}}, "is absolute"),
        ({"components": {"unet": "vae/taef2.safetensors"}}, "unknown component 'components.unet'"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"flags": {"flash_attn": "yes"}}, "'flags.flash_attn' must be true or false"),
        ({"defaults": {"width": 500}}, "'defaults.width' must be a multiple of 8"),
        ({"defaults": {"steps": "many"}}, "'defaults.steps' must be an integer"),
        ({"defaults": {"sampler": "euler_ancestral"}}, "'defaults.sampler' must be one of"),
        ({"prediction": "x0"}, "'prediction' must be one of"),
        ({"format": "diffusion_model"}, "needs 'components.vae' or 'components.taesd'"),
        ([1], "must be a JSON object"),
    ],
)
def test_bad_sidecar_marks_only_that_model(models, data, fragment):
    put(models, "stable-diffusion/broken.safetensors")
    sidecar(models, "stable-diffusion/broken.safetensors", data)
    cat = Catalog.scan(models)
    broken = next(e for e in cat.entries if e.name == "broken")
    assert not broken.usable
    assert any(fragment in p for p in broken.problems), broken.problems
    assert "broken.safetensors.json" in broken.problems[0]
    with pytest.raises(CatalogError, match="broken"):
        cat.find("broken")
    assert cat.find("flux2-klein").usable  # the others stay usable


def test_symlink_out_of_model_dir_is_refused(models, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"x" * 8)
    os.symlink(outside, models / "vae" / "sneaky.safetensors")
    with pytest.raises(CatalogError, match="leaves the model folder"):
        resolve_inside(models, "vae/sneaky.safetensors")
    cat = Catalog.scan(models)
    sneaky = next(e for e in cat.entries if e.name == "sneaky")
    assert any("leaves the model folder" in p for p in sneaky.problems)
    put(models, "stable-diffusion/uses-sneaky.safetensors")
    sidecar(models, "stable-diffusion/uses-sneaky.safetensors", {"components": {"vae": "vae/sneaky.safetensors"}})
    entry = next(e for e in Catalog.scan(models).entries if e.name == "uses-sneaky")
    assert any("leaves the model folder" in p for p in entry.problems)


def test_empty_model_file_is_a_problem(models):
    put(models, "stable-diffusion/empty.gguf", b"")
    entry = next(e for e in Catalog.scan(models).entries if e.name == "empty")
    assert entry.problems == ["the file is empty"]


def test_find_reports_missing_and_ambiguous(models):
    cat = Catalog.scan(models)
    with pytest.raises(CatalogError, match="no image model 'nope'"):
        cat.find("nope", kind="image")
    put(models, "lora/sub/ink.safetensors")
    with pytest.raises(CatalogError, match="names several models"):
        Catalog.scan(models).find("ink", kind="lora")


def test_missing_model_dir_is_an_empty_catalog(tmp_path):
    assert Catalog.scan(tmp_path / "none").entries == []


def test_vision_projector_is_its_own_kind(demo_models):
    kinds = {e.rel_path: e.kind for e in Catalog.scan(demo_models).entries}
    assert kinds["llm/demo-llama-mmproj.gguf"] == "mmproj"
    assert kinds["llm/demo-llama.gguf"] == "llm"
