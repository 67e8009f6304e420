"""Integration tests: real SD and LLM worker processes driven through ``WorkerClient`` over signed ipc.

Owns the end-to-end check of ``workers/`` and ``ddtui/core/worker_client.py``: capabilities, loading
and reuse, txt2img batches streamed image by image with progress and previews, img2img/inpaint with
PNG buffers, LoRA tags and their path checks, parameter and path errors, ESRGAN upscaling, the hires
fix, streamed/JSON/vision chat, cancel (queued job, running batch, mid-stream chat), rogue clients on
the same socket, SIGKILL mid-job and a replacement worker, SD and LLM in parallel, and the orphan
exits (parent gone, heartbeats stopped). Demo models are written once per module; one thread per
model (2-core machines).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zmq
from PIL import Image

from ddtui.catalog import demo
from ddtui.catalog.models import Catalog
from ddtui.core.worker_client import HANDSHAKE, WorkerClient, exit_reason, spawn_local_worker
from ddtui.protocol import DELIM, Session, serialize

pytest.importorskip("stable_diffusion_cpp")
pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.slow

SEED = 7
SIZE = 64
JOB_TIMEOUT = 60
SILENCE_S = 0.4  # how long a rogue client waits to be sure nothing comes back
MAX_MESSAGE_MB = 8  # the SD worker's cap, small so the oversized check stays cheap

SCHEMA = {
    "type": "object",
    "properties": {
        # bounded strings/arrays keep even a random model's JSON short enough to close
        "caption": {"type": "string", "maxLength": 16},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
        "rating": {"enum": ["safe", "questionable", "explicit"]},
        "nsfw": {"type": "boolean"},
    },
    "required": ["caption", "tags", "rating", "nsfw"],
    "additionalProperties": False,
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("worker-models")
    demo.write_demo_set(root, seed=0)
    return root


@pytest.fixture(scope="module")
def run_dir():
    # ipc paths are limited to ~107 bytes; pytest's tmp paths can be longer
    path = Path(tempfile.mkdtemp(prefix="ddtui-w-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def image_options(models) -> dict:
    sidecar = Catalog.scan(models).find(demo.IMAGE_MODEL).sidecar
    return {"format": sidecar.format, "components": sidecar.components, "flags": sidecar.flags,
            "prediction": sidecar.prediction, "flow_shift": sidecar.flow_shift}


@pytest.fixture(scope="module")
def sd_worker(models, run_dir):
    worker = spawn_local_worker("sd", run_dir, models, threads=1, name="sd",
                                extra_args=["--max-message-mb", str(MAX_MESSAGE_MB)])
    yield worker
    assert worker.terminate(10) == 0  # SIGTERM is a clean exit


@pytest.fixture(scope="module")
def llm_worker(models, run_dir):
    worker = spawn_local_worker("llm", run_dir, models, threads=1, name="llm")
    yield worker
    assert worker.terminate(10) == 0


@pytest.fixture
async def sd(sd_worker):
    client = sd_worker.client()
    await client.connect()
    await client.hello(timeout=30)
    yield client
    client.close()


@pytest.fixture
async def llm(llm_worker):
    client = llm_worker.client()
    await client.connect()
    await client.hello(timeout=30)
    yield client
    client.close()


# --------------------------------------------------------------------------- helpers


def gen_params(options: dict, **overrides) -> dict:
    params = {
        "mode": "txt2img", "model": demo.IMAGE_MODEL, "options": options, "prompt": "a red fox in the snow",
        "width": SIZE, "height": SIZE, "steps": 4, "cfg": 1.0, "sampler": "euler", "scheduler": "discrete",
        "seed": SEED,
    }
    params.update(overrides)
    return params


async def run_job(client: WorkerClient, msg_type: str, content: dict, buffers=(), timeout=JOB_TIMEOUT) -> list:
    job = await client.start_job(msg_type, content, buffers)
    return await job.collect(timeout)


_job_counter = iter(range(1_000_000))


def job_id(prefix: str = "job") -> str:
    return f"{prefix}-{next(_job_counter)}"


async def generate(client: WorkerClient, options: dict, buffers=(), **overrides) -> list:
    return await run_job(client, "generate", {"job_id": job_id("gen"), "params": gen_params(options, **overrides)},
                         buffers)


def of_type(events, msg_type: str) -> list:
    return [e for e in events if e.msg_type == msg_type]


def final(events):
    assert events and events[-1].msg_type in ("result", "error"), [e.msg_type for e in events]
    return events[-1]


def done(events):
    last = final(events)
    assert last.msg_type == "result", last.content
    return last


def pil(buffer: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(buffer))
    assert image.format == "PNG"
    return image


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def first_image(client, options, **overrides) -> Image.Image:
    events = await generate(client, options, **overrides)
    done(events)
    return pil(of_type(events, "image")[0].buffers[0])


def assert_error(events, reason: str) -> None:
    last = final(events)
    assert last.msg_type == "error", last.content
    assert last.content["reason"] == reason, last.content


# --------------------------------------------------------------------------- hello / load


async def test_hello_reports_capabilities(sd, llm, sd_worker, llm_worker):
    hello = (await sd.hello()).content
    assert hello["kind"] == "sd" and hello["name"] == "sd" and hello["pid"] == sd_worker.pid
    assert {"txt2img", "img2img", "inpaint", "upscale", "hires", "lora"} <= set(hello["capabilities"])
    assert hello["backend"] == "cpu" and hello["device"]
    assert hello["vram_total"] >= 0 and hello["vram_free"] >= 0
    assert hello["versions"]["stable_diffusion_cpp"] == "0.4.7" and hello["versions"]["python"]
    assert set(hello["rejections"]) >= {"bad_signature", "unsigned", "replayed", "oversized", "malformed"}
    chat = (await llm.hello()).content
    assert chat["kind"] == "llm" and chat["pid"] == llm_worker.pid
    assert {"chat", "json_schema", "vision", "stream"} <= set(chat["capabilities"])
    assert chat["versions"]["llama_cpp"] == "0.3.36"
    state = (await sd.status()).content
    assert state["state"] in ("idle", "busy", "loading") and "rejections" in state


async def test_txt2img_batch_streams_images_progress_and_previews(sd, image_options):
    loaded = await run_job(sd, "load_model", {"job_id": job_id("load"), "model": demo.IMAGE_MODEL,
                                              "options": image_options})
    info = done(loaded).content["info"]
    assert done(loaded).content["status"] == "loaded" and info["signature"].startswith(demo.IMAGE_MODEL)

    jid = job_id("batch")
    job = await sd.start_job("generate", {"job_id": jid, "params": gen_params(
        image_options, batch=2, preview_every=1, preview_size=32)})
    events = []
    rtts = []
    async for event in job:
        events.append(event)
        if event.msg_type == "progress" and event.content["phase"] == "sampling" and len(rtts) < 3:
            rtts.append(await sd.heartbeat())  # answered by the I/O thread while the job thread samples
            meta = sd.last_heartbeat.metadata
            assert meta["busy_job"] == jid and meta["since_activity"] < 5
    result = done(events)
    assert result.content["job_id"] == jid and result.content["status"] == "done"
    assert result.content["info"]["images"] == 2
    assert result.content["info"]["loaded"] is False  # load_model above already made this context

    images = of_type(events, "image")
    assert [i.content["index"] for i in images] == [0, 1]
    assert [i.content["info"]["seed"] for i in images] == [SEED, SEED + 1]
    # each image is sent the moment it exists: the first one comes before the second image's sampling
    first_at = events.index(images[0])
    assert any(e.msg_type == "progress" and e.content["phase"] == "sampling" for e in events[first_at:])
    assert all(e.parent_id == job.msg_id for e in events)
    pictures = [pil(i.buffers[0]) for i in images]
    assert all(p.size == (SIZE, SIZE) for p in pictures)
    assert rgb(pictures[0]).std() > 10 and np.abs(rgb(pictures[0]) - rgb(pictures[1])).mean() > 3

    sampling = [e.content for e in events if e.msg_type == "progress" and e.content["phase"] == "sampling"]
    assert sampling and all(p["steps"] == 4 for p in sampling) and max(p["step"] for p in sampling) == 4
    previews = of_type(events, "preview")
    assert len(previews) >= 2 and all(pil(p.buffers[0]).size[0] <= 32 for p in previews)
    assert rtts and max(rtts) < 0.5

    # a second job on the same model reuses the context: no loading phase, reported as not loaded
    again = await generate(sd, image_options)
    assert done(again).content["info"]["loaded"] is False
    assert not any(e.msg_type == "progress" and e.content["phase"] == "loading" for e in again)
    # same seed, same picture
    assert np.array_equal(rgb(pil(of_type(again, "image")[0].buffers[0])), rgb(pictures[0]))
    reuse = await run_job(sd, "load_model", {"model": demo.IMAGE_MODEL, "options": image_options})
    assert done(reuse).content["info"]["reused"] is True


# --------------------------------------------------------------------------- img2img / inpaint / lora


async def test_img2img_and_odd_size(sd, image_options):
    source = await first_image(sd, image_options, seed=21)
    solid = Image.new("RGB", (SIZE, SIZE), (20, 200, 40))

    async def img2img(init: Image.Image, strength: float) -> np.ndarray:
        events = await generate(sd, image_options, [png_bytes(init)], mode="img2img", init_buffer=0,
                                strength=strength, seed=22)
        image = pil(of_type(events, "image")[0].buffers[0])
        assert image.size == (SIZE, SIZE)
        return rgb(image)

    # the init image shapes the result, and less so the more strength (noise) is applied
    light = np.abs(await img2img(source, 0.3) - await img2img(solid, 0.3)).mean()
    heavy = np.abs(await img2img(source, 0.95) - await img2img(solid, 0.95)).mean()
    assert light > 1 and light > heavy, (light, heavy)
    # 72 is a multiple of 8 but not of 16: generated padded, cropped back to the requested size
    odd = await generate(sd, image_options, [png_bytes(source)], mode="img2img", init_buffer=0, strength=0.5,
                         width=72, height=SIZE)
    image = of_type(odd, "image")[0]
    assert pil(image.buffers[0]).size == (72, SIZE) and image.content["info"]["width"] == 72


async def test_inpaint_changes_masked_area_more(sd, image_options):
    source = png_bytes(await first_image(sd, image_options, seed=31))

    async def inpaint(mask: Image.Image) -> np.ndarray:
        events = await generate(sd, image_options, [source, png_bytes(mask)], mode="inpaint", init_buffer=0,
                                mask_buffer=1, strength=1.0, seed=32)
        return rgb(pil(of_type(events, "image")[0].buffers[0]))

    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE))  # white = repaint the left half
    # the baseline is a mask that keeps everything: the synthetic tiny autoencoder's round trip is lossy,
    # so "unchanged" means "what the kept pixels become", not the source pixels themselves
    diff = np.abs(await inpaint(mask) - await inpaint(Image.new("L", (SIZE, SIZE), 0))).mean(axis=2)
    inside, outside = diff[:, : SIZE // 2].mean(), diff[:, SIZE // 2 :].mean()
    assert inside > 2 * outside, (inside, outside)
    missing = await generate(sd, image_options, [source], mode="inpaint", init_buffer=0, mask_buffer=3)
    assert_error(missing, "bad_params")


async def test_lora_tag_and_escaping_names(sd, image_options):
    plain = rgb(await first_image(sd, image_options, seed=51))
    tagged = await generate(sd, image_options, prompt="a red fox in the snow <lora:demo-lora:0.8>", seed=51)
    image = of_type(tagged, "image")[0]
    assert image.content["info"]["loras"][0]["name"] == "demo-lora"
    assert np.abs(rgb(pil(image.buffers[0])) - plain).mean() > 3
    for bad in ("<lora:../x:1>", "<lora:/etc/passwd:1>", "<lora:sub/demo-lora:1>", "<lora:nope:1>",
                "<lora:demo-lora:lots>"):
        events = await generate(sd, image_options, prompt=f"fox {bad}")
        assert_error(events, "bad_lora")
        assert not of_type(events, "image")
    # the worker keeps serving, and without the tag the base weights are back
    after = rgb(await first_image(sd, image_options, seed=51))
    assert np.abs(after - plain).mean() < 1


# --------------------------------------------------------------------------- errors


async def test_bad_parameters_and_paths(sd, models, image_options, tmp_path):
    assert_error(await generate(sd, image_options, width=100), "bad_params")  # not a multiple of 8
    assert_error(await generate(sd, image_options, height=32), "bad_params")  # below 64
    assert_error(await generate(sd, image_options, sampler="warp-drive"), "bad_params")

    async def load(model, options=None):
        return await run_job(sd, "load_model", {"job_id": job_id("load"), "model": model, "options": options})

    assert_error(await load("stable-diffusion/nope.safetensors", image_options), "missing_file")
    assert_error(await load("../outside.safetensors", image_options), "bad_path")
    assert_error(await load("/etc/hostname", image_options), "bad_path")
    escaping = dict(image_options, components={"llm": "../../etc/hostname", "taesd": demo.TINY_AUTOENCODER})
    assert_error(await load(demo.IMAGE_MODEL, escaping), "bad_path")
    gone = dict(image_options, components={"llm": "text-encoder/gone.safetensors"})
    assert_error(await load(demo.IMAGE_MODEL, gone), "missing_file")
    # a symlink inside the model folder that points outside is refused too
    target = tmp_path / "elsewhere.safetensors"
    target.write_bytes(b"\0" * 16)
    link = models / "stable-diffusion" / "link-out.safetensors"
    link.symlink_to(target)
    try:
        assert_error(await load("stable-diffusion/link-out.safetensors", image_options), "bad_path")
    finally:
        link.unlink()
    assert_error(await run_job(sd, "chat", {"job_id": job_id(), "messages": []}), "unsupported")
    # after all that the worker still serves, and a job without options reads the sidecar itself
    events = await generate(sd, None, steps=2)
    assert pil(of_type(events, "image")[0].buffers[0]).size == (SIZE, SIZE)


# --------------------------------------------------------------------------- upscale / hires


async def test_upscale_doubles_size(sd, image_options):
    source = await first_image(sd, image_options, seed=41)
    events = await run_job(sd, "upscale", {"job_id": job_id("up"), "params": {"upscaler": demo.ESRGAN}},
                           [png_bytes(source)])
    done(events)
    image = of_type(events, "image")[0]
    up = pil(image.buffers[0])
    assert up.size == (2 * SIZE, 2 * SIZE) and image.content["info"]["width"] == 2 * SIZE
    # the synthetic RRDBNet is near-identity: shrunk back it resembles the source
    assert np.abs(rgb(up.resize((SIZE, SIZE), Image.BOX)) - rgb(source)).mean() < 25
    assert_error(await run_job(sd, "upscale", {"job_id": job_id(), "params": {"upscaler": "../x"}},
                               [png_bytes(source)]), "bad_path")


async def test_hires_fix_sizes(sd, image_options):
    esrgan = await generate(sd, image_options, steps=2, hires={
        "enabled": True, "scale": 2, "steps": 2, "strength": 0.5, "upscaler": demo.ESRGAN})
    image = of_type(esrgan, "image")[0]
    assert pil(image.buffers[0]).size == (2 * SIZE, 2 * SIZE)
    assert image.content["info"]["hires"]["upscaler"] == demo.ESRGAN
    phases = {e.content["phase"] for e in of_type(esrgan, "progress")}
    assert {"sampling", "upscaling", "hires"} <= phases
    lanczos = await generate(sd, image_options, steps=2, hires={
        "enabled": True, "width": 96, "height": 80, "steps": 2, "strength": 0.4, "upscaler": ""})
    assert pil(of_type(lanczos, "image")[0].buffers[0]).size == (96, 80)


# --------------------------------------------------------------------------- cancel


async def test_cancel_running_batch_and_queued_job(sd, image_options):
    await first_image(sd, image_options, steps=1)  # model loaded, so the batch starts sampling at once
    batch = await sd.start_job("generate", {"job_id": job_id("long"), "params": gen_params(image_options, batch=4)})
    queued = await sd.start_job("generate", {"job_id": job_id("queued"), "params": gen_params(image_options)})
    events = []
    sent = False
    async for event in batch:
        events.append(event)
        if event.msg_type == "progress" and event.content["phase"] == "sampling" and not sent:
            sent = True
            await batch.cancel()
            await queued.cancel()
    result = done(events)
    assert result.content["status"] == "cancelled"
    assert 1 <= len(of_type(events, "image")) < 4  # the image being sampled still finishes
    dropped = await queued.collect(5)
    assert [e.msg_type for e in dropped] == ["result"] and dropped[0].content["status"] == "cancelled"
    assert dropped[0].content["job_id"] == queued.job_id


# --------------------------------------------------------------------------- chat


def chat_content(text: str = "Describe a red cat in three words.", **params) -> dict:
    params.setdefault("model", demo.LLM)
    params.setdefault("temperature", 0.0)
    return {"job_id": job_id("chat"), "messages": [{"role": "user", "content": text}], "params": params}


async def test_chat_streams_tokens_then_result(llm):
    events = await run_job(llm, "chat", chat_content(max_tokens=24))
    result = done(events)
    tokens = of_type(events, "token")
    assert tokens and [t.content["index"] for t in tokens] == list(range(len(tokens)))
    assert "".join(t.content["text"] for t in tokens) == result.content["text"]
    assert 1 <= result.content["info"]["tokens"] <= 24
    quiet = await run_job(llm, "chat", chat_content(max_tokens=24, stream=False))
    assert not of_type(quiet, "token") and done(quiet).content["text"] == result.content["text"]

    # the plain dispatch paths: request() + events(), and an on_event callback
    msg_id = await llm.request("chat", chat_content(max_tokens=8))
    seen = []
    async for event in llm.events():
        assert event.parent_id == msg_id
        seen.append(event.msg_type)
        if event.msg_type == "result":
            break
    assert "token" in seen
    got: list = []
    finished = asyncio.Event()

    def on_event(msg) -> None:
        got.append(msg)
        if msg.msg_type in ("result", "error"):
            finished.set()

    other = WorkerClient(llm.endpoint, key=llm.key, on_event=on_event)
    await other.connect()
    try:
        await other.request("chat", chat_content(max_tokens=8))
        await asyncio.wait_for(finished.wait(), JOB_TIMEOUT)
        assert got[-1].msg_type == "result" and any(m.msg_type == "token" for m in got)
    finally:
        other.close()


async def test_chat_json_schema(llm):
    for seed in (0, 1):
        events = await run_job(llm, "chat", chat_content("Tag this image as JSON.", max_tokens=320,
                                                          temperature=0.8, seed=seed, json_schema=SCHEMA))
        result = done(events)
        obj = result.content["info"]["json"]
        assert set(obj) == set(SCHEMA["required"]) and obj["rating"] in SCHEMA["properties"]["rating"]["enum"]
        assert isinstance(obj["nsfw"], bool) and isinstance(obj["tags"], list)


async def test_vision_chat_with_png_data_uri(llm):
    img = Image.new("RGB", (24, 40), (200, 30, 30))
    img.paste((20, 40, 220), (0, 0, 12, 20))
    uri = "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode()
    content = chat_content(max_tokens=8)
    text_only = done(await run_job(llm, "chat", content)).content["info"]["prompt_tokens"]
    content = chat_content(max_tokens=8)
    content["messages"][0]["content"] = [{"type": "text", "text": "Describe a red cat in three words."},
                                         {"type": "image_url", "image_url": {"url": uri}}]
    result = done(await run_job(llm, "chat", content))
    assert result.content["status"] == "done"
    assert result.content["info"]["prompt_tokens"] > text_only  # the image became embeddings
    content["job_id"] = job_id("remote")
    content["messages"][0]["content"][1]["image_url"]["url"] = "http://127.0.0.1:9/cat.png"
    assert_error(await run_job(llm, "chat", content), "bad_params")  # never fetch URLs for a client


async def test_cancel_chat_mid_stream(llm):
    job = await llm.start_job("chat", chat_content(max_tokens=400, ignore_eos=True))
    events = []
    async for event in job:
        events.append(event)
        if event.msg_type == "token" and event.content["index"] == 2:
            await job.cancel()
    result = done(events)
    assert result.content["status"] == "cancelled"
    assert result.content["info"]["tokens"] < 400 and len(of_type(events, "token")) < 400


# --------------------------------------------------------------------------- security


def _dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    return sock


def _silent(sock: zmq.Socket) -> bool:
    return not sock.poll(int(SILENCE_S * 1000))


async def test_rogue_clients_get_nothing_and_are_counted(sd, sd_worker):
    before = (await sd.hello()).content["rejections"]
    ctx = zmq.Context()
    try:
        rogue = _dealer(ctx, sd_worker.endpoint)
        wrong = Session(Session.new_key())
        rogue.send_multipart(wrong.serialize(wrong.msg("hello_request", {})))  # signed with another key
        honest = Session(sd_worker.key)
        frames = honest.serialize(honest.msg("heartbeat", {"seq": 1}))
        unsigned = list(frames)
        unsigned[1] = b""
        rogue.send_multipart(unsigned)  # no signature
        rogue.send_multipart([DELIM, b"00", b"{}"])  # too few frames
        rogue.send_multipart([HANDSHAKE, Session.new_key()])  # a session key is only taken over CURVE
        big = honest.msg("heartbeat", {"seq": 2}, buffers=[b"\0" * (3 << 20)] * 3)  # frames fit, sum does not
        rogue.send_multipart(serialize(big, key=sd_worker.key))
        # a captured, correctly signed request replayed by someone else
        witness = _dealer(ctx, sd_worker.endpoint)
        witness.send_multipart(frames)
        assert witness.poll(5000), "the original request is answered"
        rogue.send_multipart(frames)
        assert _silent(rogue)
        after = (await sd.hello()).content["rejections"]
    finally:
        ctx.destroy(linger=0)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["bad_signature"] == 1
    assert delta["unsigned"] == 1
    assert delta["malformed"] == 1
    assert delta["handshake_refused"] == 1
    assert delta["oversized"] == 1
    assert delta["replayed"] == 1
    assert await sd.heartbeat() < 0.5  # the good client keeps working


# --------------------------------------------------------------------------- crashes and lifecycle


async def test_sigkill_mid_job_and_a_new_worker(models, run_dir, image_options):
    worker = spawn_local_worker("sd", run_dir, models, threads=1, name="sdkill")
    try:
        client = worker.client()
        await client.connect()
        await client.hello(timeout=30)
        job = await client.start_job("generate", {"job_id": "doomed", "params": gen_params(image_options, batch=4)})
        async for event in job:
            if event.msg_type == "progress" and event.content["phase"] == "sampling":
                os.kill(worker.pid, signal.SIGKILL)
                break
        with pytest.raises(TimeoutError):
            await client.heartbeat(timeout=1.0)
        assert worker.process.wait(5) == -signal.SIGKILL and not worker.alive
        client.close()
    finally:
        worker.kill()
    # the replacement binds the same (stale) socket path with a new key and serves the next job
    fresh = spawn_local_worker("sd", run_dir, models, threads=1, name="sdkill")
    try:
        assert fresh.key != worker.key
        client = fresh.client()
        await client.connect()
        events = await generate(client, image_options, steps=2)
        result = done(events)
        assert result.content["info"]["loaded"] is True and result.content["info"]["load_seconds"] > 0
        assert (await client.shutdown("test")).msg_type == "ack"
        client.close()
        assert fresh.process.wait(10) == 0
    finally:
        fresh.kill()


async def test_an_exit_is_reported_at_once_with_how_it_ended(models, run_dir):
    worker = spawn_local_worker("llm", run_dir, models, threads=1, name="exitwatch")
    try:
        exited = asyncio.ensure_future(worker.wait_exit())  # the kernel's notice, no polling
        client = worker.client()
        await client.connect()
        await client.hello(timeout=30)
        assert not exited.done()
        os.kill(worker.pid, signal.SIGKILL)
        assert exit_reason(await asyncio.wait_for(exited, 30)) == "killed by SIGKILL"
        assert worker.returncode == -signal.SIGKILL  # reaped by wait_exit
        client.close()
    finally:
        worker.kill()
    assert exit_reason(0) == "exited with code 0"
    assert exit_reason(3) == "exited with code 3 (its socket is in use by another process)"


async def test_settle_hands_on_everything_a_dead_worker_sent(models, run_dir):
    # The news of a death must not overtake the worker's last messages (an image it finished, a result).
    worker = spawn_local_worker("llm", run_dir, models, threads=1, name="settle")
    got: list = []
    client = WorkerClient(worker.endpoint, key=worker.key, on_event=got.append, watch_peer=True)
    try:
        await client.connect()
        await client.hello(timeout=30)
        for seq in range(100):
            await client.request("heartbeat", {"seq": seq})  # sends without yielding to the loop
        await client.request("shutdown", {"reason": "test"})
        assert worker.process.wait(30) == 0  # blocks this loop: the replies arrive but nothing reads them
        assert got == []
        assert await client.settle(timeout=30) is True  # the closed connection was seen
        assert [m.content["seq"] for m in got if m.msg_type == "heartbeat"] == list(range(100))
        assert got[-1].msg_type == "ack"
    finally:
        client.close()
        worker.kill()


async def test_sigterm_mid_batch_finishes_the_image_and_exits_cleanly(models, run_dir, image_options):
    worker = spawn_local_worker("sd", run_dir, models, threads=1, name="sdterm")
    try:
        client = worker.client()
        await client.connect()
        job = await client.start_job("generate", {"job_id": "stopped", "params": gen_params(image_options, batch=4)})
        queued = await client.start_job("generate", {"job_id": "never", "params": gen_params(image_options)})
        events = []
        async for event in job:
            events.append(event)
            if event.msg_type == "progress" and event.content["phase"] == "sampling" and worker.alive:
                worker.process.send_signal(signal.SIGTERM)
        result = done(events)
        assert result.content["status"] == "cancelled" and 1 <= len(of_type(events, "image")) < 4
        assert (await queued.collect(5))[-1].content["status"] == "cancelled"
        assert worker.process.wait(10) == 0  # model freed, sockets closed, no crash at exit
        client.close()
    finally:
        worker.kill()


def test_flat_image_detector():
    from workers.sd_worker import is_flat

    grey = Image.new("RGB", (256, 256), (128, 128, 128))
    assert is_flat(grey)
    speck = grey.copy()
    speck.paste((0, 0, 0), (0, 0, 8, 8))  # 0.1% of pixels differ: still a failed decode
    assert is_flat(speck)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    assert not is_flat(noise)
    half = grey.copy()
    half.paste((250, 10, 10), (0, 0, 128, 256))
    assert not is_flat(half)


async def until_first(job, msg_type: str) -> list:
    """A job's events up to and including its first `msg_type` one (the rest stay queued on the job)."""
    events = []
    async for event in job:
        events.append(event)
        if event.msg_type == msg_type:
            return events
    raise AssertionError(f"the job ended without a {msg_type}: {[e.msg_type for e in events]}")


