"""Shared fixtures: the demo model set (written once per run), demo homes, and a running core service.

Everything is real: the synthetic models are loaded by the real bindings, the service is a real
`ddtui serve` process with real worker processes, and the history is a real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddtui.catalog.demo import demo_config_patch, write_demo_set
from ddtui.config import DEFAULTS, resolve_home

ROOT = Path(__file__).resolve().parent.parent

# One thread per model: on a 2-core machine two threads swing from 0.35 s to 4 s under contention.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    """The demo model set, written once for the whole test run."""
    root = tmp_path_factory.mktemp("demo-models")
    write_demo_set(root, seed=0)
    return root


def make_home(root: Path, models: Path, **overrides) -> Path:
    """A home whose model folder is a copy-free link to the demo set, with test-friendly settings."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(models, target_is_directory=True)
    config = json.loads(json.dumps(DEFAULTS))
    for section, values in demo_config_patch().items():
        config[section].update(values)
    config["sd"]["threads"] = 1
    config["llm"]["threads"] = 1
    config["llm"]["context_size"] = 2048
    config["workers"]["heartbeat_interval"] = 0.5
    for section, values in overrides.items():
        config[section].update(values)
    (root / "config.json").write_text(json.dumps(config, indent=2))
    return root


@pytest.fixture(autouse=True)
def _no_service_outlives_its_test(tmp_path):
    """A command that needed the service starts one detached (as for a user); end it with the test that
    caused it, so no stray service and workers load the machine while later tests run. Services are found by
    their command line (a home under this test's folder), so one that had not yet written its pid file is too."""
    yield
    import signal

    def services() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in args and any(a.startswith(str(tmp_path).encode()) for a in args):
                found.append(int(proc.name))
        return found

    pids = services()
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)  # the service leads its own process group, workers included
        except OSError:
            pass
    deadline = time.monotonic() + 20
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists() and b"zombie" not in _state(p)]
        time.sleep(0.1)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _state(pid: int) -> bytes:
    """The process's State line of /proc (b"zombie" once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_bytes().splitlines()
    except OSError:
        return b"zombie"
    return next((line.lower() for line in lines if line.startswith(b"State:")), b"zombie")


@pytest.fixture
def demo_home(tmp_path, demo_models) -> Path:
    return make_home(tmp_path / "home", demo_models)


def ddtui(home: Path, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real `ddtui` command line against `home`."""
    return subprocess.run(
        [sys.executable, "-m", "ddtui", "--home", str(home), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, input=input,
    )


class Service:
    """A `ddtui serve` process for one home, started and stopped by a test."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Service":
        from ddtui.core.client import ping

        log = open(self.home / "serve.out", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "ddtui", "--home", str(self.home), "serve"],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + timeout
        h = resolve_home(self.home)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {(self.home / 'serve.out').read_text()[-3000:]}")
            if asyncio.run(ping(h, timeout=1.0)):
                self.wait_workers_ready(deadline - time.monotonic())
                return self
            time.sleep(0.2)
        raise RuntimeError("service did not start")

    def status(self) -> dict:
        from ddtui.core.client import CoreClient

        async def go() -> dict:
            async with CoreClient(resolve_home(self.home)) as c:
                return await c.request("core_status")

        return asyncio.run(go())

    def wait_workers_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st["workers"] and all(w["state"] in ("idle", "busy") for w in st["workers"]):
                return
            time.sleep(0.2)
        raise RuntimeError(f"workers not ready: {self.status()}")

    def kill(self) -> None:
        """SIGKILL the service and its workers' process group (a crash, not a stop)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def service(demo_home):
    svc = Service(demo_home).start()
    yield svc
    svc.stop()
