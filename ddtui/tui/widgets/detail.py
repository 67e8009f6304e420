"""The history's detail panel: one image larger, every parameter, editable tags and navigable lineage.

`load_detail` reads everything the panel shows in one db_session (run it in a worker thread); the panel
itself only displays a `GenerationDetail` and reports what the user did: `TagsEdited` when the tag field is
submitted (the difference to the stored tags: they become user tags), `Navigate` when a parent or child
is chosen, and `SendTo` when one of its buttons (upscale, inpaint, explore) is pressed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pony.orm import Database, db_session
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ...db.records import LineageLink
from .image import ImageView
from .thumbgrid import stars

CHILDREN_SHOWN = 100
# Parameters shown first, in this order; the rest of `params` follows sorted.
_PARAM_ORDER = ("prompt", "negative_prompt", "model", "width", "height", "seed", "steps", "cfg", "guidance",
                "sampler", "scheduler", "strength", "clip_skip", "loras", "hires", "vae_tiling", "model_hash")
_PARAM_SKIP = {"options", "mode", "batch", "preview_every", "preview_size", "components"}


@dataclass
class GenerationDetail:
    """Everything the panel shows about one generation (plain data, safe outside a db_session)."""

    id: int
    uuid: str
    path: str
    kind: str
    prompt: str
    negative_prompt: str
    model: str
    width: int
    height: int
    seed: int
    rating: int
    favorite: bool
    created: datetime
    source: str
    duration_s: float | None
    components: dict[str, Any]
    params: dict[str, Any]
    tags: list[dict[str, Any]] = field(default_factory=list)
    parent: LineageLink | None = None
    children: list[LineageLink] = field(default_factory=list)
    child_count: int = 0

    @property
    def tag_names(self) -> list[str]:
        return [t["name"] for t in self.tags]


def _link(gen: Any) -> LineageLink:
    return LineageLink(gen.id, gen.kind, gen.prompt or "", gen.created)


def load_detail(db: Database, generation_id: int) -> GenerationDetail | None:
    """Read one generation with its tags and lineage (blocking: call from a worker thread)."""
    with db_session:
        gen = db.Generation.get(id=generation_id)
        if gen is None:
            return None
        tags = sorted(({"name": link.tag.name, "category": link.tag.category, "source": link.source}
                       for link in gen.tags), key=lambda t: (t["category"], t["name"]))
        children = gen.children.select().order_by(lambda c: c.id)
        return GenerationDetail(
            id=gen.id, uuid=gen.uuid, path=gen.path, kind=gen.kind, prompt=gen.prompt or "",
            negative_prompt=gen.negative_prompt or "", model=gen.model or "", width=gen.width, height=gen.height,
            seed=gen.seed, rating=gen.rating, favorite=gen.favorite, created=gen.created, source=gen.source,
            duration_s=gen.duration_s, components=dict(gen.components or {}), params=dict(gen.params or {}),
            tags=tags, parent=_link(gen.parent) if gen.parent else None,
            children=[_link(c) for c in children.limit(CHILDREN_SHOWN)], child_count=gen.children.count(),
        )


def parse_tag_field(text: str) -> list[str]:
    """Tags typed as a comma-separated list (empty pieces dropped, order kept, duplicates removed)."""
    return list(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))


def format_params(detail: GenerationDetail) -> str:
    """The parameters as `name: value` lines, for the panel and for copying."""
    params = dict(detail.params)
    for key in ("prompt", "negative_prompt", "model", "width", "height", "seed"):
        params.setdefault(key, getattr(detail, key))
    keys = [k for k in _PARAM_ORDER if k in params] + sorted(k for k in params if k not in _PARAM_ORDER)
    lines = []
    for key in keys:
        if key in _PARAM_SKIP or params[key] in (None, "", [], {}):
            continue
        value = params[key]
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
        lines.append(f"{key}: {text}")
    if detail.components:
        lines.append("components: " + ", ".join(f"{k}={v}" for k, v in sorted(detail.components.items())))
    return "\n".join(lines)


class DetailPanel(VerticalScroll):
    """One generation in full; empty until `show` is called."""

    DEFAULT_CSS = """
    DetailPanel { height: 1fr; }
    DetailPanel #detail-image { height: 18; }
    DetailPanel #detail-title { text-style: bold; }
    DetailPanel #detail-params { color: $text; margin: 1 0; }
    DetailPanel .detail-heading { color: $text-muted; margin-top: 1; }
    DetailPanel #detail-lineage { height: auto; max-height: 12; }
    DetailPanel #detail-actions { height: auto; margin-top: 1; }
    DetailPanel #detail-actions Button { min-width: 10; margin-right: 1; }
    """

    class TagsEdited(Message):
        """The user submitted the tag field: `add` and `remove` are the difference to the stored tags."""

        def __init__(self, panel: "DetailPanel", generation_id: int, add: list[str], remove: list[str]) -> None:
            super().__init__()
            self.panel = panel
            self.generation_id = generation_id
            self.add = add
            self.remove = remove

        @property
        def control(self) -> "DetailPanel":
            return self.panel

    class Navigate(Message):
        """The user chose a parent or child in the lineage list."""

        def __init__(self, panel: "DetailPanel", generation_id: int) -> None:
            super().__init__()
            self.panel = panel
            self.generation_id = generation_id

        @property
        def control(self) -> "DetailPanel":
            return self.panel

    class SendTo(Message):
        """A button asked to upscale, inpaint or explore the image shown (`kind` as in `app.send_to`)."""

        def __init__(self, panel: "DetailPanel", kind: str, generation_id: int) -> None:
            super().__init__()
            self.panel = panel
            self.kind = kind
            self.generation_id = generation_id

        @property
        def control(self) -> "DetailPanel":
            return self.panel

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.detail: GenerationDetail | None = None

    def compose(self) -> ComposeResult:
        yield ImageView("no image selected", id="detail-image")
        yield Static("", id="detail-title", markup=False)
        yield Static("", id="detail-note", markup=False)
        yield Static("", id="detail-params", markup=False)
        with Horizontal(id="detail-actions"):
            yield Button("Upscale", id="detail-upscale", compact=True)
            yield Button("Inpaint", id="detail-inpaint", compact=True)
            yield Button("Explore", id="detail-explore", compact=True)
        yield Label("Tags (comma separated; Enter saves)", classes="detail-heading")
        yield Input(placeholder="no tags", id="detail-tags")
        yield Label("Lineage", classes="detail-heading")
        yield OptionList(id="detail-lineage", markup=False)

    def show(self, detail: GenerationDetail | None, thumbnail: Path | None = None, note: str = "") -> None:
        """Display `detail` (None clears the panel); `thumbnail` is its cached thumbnail file if there is one."""
        self.detail = detail
        image = self.query_one("#detail-image", ImageView)
        lineage = self.query_one("#detail-lineage", OptionList)
        lineage.clear_options()
        note_widget = self.query_one("#detail-note", Static)
        note_widget.update(note)
        note_widget.display = bool(note)
        self.query_one("#detail-actions").display = detail is not None
        if detail is None:
            image.clear()
            self.query_one("#detail-title", Static).update("")
            self.query_one("#detail-params", Static).update("")
            self.query_one("#detail-tags", Input).value = ""
            return
        if thumbnail is not None:
            image.show_file(thumbnail, f"#{detail.id}")
        else:
            image.clear()
        heart = " \u2665" if detail.favorite else ""
        self.query_one("#detail-title", Static).update(
            f"#{detail.id} \u00b7 {detail.kind} \u00b7 {detail.created:%Y-%m-%d %H:%M} \u00b7 "
            f"{stars(detail.rating)}{heart}")
        self.query_one("#detail-params", Static).update(format_params(detail))
        self.query_one("#detail-tags", Input).value = ", ".join(detail.tag_names)
        options: list[Option] = []
        if detail.parent:
            options.append(Option(detail.parent.label("\u2191 parent"), id=f"gen-{detail.parent.id}"))
        for child in detail.children:
            options.append(Option(child.label("\u2193 child"), id=f"gen-{child.id}"))
        if detail.child_count > len(detail.children):
            options.append(Option(f"\u2026 and {detail.child_count - len(detail.children)} more children",
                                  disabled=True))
        if not options:
            options.append(Option("no parent or children", disabled=True))
        lineage.add_options(options)

    def set_rating(self, rating: int, favorite: bool) -> None:
        """Refresh the title after a rating or favorite change without reloading."""
        if self.detail is None:
            return
        self.detail.rating, self.detail.favorite = rating, favorite
        heart = " \u2665" if favorite else ""
        d = self.detail
        self.query_one("#detail-title", Static).update(
            f"#{d.id} \u00b7 {d.kind} \u00b7 {d.created:%Y-%m-%d %H:%M} \u00b7 {stars(rating)}{heart}")

    def edit_tags(self) -> None:
        field_ = self.query_one("#detail-tags", Input)
        field_.focus()
        field_.cursor_position = len(field_.value)

    def focus_lineage(self) -> None:
        lineage = self.query_one("#detail-lineage", OptionList)
        lineage.focus()
        if lineage.highlighted is None and lineage.option_count:
            lineage.highlighted = 0

    @on(Input.Submitted, "#detail-tags")
    def _tags_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.detail is None:
            return
        wanted = parse_tag_field(event.value)
        have = self.detail.tag_names
        add = [t for t in wanted if t not in have]
        remove = [t for t in have if t not in wanted]
        self.post_message(self.TagsEdited(self, self.detail.id, add, remove))

    @on(Button.Pressed)
    def _action_pressed(self, event: Button.Pressed) -> None:
        kind = (event.button.id or "").removeprefix("detail-")
        if kind in ("upscale", "inpaint", "explore"):
            event.stop()
            if self.detail is not None:
                self.post_message(self.SendTo(self, kind, self.detail.id))

    @on(OptionList.OptionSelected, "#detail-lineage")
    def _lineage_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id or ""
        if option_id.startswith("gen-"):
            self.post_message(self.Navigate(self, int(option_id[4:])))
