"""End to end in a real terminal: `ddtui --home H` inside tmux, driven with keys and read back with
`tmux capture-pane`, the way a person sees it (the screen title, the finished image, the history count, an
inpaint from the mask editor and an exploration grid).

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
        size = self.tmux("display", "-p", "-t", self.target, "#{window_width}x#{window_height}").strip()
        raise AssertionError(f"{needle!r} did not appear within {timeout:.0f} s; the {size} pane shows:\n{text}")

    def close(self) -> None:
        self.tmux("kill-server")


def test_generate_an_image_in_tmux_and_find_it_in_history(demo_home: Path):
    pane = Pane("generate")
    command = f"{sys.executable} -m ddtui --home {demo_home} --images halfcell; echo DDTUI-EXIT=$?; sleep 120"
    # COLUMNS/LINES match the window: a tmux server started from pytest may hold 80x24 in its environment,
    # and the app (shutil.get_terminal_size) would believe that over the real window size.
    env = {"OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "COLUMNS": "160",
           "LINES": "48"}
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
        pane.wait_for("1 image ·", 20)  # the History screen's count, not Generate's "1 image(s)"
        pane.wait_for("prompt: a tiny red boat", 10)  # its detail panel
        # Inpaint it: one brush dab from the keyboard, then the inpaint job; its result is #1's child.
        pane.keys("m")
        editor = pane.wait_for("Paint the area to repaint over #1", 20)
        assert "Inpaint" in editor and "#1 · txt2img · 64x64" in editor
        pane.keys("Space")
        pane.wait_for("undo 1", 10)  # the dab is one undo step
        pane.keys("C-g")
        pane.wait_for("Result #2 recorded as a child of #1", 60)
        pane.keys("Escape")  # back to the History screen
        pane.wait_for("2 images", 20)
        # Explore around #1: eight variations fill the grid around it.
        pane.keys("x")
        grid = pane.wait_for("Grid finished: 8 of 8 made", 90)
        assert "anchor #1" in grid
        pane.keys("F3")
        pane.wait_for("10 images", 20)
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
