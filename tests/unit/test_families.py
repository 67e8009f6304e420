"""Model families from tensors, DiffusionDesk's flat sidecars, per-family defaults, the inpaint composite and
model hashes kept in the database."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pony.orm import db_session

from ddtui.catalog import families
from ddtui.catalog.families import FAMILIES, detect, detect_from_tensors, family_of_version
from ddtui.catalog.models import Catalog, CatalogError, nested_form, parse_sidecar
from ddtui.catalog.synthetic import ldm
from ddtui.catalog.synthetic.gguf import GGMLType, GGUFWriter
from ddtui.catalog.synthetic.safetensors import write_safetensors
from ddtui.core.hashing import ModelHashes, file_sha256
from ddtui.core.params import build_generate_payload
from ddtui.db.schema import open_database
from workers.sd_worker import align_up, composite_inpaint

# --------------------------------------------------------------------------- detection


def _index(*names: str, **shapes: tuple[int, ...]) -> dict:
    out = {n: (1,) for n in names}
    out.update({k.replace("__", "."): v for k, v in shapes.items()})
    return out


def test_real_layouts_are_detected_as_sd_cpp_does():
    sd15 = detect_from_tensors({n: s for n, s, _ in ldm.sd15_tensors()})
    sdxl = detect_from_tensors({n: s for n, s, _ in ldm.sdxl_tensors()})
    assert (sd15.family, sd15.variant, sd15.align, sd15.components) == ("sd1", "SD 1.x", 64, "checkpoint")
    assert (sdxl.family, sdxl.variant, sdxl.align) == ("sdxl", "SDXL", 64)
    assert not sd15.guidance and not sdxl.guidance


@pytest.mark.parametrize("names, family, align", [
    (["joint_blocks.0.x_block.attn.qkv.weight"], "sd3", 8),
    (["double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"], "flux", 8),
    (["double_blocks.0.img_attn.qkv.weight", "distilled_guidance_layer.in_proj.weight"], "chroma", 8),
    (["double_stream_modulation_img.lin.weight", "double_blocks.0.img_attn.qkv.weight"], "flux2", 16),
    (["cap_embedder.0.weight", "layers.0.attention.qkv.weight"], "z-image", 8),
    (["transformer_blocks.0.img_mod.1.weight"], "qwen-image", 8),
    (["blocks.0.cross_attn.norm_k.weight", "patch_embedding.weight"], "wan", 16),
    (["some.other.weight"], "unknown", 64),
])
def test_standalone_diffusion_models_by_their_tensor_names(names, family, align):
    # Standalone files carry no prefix; ComfyUI's "diffusion_model." one must read the same.
    for prefix in ("", "diffusion_model."):
        info = detect_from_tensors({prefix + n: (1, 1) for n in names})
        assert (info.family, info.align) == (family, align)
        assert info.components == "diffusion_model"


def test_flux_guidance_input_and_sd2_by_its_text_encoder_width():
    assert detect_from_tensors(_index("double_blocks.0.x", "guidance_in.in_layer.weight")).guidance
    assert not detect_from_tensors(_index("double_blocks.0.x")).guidance
    sd2 = {n.replace("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                     "cond_stage_model.model.token_embedding.weight"): s
           for n, s, _ in ldm.sd15_tensors()}
    sd2["cond_stage_model.model.token_embedding.weight"] = (49408, 1024)
    assert detect_from_tensors(sd2).family == "sd2"
    inpaint = {n: s for n, s, _ in ldm.sd15_tensors()}
    inpaint["model.diffusion_model.input_blocks.0.0.weight"] = (320, 9, 3, 3)
    assert detect_from_tensors(inpaint).variant == "SD 1.x Inpaint"


def test_gguf_files_are_read_from_their_tensor_infos(tmp_path):
    path = tmp_path / "z.gguf"
    writer = GGUFWriter()
    writer.add_tensor("model.diffusion_model.cap_embedder.0.weight", np.zeros((4, 8), np.float32), GGMLType.F32)
    writer.add_tensor("model.diffusion_model.x_embedder.weight", np.zeros((2, 2), np.float32), GGMLType.F32)
    writer.write(path)
    assert detect(path).family == "z-image"


def test_detection_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"double_stream_modulation_img.lin.weight": np.zeros((2, 2), np.float32)})
    calls = []
    real = families.tensor_index
    monkeypatch.setattr(families, "tensor_index", lambda p: calls.append(p) or real(p))
    assert detect(path).family == "flux2" and detect(path).family == "flux2"
    assert len(calls) == 1
    write_safetensors(path, {"joint_blocks.0.a.weight": np.zeros((2, 2), np.float32)})
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse clock
    assert detect(path).family == "sd3" and len(calls) == 2


def test_unreadable_files_are_unknown_with_the_reason(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    info = detect(bad)
    assert info.family == "unknown" and "header" in info.error


def test_sd_cpp_version_labels_map_to_families():
    assert family_of_version("SD 1.x")[0].id == "sd1" and family_of_version("SD 1.x")[1] == 64
    assert family_of_version("Flux.2 klein") == (FAMILIES["flux2"], 16)
    assert family_of_version("Wan 2.2 TI2V") == (FAMILIES["wan"], 32)
    assert family_of_version("something new") is None


# --------------------------------------------------------------------------- sidecars


@pytest.fixture
def model_dir(tmp_path):
    root = tmp_path / "models"
    for folder in ("stable-diffusion", "vae", "text-encoder"):
        (root / folder).mkdir(parents=True)
    write_safetensors(root / "vae" / "ae.safetensors", {"decoder.conv_in.weight": np.zeros((2, 2), np.float16)})
    write_safetensors(root / "text-encoder" / "qwen3.safetensors", {"model.norm.weight": np.ones(2, np.float32)})
    write_safetensors(root / "stable-diffusion" / "zimg.safetensors",
                      {"cap_embedder.0.weight": np.zeros((2, 2), np.float16)})
    return root


def test_diffusiondesk_flat_sidecar_is_accepted_and_left_untouched(model_dir):
    sidecar = model_dir / "stable-diffusion" / "zimg.safetensors.json"
    text = json.dumps({"vae": "vae/ae.safetensors", "llm": "text-encoder/qwen3.safetensors", "flash_attn": True,
                       "prediction": "flow", "flow_shift": 3.0})
    sidecar.write_text(text)
    entry = Catalog.scan(model_dir).find("zimg")
    assert entry.usable, entry.problems
    sc = entry.sidecar
    assert sc.form == "flat" and sc.format == "diffusion_model"
    assert sc.components == {"vae": "vae/ae.safetensors", "llm": "text-encoder/qwen3.safetensors"}
    assert sc.flags == {"flash_attn": True} and sc.prediction == "flow" and sc.flow_shift == 3.0
    assert entry.family == "z-image" and entry.to_dict()["sidecar_form"] == "flat"
    assert sidecar.read_text() == text  # nothing rewrites the user's file


def test_flat_sidecar_ae_alias_and_its_errors(model_dir):
    assert nested_form({"ae": "vae/ae.safetensors"}, "diffusion_model")[0]["components"] == {
        "vae": "vae/ae.safetensors"}
    with pytest.raises(CatalogError, match="mixes"):
        nested_form({"vae": "vae/ae.safetensors", "components": {}})
    with pytest.raises(CatalogError, match="both 'vae' and 'ae'"):
        nested_form({"vae": "a", "ae": "b"})
    # The same path confinement and checks as the nested form, naming the component.
    with pytest.raises(CatalogError, match="components.vae.*leaves the model folder"):
        parse_sidecar({"vae": "../outside.safetensors"}, "image", model_dir)
    with pytest.raises(CatalogError, match="components.llm.*missing"):
        parse_sidecar({"llm": "text-encoder/none.gguf", "vae": "vae/ae.safetensors"}, "image", model_dir)
    with pytest.raises(CatalogError, match="flags.flash_attn.*true or false"):
        parse_sidecar({"flash_attn": "yes"}, "image", model_dir)
    with pytest.raises(CatalogError, match="unknown key 'steps'"):
        parse_sidecar({"vae": "vae/ae.safetensors", "steps": 4}, "image", model_dir)


def test_nested_sidecar_still_reads_as_nested(model_dir):
    sc = parse_sidecar({"format": "diffusion_model", "components": {"vae": "vae/ae.safetensors"}}, "image",
                       model_dir)
    assert sc.form == "nested" and sc.components == {"vae": "vae/ae.safetensors"}


# --------------------------------------------------------------------------- family defaults


def test_family_decides_defaults_and_drops_guidance_it_has_no_input_for(tmp_path):
    root = tmp_path / "models"
    (root / "stable-diffusion").mkdir(parents=True)
    specs = {n: s for n, s, _ in ldm.sdxl_tensors()}
    # A header-only stand-in is enough for the catalog (it never reads weights); zero-size shapes keep it tiny.
    write_safetensors(root / "stable-diffusion" / "xl.safetensors",
                      {n: np.zeros((0,) * len(s), np.float16) for n, s in specs.items()
                       if "token_embedding" not in n})
    cat = Catalog.scan(root)
    payload = build_generate_payload({"prompt": "x", "model": "xl"}, cat)
    assert payload["family"] == "sdxl"
    assert (payload["width"], payload["height"], payload["steps"], payload["sampler"]) == (1024, 1024, 25, "dpm++2m")
    assert payload["guidance"] is None
    explicit = build_generate_payload({"prompt": "x", "model": "xl", "width": 512, "height": 768, "steps": 3}, cat)
    assert (explicit["width"], explicit["height"], explicit["steps"]) == (512, 768, 3)


# --------------------------------------------------------------------------- alignment and inpaint composite


def test_alignment_rounds_up_to_the_family_multiple():
    assert [align_up(v, 64) for v in (64, 72, 128, 136)] == [64, 128, 128, 192]
    assert [align_up(v, 16) for v in (64, 72)] == [64, 80]


def test_inpaint_composite_keeps_every_unmasked_pixel():
    rng = np.random.default_rng(3)
    original = Image.fromarray(rng.integers(0, 256, (64, 72, 3), dtype=np.uint8))
    generated = Image.fromarray(rng.integers(0, 256, (64, 72, 3), dtype=np.uint8))
    mask = Image.new("L", (72, 64), 0)
    ImageDraw.Draw(mask).rectangle((20, 16, 51, 47), fill=255)
    out = np.asarray(composite_inpaint(original, generated, mask, blur=10))
    inside = np.asarray(mask) > 0
    assert np.array_equal(out[~inside], np.asarray(original)[~inside])
    assert (out[inside] != np.asarray(original)[inside]).any()
    # The feather blends near the edge and keeps the generated pixels in the middle of the mask.
    centre, edge = out[32, 36].astype(int), out[16, 36].astype(int)
    assert np.abs(centre - np.asarray(generated)[32, 36]).max() <= 2
    halfway = (np.asarray(original)[16, 36].astype(int) + np.asarray(generated)[16, 36]) / 2
    assert np.abs(edge - halfway).max() <= 40
    hard = np.asarray(composite_inpaint(original, generated, mask, blur=0))
    assert np.array_equal(hard[inside], np.asarray(generated)[inside])


# --------------------------------------------------------------------------- model hashes


def test_model_hash_is_computed_once_and_survives_a_restart(tmp_path):
    models = tmp_path / "models"
    (models / "stable-diffusion").mkdir(parents=True)
    path = models / "stable-diffusion" / "m.safetensors"
    write_safetensors(path, {"joint_blocks.0.a.weight": np.arange(300000, dtype=np.float32)})
    db = open_database(tmp_path / "h.db")
    seen = []
    first = ModelHashes(db, models).get("stable-diffusion/m.safetensors", lambda d, t: seen.append((d, t)))
    assert first.computed and first.sha256 == file_sha256(path) and first.family == "sd3"
    assert seen[0] == (0, path.stat().st_size) and seen[-1] == (path.stat().st_size, path.stat().st_size)
    db.disconnect()
    db = open_database(tmp_path / "h.db")  # a new service: the hash comes from the database
    again = ModelHashes(db, models).get("stable-diffusion/m.safetensors", lambda d, t: seen.append("again"))
    assert not again.computed and again.sha256 == first.sha256 and "again" not in seen
    path.write_bytes(path.read_bytes() + b" ")  # an edited file is hashed again
    os.utime(path, ns=(2, 2))
    changed = ModelHashes(db, models).get("stable-diffusion/m.safetensors")
    assert changed.computed and changed.sha256 != first.sha256
    with db_session:
        assert db.ModelFile.select().count() == 1
    db.disconnect()


def test_ckpt_tensor_names_come_from_the_pickle_without_running_it(tmp_path):
    import pickle
    import zipfile

    names = {"model.diffusion_model.input_blocks.0.0.weight": 1, "model.diffusion_model.middle_block.1.norm.weight": 2,
             "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": 3}
    path = tmp_path / "old.ckpt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"state_dict": names}, protocol=2))
    info = detect(path)
    assert (info.family, info.variant, info.components) == ("sd1", "SD 1.x", "checkpoint")
