"""Benchmark: an SD batch and an LLM chat on their two workers, side by side versus one after the other.

Owns one measurement, in the same run on the demo models: the wall time of a 2-image SD batch and a
900-token chat (unstreamed) started together, against the sum of each one run alone, median of several
rounds. Below 1.0 the two workers really share the machine's cores. (The test suite checks only that neither
waits for the other; how much that gains depends on the machine and its load, so it is a figure here.)
The last line is parseable:

    RESULT together_s=1.9 one_after_other_s=2.6 sd_alone_s=1.1 llm_alone_s=1.5

Run: ``python bench/parallel.py [--rounds 5] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddtui.catalog import demo  # noqa: E402
from ddtui.catalog.models import Catalog  # noqa: E402
from ddtui.core.worker_client import WorkerClient, spawn_local_worker  # noqa: E402

CHAT = {"model": demo.LLM, "temperature": 0.0, "max_tokens": 900, "ignore_eos": True, "stream": False,
        "options": {"mmproj": demo.MMPROJ, "context_size": 1024}}


def sd_params(model_dir: Path) -> dict:
    sidecar = Catalog.scan(model_dir).find(demo.IMAGE_MODEL).sidecar
    options = {"format": sidecar.format, "components": sidecar.components, "flags": sidecar.flags,
               "prediction": sidecar.prediction, "flow_shift": sidecar.flow_shift}
    return {"mode": "txt2img", "model": demo.IMAGE_MODEL, "options": options, "prompt": "a red fox in the snow",
            "width": 64, "height": 64, "steps": 4, "cfg": 1.0, "sampler": "euler", "scheduler": "discrete",
            "seed": 7, "batch": 2}


async def timed(client: WorkerClient, msg_type: str, content: dict) -> float:
    start = time.perf_counter()
    events = await (await client.start_job(msg_type, content)).collect(300)
    assert events[-1].msg_type == "result", events[-1].content
    return time.perf_counter() - start


async def run(model_dir: Path, run_dir: Path, rounds: int, threads: int) -> dict[str, float]:
    sd_proc = spawn_local_worker("sd", run_dir, model_dir, threads=threads, name="bench-sd")
    llm_proc = spawn_local_worker("llm", run_dir, model_dir, threads=threads, name="bench-llm")
    sd, llm = sd_proc.client(), llm_proc.client()
    counter = iter(range(1_000_000))
    params = sd_params(model_dir)

    def sd_job() -> tuple[str, dict]:
        return "generate", {"job_id": f"sd-{next(counter)}", "params": params}

    def llm_job() -> tuple[str, dict]:
        return "chat", {"job_id": f"chat-{next(counter)}", "params": CHAT,
                        "messages": [{"role": "user", "content": "Describe a red cat."}]}

    try:
        for client in (sd, llm):
            await client.connect()
            await client.hello(timeout=60)
        await timed(sd, *sd_job())  # load both models first
        await timed(llm, *llm_job())
        together, apart, sd_times, llm_times = [], [], [], []
        for _ in range(rounds):
            sd_alone = await timed(sd, *sd_job())
            llm_alone = await timed(llm, *llm_job())
            start = time.perf_counter()
            await asyncio.gather(timed(sd, *sd_job()), timed(llm, *llm_job()))
            together.append(time.perf_counter() - start)
            apart.append(sd_alone + llm_alone)
            sd_times.append(sd_alone)
            llm_times.append(llm_alone)
        return {"together_s": statistics.median(together), "one_after_other_s": statistics.median(apart),
                "sd_alone_s": statistics.median(sd_times), "llm_alone_s": statistics.median(llm_times)}
    finally:
        sd.close()
        llm.close()
        sd_proc.terminate(10)
        llm_proc.terminate(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddtui-par-"))
    try:
        demo.write_demo_set(work / "models", seed=0)
        figures = asyncio.run(run(work / "models", work / "run", args.rounds, args.threads))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = figures["together_s"] / figures["one_after_other_s"]
    print(f"SD batch + chat side by side: {figures['together_s']:.2f} s; one after the other: "
          f"{figures['one_after_other_s']:.2f} s (ratio {ratio:.2f})")
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
