"""The supervisor under real crashes: kill -9 a worker mid-job, a worker that keeps crashing, a hung worker,
and deliberate restarts that are not crashes.

A local worker's death is learnt from the process itself (its exit), not from missed heartbeats: the tests
that kill workers run with heartbeats an hour apart, so only the exit notice can explain a restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Service, ddtui, make_home
from tests.integration.test_core import (NO_HEARTBEATS, freeze_mid_job, generate_until_first_image, history, jobs,
                                         wait_for)

def sd_worker(svc: Service) -> dict:
    return next(w for w in svc.status()["workers"] if w["kind"] == "sd")


def replacement(svc: Service, pid: int) -> dict:
    """The SD worker once a new process, not `pid`, is up and idle."""
    def ready() -> dict | None:
        w = sd_worker(svc)
        return w if w["state"] == "idle" and w["pid"] not in (None, pid) else None

    return wait_for(ready, timeout=120)


def test_kill_worker_mid_job_then_next_job_succeeds(tmp_path, demo_models):
    home = make_home(tmp_path / "home", demo_models, workers=NO_HEARTBEATS)
    service = Service(home).start()
    try:
        pid = sd_worker(service)["pid"]
        job_id = generate_until_first_image(home, "crash me", "-n", "6", "--seed", "10")
        freeze_mid_job(service, job_id, pid, 6)
        os.kill(pid, signal.SIGKILL)
        # The job gets a definite state: re-queued with the attempt counted, then finished on the new worker.
        wait_for(lambda: jobs(home)[job_id][1] == "done", timeout=120)
        _, state, attempts, result = jobs(home)[job_id]
        assert attempts == 2 and len(result["generation_ids"]) == 6
        seeds = sorted(h[1] for h in history(home))
        assert seeds == [10, 11, 12, 13, 14, 15]  # nothing lost, nothing made twice
        w = sd_worker(service)
        assert w["restarts"] == w["crashes"] == 1 and w["state"] == "idle" and w["pid"] != pid
        assert w["last_error"] == "worker process killed by SIGKILL"
        assert ddtui(home, "generate", "after the crash", "--seed", "1").returncode == 0
    finally:
        service.stop()


@pytest.mark.parametrize("workers, sig, reason", [
    # its own clean exit, which the service did not ask for: only the exit notice can tell (no heartbeats)
    (NO_HEARTBEATS, signal.SIGTERM, "worker process exited with code 0"),
    # alive but silent: only heartbeats can tell
    ({"heartbeat_interval": 0.5, "heartbeat_timeout": 3.0}, signal.SIGSTOP, "worker stopped answering for 3 s"),
], ids=["exits", "hangs"])
def test_a_worker_that_exits_or_hangs_is_replaced_and_says_why(tmp_path, demo_models, workers, sig, reason):
    home = make_home(tmp_path / "home", demo_models, workers=workers)
    svc = Service(home).start()
    try:
        pid = sd_worker(svc)["pid"]
        os.kill(pid, sig)
        w = replacement(svc, pid)
        assert w["crashes"] >= 1 and w["restarts"] == w["crashes"] and w["last_error"] == reason
        assert not Path(f"/proc/{pid}").exists()  # the old one was ended and reaped, not left behind
    finally:
        svc.stop()


def test_a_worker_that_keeps_crashing_is_left_stopped(tmp_path, demo_models):
    home = make_home(tmp_path / "home", demo_models, workers={"max_restarts": 2, "restart_window": 300.0})
    svc = Service(home).start()
    try:
        for n in range(3):
            w = wait_for(lambda: (lambda w: w if w["state"] == "idle" and w["pid"] else None)(sd_worker(svc)),
                         timeout=60)
            os.kill(w["pid"], signal.SIGKILL)
            wait_for(lambda: sd_worker(svc)["restarts"] == n + 1, timeout=30)
        w = wait_for(lambda: (lambda w: w if w["state"] == "failed" else None)(sd_worker(svc)), timeout=30)
        assert "stopped after 3 crashes" in w["last_error"]
        time.sleep(2)
        assert sd_worker(svc)["state"] == "failed"  # not restarted forever
        # The LLM worker is unaffected.
        assert next(x for x in svc.status()["workers"] if x["kind"] == "llm")["state"] == "idle"
        r = ddtui(home, "serve", "--status")
        assert "stopped after 3 crashes" in r.stdout
    finally:
        svc.stop()


def test_idle_llm_is_unloaded_and_reloads_on_demand(tmp_path, demo_models):
    home = make_home(tmp_path / "home", demo_models, llm={"idle_timeout": 1})
    svc = Service(home).start()
    try:
        gid = [json.loads(line) for line in ddtui(home, "generate", "a fox", "--json").stdout.splitlines()
               if '"image"' in line][0]["generation_id"]
        wait_for(lambda: history(home)[0][4], timeout=60)  # tagged: the LLM was loaded
        llm = lambda: next(w for w in svc.status()["workers"] if w["kind"] == "llm")  # noqa: E731
        wait_for(lambda: llm()["loaded_model"] == "" and llm()["state"] == "idle" and llm()["restarts"] >= 1,
                 timeout=30)
        assert llm()["last_error"] == "" and llm()["crashes"] == 0  # on purpose, not a crash
        r = ddtui(home, "tag", str(gid), "--wait")
        assert r.returncode == 0 and r.stdout.startswith(f"#{gid}:")
    finally:
        svc.stop()
