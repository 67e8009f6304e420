"""Benchmark: import rate on 1,000 image files made by other tools.

A mix of 512x512 files: AUTOMATIC1111 PNGs (`parameters` chunk), ComfyUI PNGs (`prompt` graph), JPEGs with an
EXIF UserComment, and files with no metadata. Each import reads the metadata (decoding the pixels, which also
catches truncated files), hashes the content, copies the file atomically, records a row and writes a thumbnail.
Baseline: copying the same files with shutil.copyfile.
Run: python bench/import_rate.py [--files N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, PngImagePlugin  # noqa: E402

from ddtui.core.importer import Importer  # noqa: E402
from ddtui.core.queue import JobQueue  # noqa: E402
from ddtui.core.recording import Recorder  # noqa: E402
from ddtui.db.schema import open_database  # noqa: E402

A1111 = ("a castle on a hill, golden hour\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, "
         "Schedule type: Karras, CFG scale: 7, Seed: {seed}, Size: 512x512, Model hash: 0123456789, Model: sdxl")
COMFY = {"3": {"class_type": "KSampler", "inputs": {"seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
                                                    "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["5", 0]}},
         "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
         "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
         "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
         "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}}}


def make_files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    base = Image.linear_gradient("L").resize((512, 512)).convert("RGB")
    files = []
    for i in range(n):
        im = base.copy()
        im.putpixel((i % 512, (i // 512) % 512), (255, i % 256, 0))  # every file different: no duplicates
        kind = i % 4
        if kind == 0:
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", A1111.format(seed=i))
            path = folder / f"a1111-{i}.png"
            im.save(path, pnginfo=info)
        elif kind == 1:
            graph = json.loads(json.dumps(COMFY))
            graph["3"]["inputs"]["seed"] = i
            info = PngImagePlugin.PngInfo()
            info.add_text("prompt", json.dumps(graph))
            path = folder / f"comfy-{i}.png"
            im.save(path, pnginfo=info)
        elif kind == 2:
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.format(seed=i).encode("utf-16-be")
            path = folder / f"exif-{i}.jpg"
            im.save(path, "JPEG", exif=exif, quality=90)
        else:
            path = folder / f"plain-{i}.png"
            im.save(path)
        files.append(path)
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_files(root / "src", args.files)
        db = open_database(root / "history.db")
        importer = Importer(Recorder(db, root / "outputs"), JobQueue(db), root / "thumbs", auto_tag=True)
        t0 = time.perf_counter()
        report = importer.import_paths([root / "src"])
        import_s = time.perf_counter() - t0
        db.disconnect()
        copy_dir = root / "copies"
        copy_dir.mkdir()
        t0 = time.perf_counter()
        for f in files:
            shutil.copyfile(f, copy_dir / f.name)
        copy_s = time.perf_counter() - t0
    n = args.files
    rate, base = n / import_s, n / copy_s
    sources = {}
    for r in report.results:
        sources[r.source or r.status] = sources.get(r.source or r.status, 0) + 1
    print(f"imported {report.count('imported')}/{n} ({', '.join(f'{k} {v}' for k, v in sorted(sources.items()))})")
    print(f"{'figure':<30} {'value':>9} {'baseline':>9} {'ratio':>7}")
    print(f"{'import, images/s':<30} {rate:9.1f} {base:9.1f} {rate / base:7.3f}")
    print(f"RESULT import_per_s={rate:.1f} copy_per_s={base:.1f} imported={report.count('imported')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
