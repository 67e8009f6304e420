"""What the full-screen viewer shows and steps through, kept apart from the screen: `ViewItem` (one image's
record, reduced to what the viewer needs), `ViewerSource` (generation ids by position, a blocking `load`, the
partner an image is compared with) and the sources of the screens that open the viewer: History's current filter
(its grid's cursor follows), Generate's results and an exploration's cells. Also the parameter differences and
the zoom geometry, which need no terminal.

Records are read through the app's store (`ddtui.db.store.Store.generation`), in worker threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

_NOISE = {"options", "mode", "batch", "preview_every", "preview_size", "components", "model_hash"}


@dataclass
class ViewItem:
    """One image the viewer can show: its record, reduced to what the viewer needs."""

    generation_id: int
    title: str
    params: dict[str, Any]
    image: Path | None  # the image file itself
    thumbnail: Path | None = None
    parent_id: int | None = None
    size: tuple[int, int] = (0, 0)


class ViewerSource(Protocol):
    """What the viewer steps through."""

    def count(self) -> int:
        """How many images (so far: a history that is still loading may grow)."""

    def generation_at(self, index: int) -> int | None:
        """The generation id at `index`, or None while it is not loaded yet (the source fetches it)."""

    def load(self, generation_id: int) -> ViewItem | None:
        """The image's record (blocking: called in a worker thread)."""

    def partner(self, item: ViewItem) -> int | None:
        """Whom `c` compares the image with: its parent, or the exploration's anchor."""

    def shown(self, index: int) -> None:
        """The viewer now shows `index` (History moves its grid cursor along)."""


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(parameter, left value, right value) for every parameter that differs, in a stable order."""
    order = ("prompt", "negative_prompt", "model", "seed", "steps", "cfg", "guidance", "sampler", "scheduler",
             "width", "height", "strength", "loras", "hires", "clip_skip", "vae_tiling")
    keys = [k for k in order if k in left or k in right]
    keys += sorted(k for k in set(left) | set(right) if k not in order and k not in _NOISE)
    out = []
    for key in keys:
        a, b = _text(left.get(key)), _text(right.get(key))
        if a != b:
            out.append((key, a, b))
    return out


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(str(value).split())


def crop_box(size: tuple[int, int], zoom: float, centre: tuple[float, float]) -> tuple[int, int, int, int] | None:
    """The part of an image of `size` shown at `zoom` around `centre` (fractions of the image); None: all."""
    if zoom <= 1.0 or size[0] <= 0 or size[1] <= 0:
        return None
    w, h = max(1, round(size[0] / zoom)), max(1, round(size[1] / zoom))
    x = round(centre[0] * size[0] - w / 2)
    y = round(centre[1] * size[1] - h / 2)
    return max(0, min(size[0] - w, x)), max(0, min(size[1] - h, y)), w, h


def clamp_centre(zoom: float, centre: tuple[float, float]) -> tuple[float, float]:
    half = 0.5 / max(1.0, zoom)
    return max(half, min(1 - half, centre[0])), max(half, min(1 - half, centre[1]))


# ------------------------------------------------------------------ sources


def record_loader(app: Any) -> Callable[[int], ViewItem | None]:
    """Loads one image's record for the viewer from the app's store (blocking: call it in a thread)."""
    from ..core.thumbnails import thumbnail_path

    thumbnails = app.home.thumbnails

    def load(generation_id: int) -> ViewItem | None:
        record = app.store.generation(generation_id)
        if record is None:
            return None
        params = dict(record.params)
        for key in ("prompt", "negative_prompt", "model", "width", "height", "seed"):
            params.setdefault(key, getattr(record, key))
        thumb = thumbnail_path(thumbnails, record.uuid)
        prompt = " ".join(record.prompt.split())[:80]
        title = f"#{record.id} \u00b7 {record.kind} \u00b7 {record.width}\u00d7{record.height} \u00b7 {prompt}"
        return ViewItem(record.id, title, params, record.file if record.file.exists() else None,
                        thumb if thumb.exists() else None, record.parent.id if record.parent else None,
                        (record.width, record.height))

    return load


@dataclass
class ListSource:
    """A fixed list of images (Generate's results, an exploration's cells)."""

    ids: list[int]
    loader: Callable[[int], ViewItem | None]
    anchor: int | None = None  # compared with by default (else an item's parent)
    on_shown: Callable[[int], None] | None = None

    def count(self) -> int:
        return len(self.ids)

    def generation_at(self, index: int) -> int | None:
        return self.ids[index] if 0 <= index < len(self.ids) else None

    def load(self, generation_id: int) -> ViewItem | None:
        return self.loader(generation_id)

    def partner(self, item: ViewItem) -> int | None:
        if self.anchor is not None and self.anchor != item.generation_id:
            return self.anchor
        return item.parent_id

    def shown(self, index: int) -> None:
        if self.on_shown is not None:
            self.on_shown(index)


@dataclass
class HistorySource:
    """The History screen's current filter, in its order: rows come from its model, which the grid fills."""

    history: Any  # the HistoryScreen: its `model` (rows loaded so far) and `grid` (cursor, row fetching)
    loader: Callable[[int], ViewItem | None]

    def count(self) -> int:
        return self.history.model.known_rows

    def generation_at(self, index: int) -> int | None:
        item = self.history.model.get(index)
        if item is None:
            self.history.grid.select_index(index)  # the grid fetches the rows around its cursor
        return item.id if item is not None else None

    def load(self, generation_id: int) -> ViewItem | None:
        return self.loader(generation_id)

    def partner(self, item: ViewItem) -> int | None:
        return item.parent_id

    def shown(self, index: int) -> None:
        self.history.grid.select_index(index)


def history_viewing(history: Any) -> tuple[ViewerSource, int] | None:
    """History's current filter, at the grid's cursor; None (and a note) with no image there."""
    if history.grid.current is None:
        history.notify("No image under the cursor.", severity="warning")
        return None
    return HistorySource(history, record_loader(history.app)), history.grid.cursor


def exploration_viewing(explore: Any) -> tuple[ViewerSource, int] | None:
    """An exploration's made cells in reading order (the anchor in the middle), at the cursor."""
    from ..core.explore import GRID_POSITIONS

    anchor = explore.anchor.generation_id if explore.anchor is not None else None
    ids: list[int] = []
    index = 0
    for position in sorted({*GRID_POSITIONS, (1, 1)}):
        cell = explore.cells.get(position)
        generation_id = anchor if position == (1, 1) else (cell.generation_id if cell is not None else None)
        if generation_id is None:
            continue
        if position == explore.cursor:
            index = len(ids)
        ids.append(generation_id)
    if not ids:
        explore.notify("No image in the grid yet.", severity="warning")
        return None
    return ListSource(ids, record_loader(explore.app), anchor=anchor), index


def results_viewing(screen: Any, generation_ids: list[int]) -> tuple[ViewerSource, int] | None:
    """Generate's results, at the newest."""
    if not generation_ids:
        screen.notify("No result yet: generate an image first.", severity="warning")
        return None
    return ListSource(list(generation_ids), record_loader(screen.app)), len(generation_ids) - 1
