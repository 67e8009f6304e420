"""End to end in a real terminal: `ddtui --home H` inside tmux, driven with keys and read back with
`tmux capture-pane`, the way a person sees it (the screen title, the finished image, the history count).

Needs tmux (`apt-get install -y tmux`); without it the test is skipped with that reason, so CI must
install tmux for this test to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install -y tmux); "
                                                      "CI must install it to run the terminal end-to-end test")


class Pane:
    """One tmux session on a private tmux server (-L), so the test never touches the user's tmux."""

    def __init__(self, name: str) -> None:
        self.server = f"ddtui-e2e-{os.getpid()}-{name}"
        self.target = "e2e"

    def tmux(self, *args: str) -> str:
        out = subprocess.run([TMUX, "-L", self.server, "-f", "/dev/null", *args], capture_output=True, text=True,
                             timeout=20)
        return out.stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        # Size the window first (a detached session may start at 80x24), then run the command in it.
        extra = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        subprocess.run([TMUX, "-L", self.server, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "48",
                        "-s", self.target, "-c", str(ROOT), *extra, "sleep 600"], check=True, timeout=20)
        self.tmux("set-option", "-t", self.target, "window-size", "manual")
        self.tmux("resize-window", "-t", self.target, "-x", "160", "-y", "48")
        self.tmux("respawn-pane", "-k", "-t", self.target, "-c", str(ROOT), *extra, command)

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", self.target, *(["-l"] if literal else []), *keys)

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.25)
        raise AssertionError(f"{needle!r} did not appear within {timeout:.0f} s; the pane shows:\n{text}")

    def close(self) -> None:
        self.tmux("kill-server")


def test_generate_an_image_in_tmux_and_find_it_in_history(demo_home: Path):
    pane = Pane("generate")
    command = f"{sys.executable} -m ddtui --home {demo_home} --images halfcell; echo DDTUI-EXIT=$?; sleep 120"
    env = {"OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    try:
        pane.start(command, env)
        screen = pane.wait_for("1 Generate", 60)  # the row of screens with their keys
        assert "Prompt" in screen
        pane.wait_for("2/2 workers", 60)  # the service started and both workers are ready
        pane.keys("a tiny red boat", literal=True)
        pane.keys("C-g")
        done = pane.wait_for("finished: 1 image(s)", 90)
        assert "#1" in done  # the result strip names the new image
        pane.keys("F3")
        history = pane.wait_for("1 image", 20)
        assert "a tiny red boat" in history
        pane.keys("C-q")
        pane.wait_for("DDTUI-EXIT=0", 20)
        # Quitting the interface leaves the service running for queued work.
        status = subprocess.run([sys.executable, "-m", "ddtui", "--home", str(demo_home), "serve", "--status"],
                                capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        pane.close()
        subprocess.run([sys.executable, "-m", "ddtui", "--home", str(demo_home), "serve", "--stop"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
