"""Bad inputs through the real CLI and service: odd Unicode, huge prompts, broken images and sidecars."""

from __future__ import annotations

import json

from PIL import Image

from tests.conftest import ddtui
from tests.integration.test_core import lines

ODD = [
    "🦊 fox 狐狸 лиса ثعلب",  # emoji, CJK, Cyrillic, right-to-left
    "zero\u200bwidth\u200djoiners and e\u0301\u0301\u0301 combining marks",
    "tabs\tand\nnewlines\r\nand \"quotes\", commas: colons",
    "<lora:demo-lora:0.5> with a LoRA and ünïcödé",
]


def test_odd_unicode_prompts_generate_and_read_back(service):
    for i, prompt in enumerate(ODD):
        r = ddtui(service.home, "generate", prompt, "--seed", str(i), "--json")
        assert r.returncode == 0, (prompt, r.stderr)
        gid = [e for e in lines(r.stdout) if e["event"] == "image"][0]["generation_id"]
        shown = json.loads(ddtui(service.home, "history", "show", str(gid), "--json").stdout)
        assert shown["prompt"] == prompt
        with Image.open(shown["file"]) as im:
            assert prompt.split()[0] in im.text["parameters"] or prompt.startswith("<lora")


def test_huge_prompts(service):
    long_prompt = ("a very detailed castle, " * 800)[:19_000]
    r = ddtui(service.home, "generate", long_prompt, "--seed", "1", "--json")
    assert r.returncode == 0, r.stderr[-500:]
    r = ddtui(service.home, "generate", "x" * 20_001)
    assert r.returncode == 2 and "the limit is 20000" in r.stderr


def test_broken_init_and_mask_images(service, tmp_path):
    good = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (120, 40, 40)).save(good)
    corrupt = tmp_path / "mask.png"
    corrupt.write_bytes(good.read_bytes()[:60])
    r = ddtui(service.home, "generate", "x", "--init", str(good), "--mask", str(corrupt))
    assert r.returncode == 2 and "mask image" in r.stderr and "not a readable image" in r.stderr
    r = ddtui(service.home, "generate", "x", "--mask", str(good))
    assert r.returncode == 2 and "a mask needs an init image" in r.stderr
    r = ddtui(service.home, "generate", "x", "--init", str(good), "--strength", "0")
    assert r.returncode == 2 and "strength must be" in r.stderr
    mask = tmp_path / "ok-mask.png"
    Image.new("L", (64, 64), 0).save(mask)
    r = ddtui(service.home, "generate", "inpaint nothing", "--init", str(good), "--mask", str(mask), "--json")
    assert r.returncode == 0, r.stderr


def test_broken_sidecar_is_named_and_other_models_work(service):
    models = service.home / "models"
    broken = models / "stable-diffusion" / "broken-model.safetensors"
    broken.write_bytes((models / "stable-diffusion" / "demo-flux2-klein.safetensors").read_bytes()[:4096])
    (models / "stable-diffusion" / "broken-model.safetensors.json").write_text('{"components": {"vae": "../../etc/passwd"}')
    try:
        listed = ddtui(service.home, "models", "list").stdout
        assert "broken-model.safetensors" in listed and "not valid JSON" in listed
        r = ddtui(service.home, "generate", "x", "--model", "broken-model")
        assert r.returncode == 2 and "broken-model" in r.stderr and "not valid JSON" in r.stderr
        (models / "stable-diffusion" / "broken-model.safetensors.json").write_text(
            '{"format": "diffusion_model", "components": {"taesd": "vae/demo-taef2.safetensors"}}')
        # The sidecar is fine now but the file is a truncated model: the worker reports the load failure.
        r = ddtui(service.home, "generate", "x", "--model", "broken-model", "--json")
        assert r.returncode == 1
        failed = [e for e in lines(r.stdout) if e["event"] == "failed"][0]
        assert failed["reason"] in ("load_failed", "generation_failed"), failed
        assert "incomplete or does not match" in failed["message"] or "load" in failed["message"]
        assert failed["attempts"] == 1  # a model that cannot run is not retried
        assert ddtui(service.home, "generate", "the demo model still works", "--seed", "3").returncode == 0
    finally:
        broken.unlink()
        (models / "stable-diffusion" / "broken-model.safetensors.json").unlink()
