"""Full-size SD1.5 and SDXL checkpoints (random weights, LDM names) through the real service, worker and CLI.

Covers what a user bringing a real checkpoint meets: no sidecar at all, DiffusionDesk's flat sidecar, the
family read from the tensors (defaults, no "Guidance" in the metadata), a size that is not a multiple of 64
(SD1.x samples at multiples of 64), img2img and inpainting that line up with the init image pixel for pixel,
the unmasked area kept byte for byte, a re-run that reproduces the pixels, and the model hashed once across
service restarts; then SDXL at a non-aligned size. The checkpoints (2.1 GB and 6.9 GB) are written once into a
cache folder (`DDTUI_TEST_CACHE`, else ~/.cache/ddtui-tests) and reused by later runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ddtui.catalog.synthetic.ldm import (
    SD15_PARAMS,
    SDXL_PARAMS,
    write_sd15_checkpoint,
    write_sd_vae,
    write_sdxl_checkpoint,
)
from tests.conftest import Service, ddtui, make_home

pytest.importorskip("stable_diffusion_cpp")
pytestmark = pytest.mark.slow

GENERATOR = "v1"  # bump when the generator's output changes, so cached files are rewritten
FAST = ["--steps", "2", "--cfg", "1", "--sampler", "euler"]


def _cache_dir() -> Path:
    root = Path(os.environ.get("DDTUI_TEST_CACHE") or Path.home() / ".cache" / "ddtui-tests")
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached(path: Path, writer, expected_min: int) -> Path:
    """A synthetic model file from the cache, written (atomically) when absent or cut short."""
    if not path.is_file() or path.stat().st_size < expected_min:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path, 0)
    return path


@pytest.fixture(scope="module")
def sd15_home(tmp_path_factory) -> Path:
    # The model folder itself lives in the cache (a link to a file outside it would be refused, rightly).
    models = _cache_dir() / f"sd15-models-{GENERATOR}"
    for folder in ("stable-diffusion", "vae", "text-encoder", "lora", "esrgan", "llm"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    checkpoint = cached(models / "stable-diffusion" / "sd15.safetensors", write_sd15_checkpoint, SD15_PARAMS * 2)
    cached(models / "vae" / "sd-vae.safetensors", write_sd_vae, 100 << 20)
    flat = models / "stable-diffusion" / "sd15-flat.safetensors"
    if not flat.exists() or not os.path.samefile(flat, checkpoint):
        flat.unlink(missing_ok=True)
        os.link(checkpoint, flat)  # the same file under a second name, with its own sidecar
    # DiffusionDesk's own form: components and flags at the top level.
    (models / "stable-diffusion" / "sd15-flat.safetensors.json").write_text(
        json.dumps({"ae": "vae/sd-vae.safetensors", "vae_tiling": False, "prediction": "eps"}))
    root = tmp_path_factory.mktemp("sd15")
    return make_home(root / "home", models, sd={"default_model": "stable-diffusion/sd15.safetensors"},
                     workers={"local_llm": False}, queue={"auto_tag": False})


@pytest.fixture(scope="module")
def service(sd15_home):
    svc = Service(sd15_home).start()
    yield svc
    svc.stop()


def generate(home: Path, *args: str) -> tuple[int, Path, str]:
    r = ddtui(home, "generate", *args, timeout=300)
    assert r.returncode == 0, r.stderr
    found = re.search(r"^#(\d+)\s+(\S+)", r.stdout, re.MULTILINE)
    assert found, r.stdout
    return int(found.group(1)), Path(found.group(2)), r.stderr


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def worker_log(home: Path) -> str:
    return (home / "logs" / "sd-local.log").read_text(errors="replace")


def test_models_list_shows_family_and_sidecar_form(sd15_home):
    r = ddtui(sd15_home, "models", "list", "--json")
    assert r.returncode == 0, r.stderr
    entries = {m["path"]: m for m in json.loads(r.stdout)["models"]}
    plain, flat = entries["stable-diffusion/sd15.safetensors"], entries["stable-diffusion/sd15-flat.safetensors"]
    assert (plain["family"], plain["sidecar_form"], plain["problems"]) == ("sd1", None, [])
    assert (flat["family"], flat["sidecar_form"], flat["problems"]) == ("sd1", "flat", [])
    assert flat["sidecar"]["components"] == {"vae": "vae/sd-vae.safetensors"}
    text = ddtui(sd15_home, "models", "list").stdout
    assert "SD 1.x, no sidecar" in text and "SD 1.x, DiffusionDesk sidecar" in text


def test_no_sidecar_family_metadata_rerun_and_flat_sidecar(service):
    home = service.home
    gid, path, stderr = generate(home, "a red fox", "--size", "64x64", "--seed", "5", *FAST)
    assert "hashing model stable-diffusion/sd15.safetensors" in stderr and "hashed model" in stderr
    with Image.open(path) as im:
        assert im.size == (64, 64)
        text, doc = im.info["parameters"], json.loads(im.info["ddtui"])
    assert "Guidance" not in text and "Steps: 2" in text  # SD1.5 has no guidance input
    assert doc["params"]["family"] == "sd1" and doc["params"]["guidance"] is None
    # Re-running the recorded item reproduces every pixel.
    r = ddtui(home, "history", "rerun", str(gid), timeout=300)
    assert r.returncode == 0, r.stderr
    again = Path(re.search(r"^#\d+\s+(\S+)", r.stdout, re.MULTILINE).group(1))
    assert np.array_equal(pixels(again), pixels(path))
    # The flat sidecar's autoencoder is used: same seed and settings, another decoder, other pixels.
    _, flat_path, flat_err = generate(home, "a red fox", "--model", "sd15-flat", "--size", "64x64", "--seed", "5",
                                      *FAST)
    assert flat_path.exists() and not np.array_equal(pixels(flat_path), pixels(path))


def test_non_aligned_size_img2img_and_inpaint_line_up(service, tmp_path):
    home = service.home
    _, path, _ = generate(home, "a red fox", "--size", "72x64", "--seed", "9", *FAST)
    assert Image.open(path).size == (72, 64)
    log = worker_log(home)
    assert "sd1, sizes aligned to 64" in log
    assert "align generation request" not in log  # the worker asked for 128x64 itself; nothing was rounded

    # img2img: a bright square in the init image must change the output where the square is.
    plain = np.full((64, 72, 3), 128, np.uint8)
    square = plain.copy()
    square[40:56, 48:64] = 255
    outputs = []
    for name, arr in (("plain", plain), ("square", square)):
        init = tmp_path / f"{name}.png"
        Image.fromarray(arr).save(init)
        _, out, _ = generate(home, "a red fox", "--init", str(init), "--strength", "0.3", "--seed", "3", *FAST)
        assert Image.open(out).size == (72, 64)  # the init image's size
        outputs.append(pixels(out))
    diff = np.abs(outputs[1] - outputs[0]).sum(axis=-1)
    ys, xs = np.nonzero(diff > diff.max() * 0.5)
    assert abs(ys.mean() - 48) < 12 and abs(xs.mean() - 56) < 12, (ys.mean(), xs.mean())

    # inpaint: outside the mask every pixel is the input's, byte for byte.
    rng = np.random.default_rng(4)
    original = rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)
    init, mask_path = tmp_path / "init.png", tmp_path / "mask.png"
    Image.fromarray(original).save(init)
    mask = Image.new("L", (72, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 8, 47, 39), fill=255)
    mask.save(mask_path)
    _, out, _ = generate(home, "a red fox", "--init", str(init), "--mask", str(mask_path), "--strength", "0.8",
                         "--mask-blur", "6", "--seed", "3", *FAST)
    result = pixels(out)
    keep = np.asarray(mask) == 0
    assert result.shape == (64, 72, 3)
    assert np.array_equal(result[keep], original[keep])
    assert (result[~keep] != original[~keep]).any()


def test_model_hash_is_computed_once_across_restarts(sd15_home, service):
    home = sd15_home
    generate(home, "a red fox", "--size", "64x64", "--seed", "6", *FAST)  # hashed here unless it already was
    db = sqlite3.connect(home / "history.db")
    row = db.execute("SELECT sha256, hashed FROM model_file WHERE path = 'stable-diffusion/sd15.safetensors'"
                     ).fetchone()
    db.close()
    assert row is not None and len(row[0]) == 64
    service.stop()
    service.start()
    _, _, stderr = generate(home, "a red fox", "--size", "64x64", "--seed", "6", *FAST)
    assert "hashing model" not in stderr
    db = sqlite3.connect(home / "history.db")
    assert db.execute("SELECT sha256, hashed FROM model_file WHERE path = 'stable-diffusion/sd15.safetensors'"
                      ).fetchone() == row
    db.close()


@pytest.fixture(scope="module")
def sdxl_home(tmp_path_factory) -> Path:
    models = _cache_dir() / f"sdxl-models-{GENERATOR}"
    checkpoint = models / "stable-diffusion" / "sdxl.safetensors"
    if not checkpoint.is_file() and shutil.disk_usage(_cache_dir()).free < 15 << 30:
        pytest.skip("a full-size SDXL checkpoint needs 7 GB of disk (and 15 GB free to write it)")
    for folder in ("stable-diffusion", "vae", "text-encoder", "lora", "esrgan", "llm"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    cached(checkpoint, write_sdxl_checkpoint, SDXL_PARAMS * 2)
    root = tmp_path_factory.mktemp("sdxl")
    return make_home(root / "home", models, sd={"default_model": "stable-diffusion/sdxl.safetensors"},
                     workers={"local_llm": False}, queue={"auto_tag": False})


def test_sdxl_checkpoint_without_sidecar(sdxl_home):
    """SDXL (two text encoders, 2.6 billion UNet weights) at a size that is not a multiple of 64."""
    listed = {m["path"]: m for m in json.loads(ddtui(sdxl_home, "models", "list", "--json").stdout)["models"]}
    assert listed["stable-diffusion/sdxl.safetensors"]["family"] == "sdxl"
    svc = Service(sdxl_home).start()
    try:
        _, path, stderr = generate(sdxl_home, "a red fox", "--size", "72x64", "--seed", "2", *FAST)
    finally:
        svc.stop()
    assert "hashing model stable-diffusion/sdxl.safetensors" in stderr
    with Image.open(path) as im:
        assert im.size == (72, 64)
        doc = json.loads(im.info["ddtui"])
    assert doc["params"]["family"] == "sdxl" and doc["params"]["guidance"] is None
    log = worker_log(sdxl_home)
    assert "sdxl, sizes aligned to 64" in log and "align generation request" not in log
