"""Benchmark: what running stable-diffusion.cpp in a worker process costs over calling it in-process.

Owns one measurement, all in the same run on the same demo model, seed and thread count: a 64x64
generation sent to a local ipc worker (request -> result, the PNG received) versus the same
``generate_image`` call made directly in this process, interleaved, median of several rounds, as a
ratio (goal: within 3%); plus the first job on a fresh worker (with the model load) versus the second
(context reused), and the heartbeat round trip idle and during a job. The last line is parseable:

    RESULT worker_overhead_ratio=1.012 second_job_s=0.53 first_job_s=1.41 ...

Run: ``python bench/overhead.py [--rounds 9] [--threads 1] [--model-dir DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddtui.catalog import demo  # noqa: E402
from ddtui.catalog.models import Catalog, resolve_inside  # noqa: E402
from ddtui.catalog.synthetic.sdcpp_compat import reset_callbacks  # noqa: E402
from ddtui.core.worker_client import WorkerClient, spawn_local_worker  # noqa: E402

SEED = 42
PARAMS = {"width": 64, "height": 64, "steps": 4, "cfg": 1.0, "sampler": "euler", "scheduler": "discrete",
          "prompt": "a red fox in the snow", "seed": SEED}


def direct_model(model_dir: Path, options: dict, threads: int):
    """The same context the worker builds, made in this process."""
    import stable_diffusion_cpp

    from ddtui.catalog.models import COMPONENTS

    kwargs = {"diffusion_model_path" if options["format"] == "diffusion_model" else "model_path":
              str(resolve_inside(model_dir, demo.IMAGE_MODEL))}
    for name, rel in options["components"].items():
        kwargs[COMPONENTS[name]] = str(resolve_inside(model_dir, rel))
    reset_callbacks()
    try:
        return stable_diffusion_cpp.StableDiffusion(**kwargs, lora_model_dir=str(model_dir / "lora"),
                                                    n_threads=threads, verbose=False)
    finally:
        reset_callbacks()
        # verbose=False prints ggml's DEBUG lines (the binding inverts levels); silence its logger instead
        logging.getLogger("stable-diffusion-cpp-python").setLevel(logging.CRITICAL + 10)


def direct_generate(model) -> float:
    start = time.perf_counter()
    try:
        images = model.generate_image(
            prompt=PARAMS["prompt"], width=PARAMS["width"], height=PARAMS["height"], sample_steps=PARAMS["steps"],
            cfg_scale=PARAMS["cfg"], sample_method=PARAMS["sampler"], scheduler=PARAMS["scheduler"], seed=SEED,
        )
    finally:
        reset_callbacks()
    assert images and images[0].size == (64, 64)
    return time.perf_counter() - start


async def worker_generate(client: WorkerClient, options: dict, job_id: str) -> float:
    start = time.perf_counter()
    job = await client.start_job("generate", {"job_id": job_id, "params": {
        "model": demo.IMAGE_MODEL, "options": options, **PARAMS}})
    events = await job.collect(120)
    elapsed = time.perf_counter() - start
    if events[-1].msg_type != "result" or events[-1].content["status"] != "done":
        raise RuntimeError(f"worker job failed: {events[-1].content}")
    return elapsed


async def heartbeat_rtts(client: WorkerClient, n: int) -> list[float]:
    return [await client.heartbeat() for _ in range(n)]


async def run(args: argparse.Namespace, model_dir: Path, run_dir: Path) -> dict[str, float]:
    sidecar = Catalog.scan(model_dir).find(demo.IMAGE_MODEL).sidecar
    options = {"format": sidecar.format, "components": sidecar.components, "flags": sidecar.flags}
    worker = spawn_local_worker("sd", run_dir, model_dir, threads=args.threads, name="bench",
                                log_file=run_dir / "worker.log")
    client = worker.client()
    await client.connect()
    try:
        await client.hello(timeout=60)
        first = await worker_generate(client, options, "first")
        second = await worker_generate(client, options, "second")
        model = direct_model(model_dir, options, args.threads)
        direct_generate(model)  # warm-up: first-call allocations on this side too
        via_worker: list[float] = []
        direct: list[float] = []
        for i in range(args.rounds):
            # interleaved, alternating who goes first, so drift hits both sides alike
            if i % 2 == 0:
                via_worker.append(await worker_generate(client, options, f"round-{i}"))
                direct.append(direct_generate(model))
            else:
                direct.append(direct_generate(model))
                via_worker.append(await worker_generate(client, options, f"round-{i}"))
        model.close()
        reset_callbacks()
        idle = await heartbeat_rtts(client, 50)
        job = asyncio.ensure_future(worker_generate(client, options, "busy"))
        await asyncio.sleep(0.05)
        busy = await heartbeat_rtts(client, 20)
        await job
        await client.shutdown("bench done")
    finally:
        client.close()
        worker.terminate(10)
    w, d = statistics.median(via_worker), statistics.median(direct)
    print(f"direct in-process : median {d * 1000:8.1f} ms  ({', '.join(f'{x * 1000:.0f}' for x in direct)})")
    print(f"through the worker: median {w * 1000:8.1f} ms  ({', '.join(f'{x * 1000:.0f}' for x in via_worker)})")
    print(f"overhead          : {(w / d - 1) * 100:+.2f} %  ({(w - d) * 1000:+.1f} ms per image)")
    print(f"first job (load)  : {first:.3f} s   second job (reuse): {second:.3f} s")
    print(f"heartbeat RTT     : idle median {statistics.median(idle) * 1000:.2f} ms, "
          f"during a job median {statistics.median(busy) * 1000:.2f} ms (max {max(busy) * 1000:.2f} ms)")
    return {"worker_overhead_ratio": w / d, "second_job_s": second, "first_job_s": first,
            "direct_s": d, "worker_s": w, "heartbeat_idle_ms": statistics.median(idle) * 1000,
            "heartbeat_busy_ms": statistics.median(busy) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-dir", help="a model folder with the demo set (default: a fresh temporary one)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ddtui-bench-"))
    try:
        model_dir = Path(args.model_dir) if args.model_dir else tmp / "models"
        if not args.model_dir:
            demo.write_demo_set(model_dir, seed=0)
        result = asyncio.run(run(args, model_dir, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("RESULT " + " ".join(f"{k}={v:.4f}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
