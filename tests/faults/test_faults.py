"""Fault injection on a real service with real workers: killed workers, a killed service, a full disk,
a database held locked by another process, and writes cut off midway. Run alone: python -m pytest tests/faults
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Service, ddtui, make_home
from tests.faults.conftest import check_invariants, record
from tests.integration.test_core import history, jobs, wait_for

# A queue must survive many injected crashes: raise the limits that would otherwise stop retrying.
TOUGH = {"workers": {"max_restarts": 100, "restart_window": 60.0}, "queue": {"max_attempts": 25, "auto_tag": False}}


def tough_home(tmp_path: Path, models: Path, **extra) -> Path:
    overrides = {k: dict(v) for k, v in TOUGH.items()}
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    return make_home(tmp_path / "home", models, **overrides)


def submit(home: Path, n_jobs: int, batch: int, base_seed: int = 0) -> list[int]:
    ids = []
    for j in range(n_jobs):
        r = ddtui(home, "generate", f"fault job {j}", "-n", str(batch), "--seed", str(base_seed + 100 * j),
                  "--no-wait", "--json")
        assert r.returncode == 0, r.stderr
        ids.append(json.loads(r.stdout)["job_id"])
    return ids


def expected_seeds(n_jobs: int, batch: int, base_seed: int = 0) -> list[int]:
    return sorted(base_seed + 100 * j + i for j in range(n_jobs) for i in range(batch))


def sd_pid(svc: Service) -> int | None:
    w = next(w for w in svc.status()["workers"] if w["kind"] == "sd")
    return w["pid"] if w["state"] in ("idle", "busy") else None


def test_workers_killed_at_random_moments(tmp_path, demo_models):
    home = tough_home(tmp_path, demo_models)
    svc = Service(home).start()
    rng = random.Random(11)
    kills = 0
    try:
        ids = submit(home, 5, 3)
        while kills < 8 and any(jobs(home)[i][1] != "done" for i in ids):
            time.sleep(rng.uniform(0.2, 1.5))
            pid = sd_pid(svc)
            if pid:
                os.kill(pid, signal.SIGKILL)
                kills += 1
        wait_for(lambda: all(jobs(home)[i][1] == "done" for i in ids), timeout=300)
        seeds = sorted(h[1] for h in history(home))
        assert seeds == expected_seeds(5, 3), "an image was lost or made twice"
        checked = check_invariants(home)
        assert ddtui(home, "generate", "still works", "--seed", "1").returncode == 0
        record("worker killed (SIGKILL) mid-queue", injected=kills, jobs_survived=len(ids),
               images_kept=checked["images"])
    finally:
        svc.stop()


def test_service_killed_mid_queue_and_restarted(tmp_path, demo_models):
    home = tough_home(tmp_path, demo_models)
    rng = random.Random(5)
    kills = 0
    ids: list[int] = []
    for round_ in range(3):
        svc = Service(home).start()
        try:
            if round_ == 0:
                ids = submit(home, 4, 3)
            time.sleep(rng.uniform(1.0, 3.0))
            svc.kill()  # the service and its workers' process group, no clean shutdown
            kills += 1
        finally:
            svc.stop()
        check_invariants(home, allow_active=True)  # a job may be left "running" until the next start
    svc = Service(home).start()
    try:
        wait_for(lambda: all(jobs(home)[i][1] == "done" for i in ids), timeout=300)
        assert sorted(h[1] for h in history(home)) == expected_seeds(4, 3)
        checked = check_invariants(home)
        assert ddtui(home, "generate", "still works", "--seed", "1").returncode == 0
        record("service killed (SIGKILL) and restarted", injected=kills, jobs_survived=len(ids),
               images_kept=checked["images"])
    finally:
        svc.stop()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"a size-limited tmpfs cannot be mounted here: {r.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_output_disk_fills_up(tmp_path, demo_models, small_disk):
    home = tough_home(tmp_path, demo_models, paths={"output_dir": str(small_disk / "outputs")},
                      queue={"max_attempts": 2})
    svc = Service(home).start()
    try:
        (job,) = submit(home, 1, 40)  # 40 PNGs of ~10 KB each do not fit in 256 KB
        wait_for(lambda: jobs(home)[job][1] == "failed", timeout=300)
        made = len(history(home))
        assert 0 < made < 40
        error = json.loads(ddtui(home, "queue", "list", "--json").stdout)["jobs"][0]["error"]
        assert "No space left" in error or "cannot write" in error
        check_invariants(home, small_disk / "outputs")
        # Space comes back: a retry finishes the rest without redoing what was kept.
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        assert ddtui(home, "queue", "retry", str(job)).returncode == 0
        wait_for(lambda: jobs(home)[job][1] == "done", timeout=300)
        assert sorted(h[1] for h in history(home)) == list(range(40))
        checked = check_invariants(home, small_disk / "outputs")
        record("output disk full", injected=1, images_kept_when_full=made, images_after_space_freed=checked["images"])
    finally:
        svc.stop()


def hold_lock(db_path: Path, ready: threading.Event, release: threading.Event, at_least: float) -> None:
    conn = sqlite3.connect(str(db_path), isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE setting SET value = value")  # a write: the lock is real
    taken = time.monotonic()
    ready.set()
    release.wait()  # until the test has seen a write refused, however long that took
    time.sleep(max(0.0, at_least - (time.monotonic() - taken)))  # the fault lasts at least this long
    conn.execute("COMMIT")
    conn.close()


def test_database_held_locked_by_another_process(tmp_path, demo_models):
    home = tough_home(tmp_path, demo_models)
    svc = Service(home).start()
    try:
        ids = submit(home, 2, 4)
        wait_for(lambda: len(history(home)) >= 1, timeout=120)
        ready, release = threading.Event(), threading.Event()
        locker = threading.Thread(target=hold_lock, args=(home / "history.db", ready, release, 12.0))
        locker.start()
        try:
            while not ready.wait(0.1):
                assert locker.is_alive(), "the lock could not be taken"
            # A command that writes while the lock is held says so clearly and changes nothing.
            r = ddtui(home, "history", "rate", "1", "5")
        finally:
            release.set()
            locker.join()
        assert r.returncode == 3 and "locked" in r.stderr, (r.returncode, r.stderr)
        wait_for(lambda: all(jobs(home)[i][1] == "done" for i in ids), timeout=300)
        assert sorted(h[1] for h in history(home)) == expected_seeds(2, 4)
        checked = check_invariants(home)
        assert ddtui(home, "history", "rate", "1", "5").returncode == 0
        assert ddtui(home, "generate", "still works", "--seed", "1").returncode == 0
        record("database locked for 12 s by another process", injected=1, jobs_survived=len(ids),
               images_kept=checked["images"])
    finally:
        svc.stop()


WRITER = """
import io, sys
from pathlib import Path
from PIL import Image
from ddtui.core.recording import Recorder
from ddtui.db.schema import open_database
root = Path(sys.argv[1])
db = open_database(root / "history.db")
rec = Recorder(db, root / "outputs")
buf = io.BytesIO()
Image.effect_noise((512, 512), 64).convert("RGB").save(buf, "PNG")
i = 0
while True:
    rec.record(buf.getvalue(), {"prompt": f"image {i}", "seed": i, "width": 512, "height": 512})
    i += 1
    print(i, flush=True)
"""


def test_writes_cut_off_midway(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(8)
    cuts = 0
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, str(script), str(home)], stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        proc.wait()
        cuts += 1
    # The next start of the service adopts complete orphans and removes half-written files.
    from ddtui.core.recording import Recorder
    from ddtui.db.schema import open_database

    db = open_database(home / "history.db")
    adopted = Recorder(db, home / "outputs").adopt_orphans()
    db.disconnect()
    checked = check_invariants(home)
    record("recording process killed mid-write", injected=cuts, images_kept=checked["images"],
           orphans_adopted=len(adopted))
