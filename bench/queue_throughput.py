"""Benchmark: queue throughput with trivial jobs, and recording throughput.

1. Dispatch: N thumbnail jobs (the core's own trivial job, 64x64 images) through the real job table and
   dispatch loop of an in-process Core, against making the same thumbnails in a plain loop (baseline).
2. Recording: N finished 64x64 PNGs through `Recorder.record` (metadata chunks, temporary file, fsync,
   rename, one transaction each), against writing the same bytes with a plain open/write (baseline).
Run: python bench/queue_throughput.py [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from ddtui.config import load_config, resolve_home  # noqa: E402
from ddtui.core.service import Core  # noqa: E402
from ddtui.core.thumbnails import make_thumbnail  # noqa: E402


def tiny_png(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (i % 256, (i * 7) % 256, 90)).save(out, "PNG")
    return out.getvalue()


async def dispatch(core: Core, ids: list[int]) -> float:
    t0 = time.perf_counter()
    for gid in ids:
        core.queue.submit("thumbnail", {}, generation_id=gid)
    core.wake()
    while core.queue.count(("queued", "running"), ("thumbnail",)):
        await asyncio.sleep(0.002)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=300)
    args = ap.parse_args()
    n = args.jobs
    with tempfile.TemporaryDirectory() as tmp:
        home = resolve_home(Path(tmp) / "home")
        home.root.mkdir(parents=True)
        home.config_file.write_text(json.dumps({"workers": {"local_sd": False, "local_llm": False},
                                                "queue": {"auto_tag": False}}))
        cfg = load_config(home)
        core = Core(home, cfg, local_workers=False)
        pngs = [tiny_png(i) for i in range(n)]

        # Recording throughput, and its plain-write baseline.
        t0 = time.perf_counter()
        recs = [core.recorder.record(p, {"prompt": f"image {i}", "seed": i}) for i, p in enumerate(pngs)]
        record_s = time.perf_counter() - t0
        plain = Path(tmp) / "plain"
        plain.mkdir()
        t0 = time.perf_counter()
        for i, p in enumerate(pngs):
            with open(plain / f"{i}.png", "wb") as fh:
                fh.write(p)
        plain_s = time.perf_counter() - t0

        # Dispatch throughput, and its direct-loop baseline.
        async def run() -> float:
            await core.start()
            try:
                return await dispatch(core, [r.id for r in recs])
            finally:
                await core.stop()

        dispatch_s = asyncio.run(run())
        t0 = time.perf_counter()
        direct = Path(tmp) / "direct"
        for r in recs:
            make_thumbnail(r.path, direct, r.uuid)
        direct_s = time.perf_counter() - t0

    jobs_per_s = n / dispatch_s
    direct_per_s = n / direct_s
    rec_per_s = n / record_s
    plain_per_s = n / plain_s
    print(f"{'figure':<36} {'value':>10} {'baseline':>10} {'ratio':>7}")
    print(f"{'queue dispatch, trivial jobs/s':<36} {jobs_per_s:10.1f} {direct_per_s:10.1f} "
          f"{jobs_per_s / direct_per_s:7.2f}")
    print(f"{'recording, images/s (64x64)':<36} {rec_per_s:10.1f} {plain_per_s:10.1f} {rec_per_s / plain_per_s:7.2f}")
    print(f"RESULT queue_jobs_per_s={jobs_per_s:.1f} queue_direct_per_s={direct_per_s:.1f} "
          f"record_images_per_s={rec_per_s:.1f} record_plain_per_s={plain_per_s:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
