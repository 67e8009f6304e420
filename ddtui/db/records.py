"""The plain records clients read from the store: no Pony entity ever leaves ddtui/db.

Every record is a dataclass that is safe outside a db_session and cheap to copy between threads. The history
filter (`HistoryQuery`) lives here too, since clients build it and the store's queries read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value else None


# ------------------------------------------------------------------ history


@dataclass
class HistoryQuery:
    """A history filter; empty fields do not filter."""

    text: str = ""
    tags: list[str] = field(default_factory=list)
    model: str = ""
    min_rating: int = 0
    favorite: bool = False
    date_from: datetime | None = None
    date_to: datetime | None = None
    kind: str = ""

    def is_empty(self) -> bool:
        return not (self.text.strip() or self.tags or self.model or self.min_rating or self.favorite
                    or self.date_from or self.date_to or self.kind)


@dataclass
class HistoryItem:
    """One tile of the history grid or one line of a search."""

    id: int
    uuid: str
    path: str
    kind: str
    prompt: str
    model: str
    width: int
    height: int
    seed: int
    rating: int
    favorite: bool
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created"] = _iso(self.created)
        return d


@dataclass
class Page:
    items: list[HistoryItem]
    next_cursor: int | None  # pass as `after` for the next page; None at the end


@dataclass
class TagCount:
    name: str
    category: str
    count: int


@dataclass
class TagRecord:
    name: str
    category: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LineageLink:
    """A parent or child of a generation, as the lineage list shows it."""

    id: int
    kind: str
    prompt: str
    created: datetime

    def label(self, relation: str) -> str:
        prompt = " ".join(self.prompt.split())
        prompt = prompt[:40] + "\u2026" if len(prompt) > 40 else prompt
        return f"{relation} #{self.id} {self.kind} \u00b7 {prompt}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "prompt": self.prompt, "created": _iso(self.created)}


@dataclass
class GenerationRecord:
    """Everything known about one generation: parameters, tags, lineage and its file."""

    id: int
    uuid: str
    path: str  # as stored (relative to the output folder when inside it)
    file: Path  # the stored path resolved: the image on disk
    kind: str
    prompt: str
    negative_prompt: str
    model: str
    width: int
    height: int
    seed: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    rating: int
    favorite: bool
    created: datetime
    source: str
    duration_s: float | None
    components: dict[str, Any]
    params: dict[str, Any]
    model_hash: str = ""
    content_hash: str = ""
    tags_edited: bool = False
    tagged_at: datetime | None = None
    rerunnable: bool = False
    rerun_reason: str = ""  # why it cannot be re-run, when it cannot
    tags: list[TagRecord] = field(default_factory=list)
    parent: LineageLink | None = None
    children: list[LineageLink] = field(default_factory=list)
    child_count: int = 0

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("tags", "parent", "children", "file")}
        d.update(created=_iso(self.created), tagged_at=_iso(self.tagged_at), file=str(self.file),
                 tags=[t.to_dict() for t in self.tags], parent=self.parent.to_dict() if self.parent else None,
                 children=[c.to_dict() for c in self.children])
        return d


# ------------------------------------------------------------------ the prompt library and presets


@dataclass
class StyleRecord:
    id: int
    name: str
    prompt: str
    negative_prompt: str = ""


@dataclass
class SnippetRecord:
    id: int
    label: str
    content: str
    category: str = "general"
    use_count: int = 0


@dataclass
class ImagePresetRecord:
    id: int
    name: str
    model: str
    components: dict[str, str] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def generate_params(self) -> dict[str, Any]:
        """What the Generate form receives when the preset is loaded."""
        return {"model": self.model, **self.params, "preset": self.name}


@dataclass
class LLMPresetRecord:
    id: int
    name: str
    model: str
    mmproj: str = ""
    context_size: int = 4096
    system_prompts: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ jobs


@dataclass
class JobRecord:
    """A job of the queue. `parent` is the header of the request that submitted it (events carry it)."""

    id: int
    type: str
    state: str
    priority: int
    attempts: int
    max_attempts: int
    error: str
    worker: str
    progress: float
    payload: dict[str, Any]
    result: dict[str, Any]
    group: str
    generation_id: int | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    parent: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "parent"}
        for key in ("created", "started", "finished"):
            d[key] = _iso(d[key])
        return d


__all__ = [
    "GenerationRecord", "HistoryItem", "HistoryQuery", "ImagePresetRecord", "JobRecord", "LLMPresetRecord",
    "LineageLink", "Page", "SnippetRecord", "StyleRecord", "TagCount", "TagRecord",
]
