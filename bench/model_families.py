"""Benchmark: what a user's first use of a model costs per architecture, and what hashing it once saves.

For each architecture — the demo FLUX.2-klein-shaped set, a full-size SD1.5 checkpoint and (with `--sdxl`) a
full-size SDXL checkpoint, all random weights — it measures, on one thread:

* load: creating the stable-diffusion.cpp context (the file read from the page cache after a first read);
* first job: one 64x64 txt2img with 2 steps right after the load (the demo set uses its own 4 steps);
* hash: the first SHA-256 of the file through `ModelHashes` (stored in a database), against the lookup a
  restarted service does instead (a new database connection, the stored row) — the ratio is the saving.

The SD1.5 and SDXL files are written once into the test cache (`DDTUI_TEST_CACHE`, else ~/.cache/ddtui-tests)
and reused. The last line is parseable:

    RESULT sd15_load_s=2.1 sd15_first_job_s=4.9 sd15_hash_s=3.0 sd15_hash_cached_ms=2.1 ...

Run: ``python bench/model_families.py [--sdxl]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddtui.catalog import demo  # noqa: E402
from ddtui.catalog.families import detect  # noqa: E402
from ddtui.catalog.synthetic.ldm import write_sd15_checkpoint, write_sdxl_checkpoint  # noqa: E402
from ddtui.catalog.synthetic.sdcpp_compat import reset_callbacks  # noqa: E402
from ddtui.core.hashing import ModelHashes  # noqa: E402
from ddtui.db.schema import open_database  # noqa: E402


def cached_checkpoint(kind: str) -> Path:
    root = Path(os.environ.get("DDTUI_TEST_CACHE") or Path.home() / ".cache" / "ddtui-tests")
    path = root / f"{kind}-models-v1" / "stable-diffusion" / f"{kind}.safetensors"
    if not path.is_file():
        start = time.perf_counter()
        (write_sd15_checkpoint if kind == "sd15" else write_sdxl_checkpoint)(path, 0)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.1f} s")
    return path


def load_and_first_job(args: dict, steps: int, cfg: float) -> tuple[float, float]:
    import stable_diffusion_cpp

    reset_callbacks()
    start = time.perf_counter()
    model = stable_diffusion_cpp.StableDiffusion(**args, n_threads=1, verbose=False)
    logging.getLogger("stable-diffusion-cpp-python").setLevel(logging.CRITICAL + 10)
    loaded = time.perf_counter() - start
    reset_callbacks()
    try:
        start = time.perf_counter()
        model.generate_image(prompt="a red fox in the snow", width=64, height=64, sample_steps=steps,
                             cfg_scale=cfg, seed=1, sample_method="euler")
        first = time.perf_counter() - start
    finally:
        reset_callbacks()
        model.close()
    return loaded, first


def hash_once(model_dir: Path, rel: str, work: Path) -> tuple[float, float]:
    db_file = work / f"{Path(rel).stem}.db"
    db = open_database(db_file)
    start = time.perf_counter()
    ModelHashes(db, model_dir).get(rel)
    first = time.perf_counter() - start
    db.disconnect()
    db = open_database(db_file)  # what a restarted service sees
    start = time.perf_counter()
    hit = ModelHashes(db, model_dir).cached(rel)
    cached = time.perf_counter() - start
    db.disconnect()
    assert hit is not None
    return first, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdxl", action="store_true", help="also the full-size SDXL checkpoint (6.9 GB)")
    opts = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ddtui-bench-families-") as tmp:
        work = Path(tmp)
        demo_dir = work / "demo"
        demo.write_demo_set(demo_dir)
        components = {"diffusion_model_path": str(demo_dir / demo.IMAGE_MODEL),
                      "llm_path": str(demo_dir / demo.TEXT_ENCODER), "taesd_path": str(demo_dir / demo.TINY_AUTOENCODER)}
        runs = [("flux2demo", demo_dir, demo.IMAGE_MODEL, components, 4, 1.0)]
        for kind in ["sd15"] + (["sdxl"] if opts.sdxl else []):
            path = cached_checkpoint(kind)
            runs.append((kind, path.parents[1], f"stable-diffusion/{path.name}", {"model_path": str(path)}, 2, 7.0))
        for name, model_dir, rel, args, steps, cfg in runs:
            path = model_dir / rel
            path.read_bytes() if path.stat().st_size < 1 << 30 else None  # small files: warm the cache first
            info = detect(path)
            hashed, cached = hash_once(model_dir, rel, work)  # also brings a big file into the page cache
            loaded, first = load_and_first_job(args, steps, cfg)
            size_gb = path.stat().st_size / 1e9
            print(f"{name:10} {info.label:14} {size_gb:5.2f} GB  load {loaded:6.2f} s  first job {first:6.2f} s  "
                  f"hash {hashed:6.2f} s  hash after a restart {cached * 1000:6.2f} ms")
            results.update({f"{name}_load_s": round(loaded, 3), f"{name}_first_job_s": round(first, 3),
                            f"{name}_hash_s": round(hashed, 3), f"{name}_hash_cached_ms": round(cached * 1000, 3), f"{name}_hash_cached_s": round(cached, 6),
                            f"{name}_size_gb": round(size_gb, 3)})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