async def while_held(worker, work):
    """Await `work` while `worker` is frozen (SIGSTOP), in whatever it was doing; it resumes after."""
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        return await work
    finally:
        os.kill(worker.pid, signal.SIGCONT)


async def test_sd_and_llm_jobs_run_in_parallel(sd, llm, sd_worker, llm_worker, image_options):
    # Neither worker waits for the other: an SD batch runs to its end while a chat is held (SIGSTOP) in the
    # middle of its stream, and a chat runs to its end while an SD batch is held after its first image. How
    # much faster the two run side by side than one after the other is a figure: bench/parallel.py.
    await first_image(sd, image_options, steps=1)
    chat = await llm.start_job("chat", chat_content(max_tokens=200, ignore_eos=True))
    streamed = await until_first(chat, "token")
    assert len(of_type(await while_held(llm_worker, generate(sd, image_options, batch=2)), "image")) == 2
    result = done(streamed + await chat.collect(JOB_TIMEOUT))
    assert result.content["info"]["tokens"] == 200  # it was mid-stream all along, and finished after

    batch = await sd.start_job("generate", {"job_id": job_id("held"), "params": gen_params(image_options, batch=3)})
    events = await until_first(batch, "image")
    chat_events = await while_held(sd_worker, run_job(llm, "chat", chat_content(max_tokens=8)))
    assert done(chat_events).content["info"]["tokens"] >= 1
    events += await batch.collect(JOB_TIMEOUT)
    assert done(events) and len(of_type(events, "image")) == 3


async def test_worker_exits_when_parent_or_heartbeats_are_gone(models, run_dir):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    orphan = spawn_local_worker("llm", run_dir, models, threads=1, name="orphan",
                                extra_args=["--parent-pid", str(parent.pid)])
    silent = spawn_local_worker("llm", run_dir, models, threads=1, name="silent",
                                extra_args=["--heartbeat-timeout", "1.5"])
    try:
        # the short-lived parent is left unreaped (a zombie) on purpose: that must count as gone
        assert orphan.process.wait(15) == 0
        assert exit_reason(silent.process.wait(15)) == "exited with code 4 (no heartbeat reached it in time)"
        assert not Path(orphan.endpoint[len("ipc://"):]).exists()  # the socket file is cleaned up
    finally:
        parent.wait()
        orphan.kill()
        silent.kill()
