"""A job's progress on one line: state or phase, a bar, step and image of the batch, and time left.

Time left is estimated from the time since the job started and the fraction done over the whole batch,
so it settles after the first steps and counts model loading too.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ..messages import JobProgress


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class JobProgressBar(Widget):
    """The running job's progress; `state` says what the bar means (idle, queued, running, done, ...)."""

    DEFAULT_CSS = """
    JobProgressBar {
        height: 1;
        width: 1fr;
    }
    """

    state: reactive[str] = reactive("idle")
    phase: reactive[str] = reactive("")
    fraction: reactive[float] = reactive(0.0)
    step: reactive[int] = reactive(0)
    steps: reactive[int] = reactive(0)
    image: reactive[int] = reactive(0)
    batch: reactive[int] = reactive(1)
    note: reactive[str] = reactive("")

    def __init__(self, *, id: str | None = None, classes: str | None = None, clock=time.monotonic) -> None:
        super().__init__(id=id, classes=classes)
        self._clock = clock
        self._started: float | None = None
        self._finished: float | None = None

    def start(self, state: str = "running") -> None:
        """A job began (or was queued): reset the bar and the clock."""
        self._started = self._clock() if state == "running" else None
        self._finished = None
        self.state, self.phase, self.fraction, self.step, self.steps, self.note = state, "", 0.0, 0, 0, ""

    def advance(self, progress: JobProgress) -> None:
        if self._started is None:
            self._started = self._clock() - max(0.0, progress.elapsed)
        self.state = "running"
        self.phase, self.step, self.steps = progress.phase, progress.step, progress.steps
        self.image, self.batch = progress.image, progress.batch
        self.fraction = max(0.0, min(1.0, progress.fraction))

    def finish(self, state: str, note: str = "") -> None:
        self._finished = self._clock()
        if state == "done":
            self.fraction = 1.0
        self.state, self.note = state, note

    @property
    def elapsed(self) -> float:
        if self._started is None:
            return 0.0
        return (self._finished or self._clock()) - self._started

    @property
    def time_left(self) -> float | None:
        if self.state != "running" or self._started is None or not 0.02 < self.fraction < 1:
            return None
        return self.elapsed * (1 - self.fraction) / self.fraction

    def render(self) -> Text:
        width = max(10, self.size.width or 60)
        if self.state == "running":
            label = self.phase or "running"
            parts = []
            if self.steps:
                parts.append(f"step {self.step}/{self.steps}")
            if self.batch > 1:
                parts.append(f"image {min(self.image + 1, self.batch)}/{self.batch}")
            left = self.time_left
            parts.append(f"{format_seconds(left)} left" if left is not None else f"{format_seconds(self.elapsed)}")
            tail = " " + " · ".join(parts)
        elif self.state in ("done", "failed", "cancelled"):
            label = self.state
            took = f" in {format_seconds(self.elapsed)}" if self._started is not None else ""
            tail = f" {self.note}{took}".rstrip() if self.note or took else ""
        else:
            label, tail = self.state, (f" {self.note}" if self.note else "")
        head = f"{label:<9} "
        percent = f" {self.fraction * 100:3.0f}%"
        bar_width = max(4, width - len(head) - len(percent) - len(tail))
        filled = int(round(self.fraction * bar_width))
        text = Text(no_wrap=True, overflow="ellipsis")
        style = {"failed": "bold red", "cancelled": "yellow", "done": "green"}.get(self.state, "bold")
        text.append(head, style=style)
        text.append("━" * filled, style="green" if self.state == "done" else "magenta")
        text.append("━" * (bar_width - filled), style="grey37")
        text.append(percent)
        text.append(tail, style="dim" if self.state != "failed" else "red")
        return text
