"""The Generate screen's result strip: a thumbnail per finished image, newest on the right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import HorizontalScroll, Vertical
from textual.widgets import Label

from .image import ImageView


class ResultThumb(Vertical):
    """One finished image: its thumbnail, its history id and its seed."""

    def __init__(self, generation_id: int, thumb: Path, seed: Any) -> None:
        super().__init__(classes="result")
        self.generation_id = generation_id
        self.thumb = thumb
        self.seed = seed

    def compose(self) -> ComposeResult:
        yield ImageView("…", classes="result-image")
        yield Label(f"#{self.generation_id} · {self.seed}", classes="result-label")

    def on_mount(self) -> None:
        if self.thumb.exists():
            self.query_one(ImageView).show_file(self.thumb)


class ResultsStrip(Vertical):
    """The images this screen made, in the order they came."""

    def __init__(self, *, id: str | None = "results-box") -> None:
        super().__init__(id=id)
        self.count = 0

    def compose(self) -> ComposeResult:
        yield Label("Results", id="results-title")
        yield HorizontalScroll(id="results")

    @property
    def generation_ids(self) -> list[int]:
        """Every result's history id, oldest first."""
        return [r.generation_id for r in self.query(ResultThumb)]

    @property
    def last_generation_id(self) -> int | None:
        results = list(self.query(ResultThumb))
        return results[-1].generation_id if results else None

    def add(self, generation_id: int, thumb: Path, seed: Any) -> None:
        strip = self.query_one("#results", HorizontalScroll)
        strip.mount(ResultThumb(generation_id, thumb, seed))
        self.count += 1
        self.query_one("#results-title", Label).update(f"Results ({self.count})  [dim]newest on the right[/]")
        strip.scroll_end(animate=False)
