"""Benchmark: smart-tagging rate with the demo LLM, through the real queue and LLM worker.

N recorded images are tagged by tag jobs (text path: prompt only; and vision path: the image through the
mmproj) dispatched by an in-process Core to a real LLM worker process. Baseline: the same chat completions
made directly in this process with llama-cpp-python on the same model, one thread.
Run: python bench/tagging_rate.py [--images N]
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
from pony.orm import db_session  # noqa: E402

from ddtui.catalog.demo import LLM, MMPROJ, demo_config_patch, write_demo_set  # noqa: E402
from ddtui.config import load_config, resolve_home  # noqa: E402
from ddtui.core.service import Core  # noqa: E402
from ddtui.core.tagging import TAG_SCHEMA, parse_tag_answer, tagging_messages  # noqa: E402


def png(i: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 64), 40 + i % 50).convert("RGB").save(out, "PNG")
    return out.getvalue()


PROMPTS = ["a red fox in snow", "an old lighthouse at dusk, oil painting", "a cozy cabin, watercolor",
           "a robot reading a book", "a castle in the fog, cinematic"]


async def tag_all(core: Core, ids: list[int]) -> float:
    t0 = time.perf_counter()
    for gid in ids:
        core.submit_tag(gid)
    while core.queue.count(("queued", "running"), ("tag",)):
        await asyncio.sleep(0.01)
    return time.perf_counter() - t0


def run(vision: bool, n: int, tmp: Path) -> tuple[float, int]:
    home = resolve_home(tmp / ("vision" if vision else "text"))
    home.root.mkdir(parents=True)
    write_demo_set(home.root / "models")
    patch = demo_config_patch()
    cfg_data = {"llm": {**patch["llm"], "threads": 1, "context_size": 512,
                        "default_mmproj": MMPROJ if vision else ""},
                "workers": {"local_sd": False}, "queue": {"auto_tag": False}}
    home.config_file.write_text(json.dumps(cfg_data))
    if not vision:  # the model's sidecar also names the mmproj; drop it for the text path
        sidecar = home.root / "models" / (LLM + ".json")
        data = json.loads(sidecar.read_text())
        data.pop("mmproj", None)
        sidecar.write_text(json.dumps(data))
    cfg = load_config(home)
    core = Core(home, cfg)
    ids = [core.recorder.record(png(i), {"prompt": PROMPTS[i % len(PROMPTS)], "seed": i}).id for i in range(n)]

    async def go() -> float:
        await core.start()
        try:
            return await tag_all(core, ids)
        finally:
            await core.stop()

    elapsed = asyncio.run(go())
    db = core.db
    with db_session:
        tagged = sum(1 for gid in ids if db.Generation[gid].tagged_at is not None)
    return elapsed, tagged


def direct(n: int, tmp: Path) -> float:
    from llama_cpp import Llama

    models = tmp / "direct-models"
    write_demo_set(models)
    llm = Llama(str(models / LLM), n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False, seed=1)
    t0 = time.perf_counter()
    for i in range(n):
        r = llm.create_chat_completion(messages=tagging_messages("Tag images.", PROMPTS[i % len(PROMPTS)]),
                                       response_format={"type": "json_object", "schema": TAG_SCHEMA},
                                       max_tokens=400, temperature=0.2, seed=i)
        parse_tag_answer(r["choices"][0]["message"]["content"])
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=30)
    args = ap.parse_args()
    n = args.images
    with tempfile.TemporaryDirectory() as tmp:
        text_s, text_ok = run(False, n, Path(tmp))
        vision_s, vision_ok = run(True, n, Path(tmp))
        direct_s = direct(n, Path(tmp))
    text_rate, vision_rate, direct_rate = n / text_s, n / vision_s, n / direct_s
    print(f"{'figure':<34} {'value':>9} {'baseline':>9} {'ratio':>7}")
    print(f"{'tagging, text path, images/s':<34} {text_rate:9.2f} {direct_rate:9.2f} {text_rate / direct_rate:7.2f}")
    print(f"{'tagging, vision path, images/s':<34} {vision_rate:9.2f} {'':>9} {'':>7}")
    print(f"tagged: text {text_ok}/{n}, vision {vision_ok}/{n}")
    print(f"RESULT tag_text_per_s={text_rate:.2f} tag_vision_per_s={vision_rate:.2f} "
          f"tag_direct_per_s={direct_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
