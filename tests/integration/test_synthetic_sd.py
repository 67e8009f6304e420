"""Integration tests: the synthetic SD set runs in the real stable-diffusion.cpp.

Owns the end-to-end check of ``ddtui.catalog.synthetic.sd`` against the real
``stable-diffusion-cpp-python`` 0.4.7 binding: the FLUX.2 [klein] DiT, the
Qwen3 text encoder (``llm_path``) and taef2 (``taesd_path``) load and generate
64x64 txt2img / img2img / inpaint images, the ESRGAN upscales x2 and a
``<lora:...>`` tag changes the output. One thread per model (2-core machine);
callbacks are reset after every binding call (binding trap, see sdcpp_compat).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from ddtui.catalog.synthetic import sd as synth
from ddtui.catalog.synthetic.safetensors import read_safetensors_header, write_safetensors
from ddtui.catalog.synthetic.sdcpp_compat import reset_callbacks

stable_diffusion_cpp = pytest.importorskip("stable_diffusion_cpp")

pytestmark = pytest.mark.slow

SEED = 7
SIZE = 64
LORA_NAME = "demo-lora"
BASE = dict(width=SIZE, height=SIZE, sample_steps=4, cfg_scale=1.0, sample_method="euler")


def _write_set(directory, seed: int) -> dict:
    # Same layout the catalog uses: LoRAs live in their own lora_model_dir.
    return {
        "diffusion": synth.write_flux2_klein_diffusion(directory / "flux2-klein.safetensors", seed),
        "llm": synth.write_qwen3_text_encoder(directory / "qwen3.safetensors", seed),
        "taesd": synth.write_flux2_tiny_autoencoder(directory / "taef2.safetensors", seed),
        "lora": synth.write_lora(directory / "loras" / f"{LORA_NAME}.safetensors", seed),
        "esrgan": synth.write_esrgan(directory / "esrgan-x2.safetensors", seed, scale=2, blocks=0),
    }


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synthetic-sd")
    start = time.perf_counter()
    files = _write_set(directory, SEED)
    files["write_seconds"] = time.perf_counter() - start
    return files


@pytest.fixture(scope="module")
def engine(model_files):
    reset_callbacks()  # a stale callback from an earlier test module would crash the load
    start = time.perf_counter()
    model = stable_diffusion_cpp.StableDiffusion(
        diffusion_model_path=str(model_files["diffusion"]),
        llm_path=str(model_files["llm"]),
        taesd_path=str(model_files["taesd"]),
        lora_model_dir=str(model_files["lora"].parent),
        upscaler_path=str(model_files["esrgan"]),
        n_threads=1,
        verbose=False,
    )
    model.load_seconds = time.perf_counter() - start
    reset_callbacks()
    yield model
    model.close()
    reset_callbacks()


def _generate(engine, prompt: str = "a red fox in the snow", **kwargs) -> Image.Image:
    try:
        images = engine.generate_image(prompt=prompt, **{**BASE, "seed": SEED, **kwargs})
    finally:
        reset_callbacks()
    assert len(images) == 1
    return images[0]


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------


def test_files_are_valid_small_and_fast_to_write(model_files):
    total = 0
    for key in ("diffusion", "llm", "taesd", "lora", "esrgan"):
        header = read_safetensors_header(model_files[key])
        assert header["__metadata__"]["ddtui.seed"] == str(SEED)
        total += model_files[key].stat().st_size
    assert 15e6 < total < 25e6  # ~20 MB, dominated by the 151936 x 32 F16 embedding
    assert model_files["esrgan"].stat().st_size < 300_000
    assert model_files["write_seconds"] < 10  # ~0.2 s here; generous for slow CI disks


def test_writers_are_deterministic_per_seed(tmp_path):
    a = synth.write_flux2_klein_diffusion(tmp_path / "a.safetensors", 3)
    b = synth.write_flux2_klein_diffusion(tmp_path / "b.safetensors", 3)
    c = synth.write_flux2_klein_diffusion(tmp_path / "c.safetensors", 4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_safetensors_round_trip(tmp_path):
    import struct

    tensors = {
        "w": np.arange(12, dtype=">f4").reshape(3, 4).T,  # big-endian, non-contiguous
        "h": np.ones((2, 3), dtype=np.float16),
        "alpha": np.array(4.0, dtype=np.float32),  # 0-d, as LoRA alphas are
        "empty": np.zeros((0, 5), dtype=np.int8),
    }
    path = write_safetensors(tmp_path / "t.safetensors", tensors, {"k": "v"})
    header = read_safetensors_header(path)
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    assert (8 + header_len) % 8 == 0 and header["__metadata__"] == {"k": "v"}
    data = raw[8 + header_len :]
    for name, expected in tensors.items():
        info = header[name]
        begin, end = info["data_offsets"]
        got = np.frombuffer(data[begin:end], dtype=expected.dtype.newbyteorder("<"))
        got = got.reshape(info["shape"])
        assert got.shape == expected.shape and np.array_equal(got, expected)
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]  # no temp file left


def test_diffusion_file_is_detected_as_flux2_klein(model_files):
    names = set(read_safetensors_header(model_files["diffusion"])) - {"__metadata__"}
    # model.cpp: this tensor marks FLUX.2; no single_blocks.47 means klein, not FLUX.2 dev.
    assert "double_stream_modulation_img.lin.weight" in names
    assert not any(n.startswith("single_blocks.47.") for n in names)
    embed = read_safetensors_header(model_files["llm"])["model.embed_tokens.weight"]
    vocab, hidden = embed["shape"]
    assert (vocab, hidden) == (151936, synth.QWEN3_HIDDEN)


# ---------------------------------------------------------------------------
# generation with the real binding
# ---------------------------------------------------------------------------


def test_txt2img_64(engine):
    start = time.perf_counter()
    image = _generate(engine)
    elapsed = time.perf_counter() - start
    assert image.size == (SIZE, SIZE)
    assert image.mode in ("RGB", "RGBA")
    pixels = _rgb(image)
    assert pixels.std() > 10, "image is flat"
    assert pixels.reshape(-1, 3).std(axis=0).min() > 5, "a colour channel is flat"
    assert elapsed < 30  # ~0.6 s on one thread here


def test_same_seed_same_image_and_seeds_differ(engine):
    first = _rgb(_generate(engine, seed=11))
    again = _rgb(_generate(engine, seed=11))
    other = _rgb(_generate(engine, seed=12))
    assert np.array_equal(first, again)
    assert _mean_abs(first, other) > 5


def test_progress_callback_then_plain_call_does_not_crash(engine):
    steps = []
    image = _generate(engine, progress_callback=lambda step, total, t: steps.append(step))
    assert steps and image.size == (SIZE, SIZE)
    # Without reset_callbacks() in _generate this call would jump into a freed ctypes thunk.
    assert _generate(engine).size == (SIZE, SIZE)


def test_img2img_strength(engine):
    init = _generate(engine, seed=21)
    light = _generate(engine, init_image=init, strength=0.3, seed=22)
    heavy = _generate(engine, init_image=init, strength=0.95, seed=22)
    assert light.size == heavy.size == (SIZE, SIZE)
    assert _rgb(light).std() > 10 and _rgb(heavy).std() > 10
    # More strength means more noise: the result drifts further from the source.
    assert _mean_abs(_rgb(light), _rgb(init)) < _mean_abs(_rgb(heavy), _rgb(init))


def test_inpaint_with_mask(engine):
    init = _generate(engine, seed=31)
    mask = Image.new("L", (SIZE, SIZE), 0)  # black: keep
    mask.paste(255, (0, 0, SIZE // 2, SIZE))  # white: repaint the left half
    keep_mask = Image.new("L", (SIZE, SIZE), 0)
    keep_all = _generate(engine, init_image=init, mask_image=keep_mask, strength=1.0, seed=32)
    inpainted = _generate(engine, init_image=init, mask_image=mask, strength=1.0, seed=32)
    no_mask = _generate(engine, init_image=init, strength=1.0, seed=32)
    assert inpainted.size == (SIZE, SIZE)
    diff = np.abs(_rgb(inpainted) - _rgb(keep_all)).mean(axis=2)
    # The repainted half changes much more than the kept half (which the TAE only re-encodes).
    # (At 64 px the whole TAE latent is 8x8, so the halves still leak into each other.)
    assert diff[:, : SIZE // 2].mean() > 1.5 * diff[:, SIZE // 2 :].mean()
    assert _mean_abs(_rgb(inpainted), _rgb(no_mask)) > 1


def test_esrgan_upscale_x2(engine):
    source = _generate(engine, seed=41)
    try:
        (upscaled,) = engine.upscale(source, upscale_factor=2)
    finally:
        reset_callbacks()
    assert upscaled.size == (2 * SIZE, 2 * SIZE)
    # The synthetic RRDBNet is near-identity: shrinking the result gives the source back, roughly.
    shrunk = upscaled.convert("RGB").resize((SIZE, SIZE), Image.BOX)
    assert _mean_abs(_rgb(shrunk), _rgb(source)) < 25


def test_lora_tag_changes_output(engine):
    # Last on purpose: "immediately" LoRA mode patches weights in place and un-patches later.
    plain = _rgb(_generate(engine, seed=51))
    tagged = f"a red fox in the snow <lora:{LORA_NAME}:0.8>"
    with_lora = _rgb(_generate(engine, prompt=tagged, seed=51))
    assert _mean_abs(plain, with_lora) > 3
    # Dropping the tag restores the base weights (up to float round-off from un-patching).
    after = _rgb(_generate(engine, seed=51))
    assert _mean_abs(plain, after) < 1
