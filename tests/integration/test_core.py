"""The core service end to end through the real CLI: generation, tagging, upscaling, cancelling, crash recovery.

Each test runs a real `ddtui serve` with real worker processes on the demo models.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from pony.orm import db_session, select

from ddtui.config import resolve_home
from ddtui.core.client import CoreClient
from ddtui.db.schema import open_database
from tests.conftest import Service, ddtui, make_home

# Heartbeats an hour apart: a worker held with SIGSTOP is not taken for hung, and only its exit notice can explain
# a restart.
NO_HEARTBEATS = {"heartbeat_interval": 3600.0, "heartbeat_timeout": 3600.0}


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def history(home):
    db = open_database(home / "history.db")
    try:
        with db_session:
            return [(g.id, g.seed, g.kind, g.parent.id if g.parent else None, g.tagged_at is not None)
                    for g in select(g for g in db.Generation).order_by(lambda g: g.id)]
    finally:
        db.disconnect()


def jobs(home):
    db = open_database(home / "history.db")
    try:
        with db_session:
            return {j.id: (j.type, j.state, j.attempts, dict(j.result)) for j in db.Job.select()}
    finally:
        db.disconnect()


def wait_for(predicate, timeout=60.0, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def generate_until_first_image(home: Path, *args: str) -> int:
    """Queue `ddtui generate ARGS --no-wait` and return its job id once its first image is recorded (the
    service's own event, not a poll of the database)."""
    async def go() -> int:
        async with CoreClient(resolve_home(home)) as client:
            await client.subscribe()  # before the job exists: none of its events can be missed
            r = await asyncio.to_thread(ddtui, home, "generate", *args, "--no-wait", "--json")
            assert r.returncode == 0, r.stderr
            job_id = json.loads(r.stdout)["job_id"]
            while True:
                event, _ = await asyncio.wait_for(client.events.get(), 120)
                if event["job_id"] == str(job_id) and event["event"] == "image":
                    return job_id
                assert not (event["job_id"] == str(job_id) and event["event"] in ("done", "failed")), event

    return asyncio.run(go())


def freeze_mid_job(svc: Service, job_id: int, pid: int, batch: int) -> None:
    """SIGSTOP the worker and check the job really is half done: it cannot finish while the worker is frozen."""
    os.kill(pid, signal.SIGSTOP)
    assert job_id in svc.status()["running"]
    assert len(jobs(svc.home)[job_id][3].get("generation_ids", [])) < batch


def test_generate_batch_tag_and_show(service):
    home = service.home
    r = ddtui(home, "generate", "a red fox in snow", "-n", "2", "--seed", "40", "--json")
    assert r.returncode == 0, r.stderr
    events = lines(r.stdout)
    images = [e for e in events if e["event"] == "image"]
    assert [e["seed"] for e in images] == [40, 41]
    assert events[-1]["event"] == "done" and events[-1]["generation_ids"] == [i["generation_id"] for i in images]
    for img in images:
        assert (home / "outputs").exists() and img["width"] == 64 and img["height"] == 64
    r = ddtui(home, "history", "search", "fox", "--json")
    assert r.returncode == 0 and len(lines(r.stdout)) == 2
    # New images were queued for tagging; wait for the LLM worker to tag both (vision path: mmproj configured).
    wait_for(lambda: all(h[4] for h in history(home)), timeout=90)
    shown = json.loads(ddtui(home, "history", "show", str(images[0]["generation_id"]), "--json").stdout)
    assert shown["tags"] and {t["source"] for t in shown["tags"]} == {"llm_vision"}
    assert shown["seed"] == 40 and shown["model"] == "stable-diffusion/demo-flux2-klein.safetensors"
    # Re-run exactly: same seed, linked to its parent.
    r = ddtui(home, "history", "rerun", str(images[0]["generation_id"]), "--json")
    assert r.returncode == 0, r.stderr
    rerun = [e for e in lines(r.stdout) if e["event"] == "image"][0]
    assert rerun["seed"] == 40
    rows = {h[0]: h for h in history(home)}
    assert rows[rerun["generation_id"]][3] == images[0]["generation_id"]
    from PIL import Image, ImageChops

    with Image.open(images[0]["path"]) as first, Image.open(rerun["path"]) as again:
        assert ImageChops.difference(first.convert("RGB"), again.convert("RGB")).getbbox() is None  # same pixels


def test_upscale_is_recorded_as_child(service):
    home = service.home
    gen = [e for e in lines(ddtui(home, "generate", "a lighthouse", "--seed", "3", "--json").stdout)
           if e["event"] == "image"][0]
    r = ddtui(home, "upscale", str(gen["generation_id"]), "--json")
    assert r.returncode == 0, r.stderr
    up = [e for e in lines(r.stdout) if e["event"] == "image"][0]
    assert (up["width"], up["height"]) == (128, 128)
    rows = {h[0]: h for h in history(home)}
    assert rows[up["generation_id"]][2] == "upscale" and rows[up["generation_id"]][3] == gen["generation_id"]


def sd_pid(svc: Service) -> int:
    return next(w["pid"] for w in svc.status()["workers"] if w["kind"] == "sd")


def test_cancel_running_batch_after_current_image(tmp_path, demo_models):
    home = make_home(tmp_path / "home", demo_models, workers=NO_HEARTBEATS)
    service = Service(home).start()
    try:
        pid = sd_pid(service)
        job_id = generate_until_first_image(home, "a slow batch", "-n", "12", "--seed", "1")
        freeze_mid_job(service, job_id, pid, 12)  # the cancel reaches it in the middle of the batch, surely
        r = ddtui(home, "queue", "cancel", str(job_id), "--json")
        os.kill(pid, signal.SIGCONT)
        assert r.returncode == 0 and json.loads(r.stdout)["job"]["state"] == "cancelled"
        wait_for(lambda: service.status()["running"] == [], timeout=30)
        made = len(history(home))
        assert 1 <= made < 12
        assert jobs(home)[job_id][1] == "cancelled"
        # The worker keeps serving.
        assert ddtui(home, "generate", "after the cancel", "--seed", "9").returncode == 0
    finally:
        service.stop()


def test_cancel_now_restarts_the_worker_and_keeps_its_model(tmp_path, demo_models):
    home = make_home(tmp_path / "home", demo_models, workers=NO_HEARTBEATS)
    service = Service(home).start()
    try:
        pid = sd_pid(service)
        job_id = generate_until_first_image(home, "stop me now", "-n", "12")
        freeze_mid_job(service, job_id, pid, 12)  # mid-batch: only a restart can stop it now
        assert ddtui(home, "queue", "cancel", str(job_id), "--now").returncode == 0
        sd = wait_for(lambda: next((w for w in service.status()["workers"]
                                    if w["kind"] == "sd" and w["state"] == "idle" and w["restarts"] == 1), None))
        assert sd["pid"] != pid and sd["crashes"] == 0  # on purpose, not a crash
        assert sd["loaded_model"] == "stable-diffusion/demo-flux2-klein.safetensors"
        assert jobs(home)[job_id][1] == "cancelled"
        assert ddtui(home, "generate", "next one", "--seed", "2").returncode == 0
    finally:
        service.stop()


def test_queue_survives_a_killed_service(demo_home):
    svc = Service(demo_home).start()
    try:
        ids = []
        for n in range(3):
            r = ddtui(demo_home, "generate", f"job {n}", "-n", "2", "--seed", str(100 * n), "--no-wait", "--json")
            ids.append(json.loads(r.stdout)["job_id"])
        wait_for(lambda: len(history(demo_home)) >= 1, timeout=60)
        svc.kill()  # SIGKILL: no clean shutdown, a job is left "running"
    finally:
        svc.stop()
    before = history(demo_home)
    assert any(state == "running" for _, state, _, _ in jobs(demo_home).values()) or len(before) == 6
    svc = Service(demo_home).start()
    try:
        wait_for(lambda: all(jobs(demo_home)[i][1] == "done" for i in ids), timeout=120)
        rows = history(demo_home)
        gens = [r for r in rows if r[2] == "txt2img"]
        assert len(gens) == 6, gens  # none lost, none made twice
        assert sorted(r[1] for r in gens) == [0, 1, 100, 101, 200, 201]
        for job_id in ids:
            assert len(jobs(demo_home)[job_id][3]["generation_ids"]) == 2
    finally:
        svc.stop()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["generate", "x", "--size", "100x64"], 2, "not a multiple of 8"),
        (["generate", "x", "--size", "big"], 2, "size must look like"),
        (["generate", "x", "--model", "nope"], 2, "no image model 'nope'"),
        (["generate", "x", "--init", "/nonexistent.png"], 2, "does not exist"),
        (["generate", "x <lora:../../secret:1>"], 2, "is not allowed"),
        (["generate", "x", "--sampler", "fastest"], 2, "sampler must be one of"),
        (["generate", "x", "--style", "nope"], 2, "no style named 'nope'"),
        (["history", "show", "999"], 1, "no history item #999"),
        (["history", "rate", "1", "9"], 2, "rating must be from 0 to 5"),
        (["history", "search", "--kind", "sketch"], 2, "kind must be one of"),
        (["history", "search", "--since", "yesterday"], 2, "--since must be a date"),
        (["queue", "cancel", "999"], 2, "no job 999"),
        (["upscale", "/nonexistent.png"], 2, "neither a history id nor an existing file"),
        (["tag"], 2, "give history ids"),
        (["keys", "allow", "/etc/hostname"], 2, "is not a CURVE public key file"),
        (["worker", "sd", "--listen", "ipc:///tmp/x"], 2, "listens on tcp://"),
    ],
)
def test_cli_bad_input(service, args, code, message):
    r = ddtui(service.home, *args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert message in r.stderr


def test_cli_without_service_needs(demo_home, tmp_path):
    # Commands that only read or edit the history work with no service running.
    assert ddtui(demo_home, "history", "search").returncode == 1  # nothing matches yet
    r = ddtui(demo_home, "models", "list", "--json")
    assert r.returncode == 0
    kinds = {m["kind"] for m in json.loads(r.stdout)["models"]}
    assert kinds >= {"image", "vae", "text_encoder", "lora", "esrgan", "llm"}
    bad = tmp_path / "badhome"
    bad.mkdir()
    (bad / "config.json").write_text('{"llm": {"threads": "many"}}')
    r = ddtui(bad, "models", "list")
    assert r.returncode == 2 and "'llm.threads' must be an integer" in r.stderr and "config.json" in r.stderr
    r = ddtui(demo_home, "queue", "list", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"paused": False, "jobs": []}
    assert ddtui(demo_home, "serve", "--status").returncode == 3


def test_headless_remote_worker_serves_a_client_home(tmp_path, demo_models):
    """`ddtui worker sd --listen tcp://...` on one home; another home's service uses it over CURVE."""
    import shutil
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT, make_home

    box = make_home(tmp_path / "gpu-box", demo_models)
    desk = make_home(tmp_path / "desk", demo_models)
    assert ddtui(box, "keys", "init").returncode == 0
    assert ddtui(desk, "keys", "init").returncode == 0
    assert ddtui(box, "keys", "allow", str(desk / "keys" / "client.key"), "--name", "desk").returncode == 0
    shutil.copy(box / "keys" / "server.key", desk / "keys" / "gpu-box.key")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = subprocess.Popen([sys.executable, "-m", "ddtui", "--home", str(box), "worker", "sd",
                               "--listen", f"tcp://127.0.0.1:{port}", "--threads", "1"], cwd=ROOT)
    config = json.loads((desk / "config.json").read_text())
    config["workers"].update(local_sd=False, remote=[{"name": "gpu-box", "kind": "sd",
                                                     "endpoint": f"tcp://127.0.0.1:{port}",
                                                     "server_key": "keys/gpu-box.key"}])
    (desk / "config.json").write_text(json.dumps(config))
    svc = Service(desk)
    try:
        svc.start()
        names = {w["name"]: w for w in svc.status()["workers"]}
        assert names["gpu-box"]["state"] == "idle" and not names["gpu-box"]["local"]
        r = ddtui(desk, "generate", "made on another box", "--seed", "5", "--json")
        assert r.returncode == 0, r.stderr
        assert [e["seed"] for e in lines(r.stdout) if e["event"] == "image"] == [5]
    finally:
        svc.stop()
        worker.terminate()
        worker.wait(20)
