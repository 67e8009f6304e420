"""Real terminals for the graphics tests: a private X server (Xvfb), xterm with sixel or kitty in it, keys sent
as a person would (XTEST through xdotool), screenshots of the terminal's window, and the pixel checks.

Nothing here sleeps for a guessed time: every wait polls for a condition (a window that exists, a picture
that appeared in a screenshot) until a generous deadline, which is only reached when something is broken.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

TOOLS = {name: shutil.which(name) for name in ("Xvfb", "xterm", "kitty", "xdotool", "import", "tmux")}
SCREEN = (1280, 800)


def missing(*names: str) -> list[str]:
    return [name for name in names if TOOLS.get(name) is None]


def poll(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """`condition()` until it is truthy; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class XServer:
    """Xvfb on a display number it picks itself (-displayfd): tests never collide with each other."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.proc = subprocess.Popen([TOOLS["Xvfb"], "-displayfd", str(write), "-screen", "0",  # type: ignore[list-item]
                                      f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp", "-noreset"],
                                     pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()  # Xvfb writes it once it accepts connections
        if not number:
            self.proc.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=30)
        if check and out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stderr.strip()}")
        return out.stdout

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Terminal:
    """One terminal window on the X server, running `command`."""

    x: XServer
    kind: str  # "xterm" or "kitty"
    proc: subprocess.Popen
    window: str = ""

    @classmethod
    def start(cls, x: XServer, kind: str, command: list[str], env: dict[str, str]) -> "Terminal":
        full_env = {**x.env(), **env}
        if kind == "xterm":
            # VT340 mode has sixel; 256 colour registers instead of its 16.
            argv = [TOOLS["xterm"], "-ti", "vt340", "-xrm", "XTerm*numColorRegisters: 256", "-geometry",
                    "200x56+0+0", "-e", *command]
        else:
            argv = [TOOLS["kitty"], "--config", "NONE", "-o", "font_size=9", "-o", "remember_window_size=no",
                    "-o", f"initial_window_width={SCREEN[0]}", "-o", f"initial_window_height={SCREEN[1]}",
                    "-o", "enable_audio_bell=no", "-e", *command]
        proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        term = cls(x, kind, proc)
        term.window = str(poll(term._find_window, 60, f"the {kind} window"))
        return term

    def _find_window(self) -> str:
        # The terminal's own window (by its process id: a window of an earlier terminal may still be closing).
        out = subprocess.run([TOOLS["xdotool"], "search", "--onlyvisible", "--pid", str(self.proc.pid)],  # type: ignore[list-item]
                             env=self.x.env(), capture_output=True, text=True, timeout=10).stdout.split()
        return out[-1] if out else ""

    def keys(self, *names: str) -> None:
        """Press keys (xdotool names, e.g. F3, space, plus) in the window; the pointer gives it the focus."""
        self.x.run(TOOLS["xdotool"], "mousemove", "--window", self.window, "40", "40")  # type: ignore[arg-type]
        self.x.run(TOOLS["xdotool"], "key", "--delay", "60", *names)  # type: ignore[arg-type]

    def screenshot(self) -> Image.Image:
        data = subprocess.run([TOOLS["import"], "-window", self.window, "png:-"], env=self.x.env(),  # type: ignore[list-item]
                              capture_output=True, timeout=30).stdout
        return Image.open(io.BytesIO(data)).convert("RGB")

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 15)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)


# ------------------------------------------------------------------ reading pictures out of screenshots

MAGENTA = np.array([255, 0, 255])
GREEN = np.array([0, 200, 0])


def near(pixels: np.ndarray, colour: np.ndarray, tolerance: int = 60) -> np.ndarray:
    return np.abs(pixels.astype(int) - colour).max(axis=-1) <= tolerance


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int  # exclusive
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


def _runs(mask: np.ndarray, min_gap: int) -> Iterator[tuple[int, int]]:
    """Spans of True in a 1-D mask, joining gaps shorter than `min_gap`."""
    idx = np.flatnonzero(mask)
    if not idx.size:
        return
    start = prev = idx[0]
    for i in idx[1:]:
        if i - prev > min_gap:
            yield int(start), int(prev) + 1
            start = i
        prev = i
    yield int(start), int(prev) + 1


def checkerboard_boxes(shot: Image.Image, min_size: int = 40) -> list[Box]:
    """Boxes where the test's magenta and green checkerboard is drawn (left to right)."""
    pixels = np.asarray(shot)
    mask = near(pixels, MAGENTA) | near(pixels, GREEN)
    boxes = []
    for left, right in _runs(mask.sum(axis=0) > min_size // 2, 8):
        column = mask[:, left:right]
        for top, bottom in _runs(column.sum(axis=1) > (right - left) // 4, 8):
            if right - left >= min_size and bottom - top >= min_size:
                boxes.append(Box(left, top, right, bottom))
    return boxes


def square_size(shot: Image.Image, box: Box) -> float | None:
    """The checkerboard's square size in screen pixels inside `box`, read along rows; None if no regular
    alternation of magenta and green is there (half-cell pixels cannot draw a pattern this fine)."""
    pixels = np.asarray(shot)[box.top:box.bottom, box.left:box.right]
    magenta, green = near(pixels, MAGENTA), near(pixels, GREEN)
    sizes = []
    for y in range(pixels.shape[0] // 4, pixels.shape[0] * 3 // 4, 3):
        row = np.where(magenta[y], 1, np.where(green[y], 2, 0))
        changes = np.flatnonzero(np.diff(row) != 0)
        runs = np.diff(changes)
        runs = runs[(runs > 1)]
        if runs.size >= 8:
            sizes.append(float(np.median(runs)))
    if len(sizes) < 5:
        return None
    return float(np.median(sizes))


def uniform(shot: Image.Image, box: Box, colour: tuple[int, int, int], tolerance: int = 40,
            share: float = 0.97) -> bool:
    """Whether `box` is (almost) all one colour: no text, escape garbage or glyph drawn in it."""
    pixels = np.asarray(shot)[box.top:box.bottom, box.left:box.right]
    return bool(near(pixels, np.array(colour), tolerance).mean() >= share)


def colour_box(shot: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> Box | None:
    """The box of the largest patch of one colour (a plain colour tile), if there is one."""
    mask = near(np.asarray(shot), np.array(colour), tolerance)
    if mask.sum() < 200:
        return None
    columns = max(_runs(mask.sum(axis=0) > 4, 4), key=lambda r: mask[:, r[0]:r[1]].sum())
    part = mask[:, columns[0]:columns[1]]
    rows = max(_runs(part.sum(axis=1) > 4, 4), key=lambda r: part[r[0]:r[1]].sum())
    return Box(columns[0], rows[0], columns[1], rows[1])


def save(shot: Image.Image, name: str) -> Path:
    """Keep a screenshot for a person to look at (DDTUI_SCREENSHOTS=dir, else the temp dir)."""
    folder = Path(os.environ.get("DDTUI_SCREENSHOTS") or tempfile.gettempdir()) / "ddtui-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    shot.save(path)
    return path
