"""The history filter bar: full text, tag facets (all of), model, minimum rating, favorites, dates and kind.

It owns no data access: the screen feeds it the model list and tag facets (`set_models`, `set_facets`) and
listens for `FilterBar.Changed`, posted when a field changes (typing is debounced so every keystroke does not
start a query) and for `FilterBar.TagPrefixChanged` to look up more facets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Checkbox, Input, Label, Select, SelectionList
from textual.widgets.selection_list import Selection

from ...db.entities import GENERATION_KINDS
from ...db.queries import HistoryQuery, TagCount

DEBOUNCE_S = 0.3
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


class DateError(ValueError):
    """A date field that cannot be read; the message says what it should look like."""


def parse_date(text: str, end: bool = False) -> datetime | None:
    """A date typed by the user; an end date without a time includes that whole day."""
    text = text.strip()
    if not text:
        return None
    for fmt in DATE_FORMATS:
        try:
            value = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return value + timedelta(days=1) if end and fmt == "%Y-%m-%d" else value
    raise DateError(f"{text!r} is not a date: use YYYY-MM-DD (or YYYY-MM-DD HH:MM)")


class FilterBar(Vertical):
    """Every history filter in one panel; empty fields do not filter."""

    DEFAULT_CSS = """
    FilterBar { height: auto; }
    FilterBar Input, FilterBar Select { width: 1fr; }
    FilterBar .filter-heading { color: $text-muted; margin-top: 1; }
    FilterBar #filter-dates { height: auto; }
    FilterBar #filter-dates Input { margin-right: 1; }
    FilterBar #filter-tags { height: 1fr; min-height: 4; }
    FilterBar #filter-error { color: $error; height: auto; }
    """

    class Changed(Message):
        """The filters changed; `query` is what they now ask for."""

        def __init__(self, bar: "FilterBar", query: HistoryQuery) -> None:
            super().__init__()
            self.bar = bar
            self.query = query

        @property
        def control(self) -> "FilterBar":
            return self.bar

    class TagPrefixChanged(Message):
        """The user typed in the tag search: the facet list should show tags starting with `prefix`."""

        def __init__(self, bar: "FilterBar", prefix: str) -> None:
            super().__init__()
            self.bar = bar
            self.prefix = prefix

        @property
        def control(self) -> "FilterBar":
            return self.bar

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._timer: Timer | None = None
        self._prefix_timer: Timer | None = None
        self._selected_tags: list[str] = []  # in the order they were picked
        self._facets: list[TagCount] = []
        self._last = HistoryQuery()  # what the screen shows at first: only a different query is announced

    def compose(self) -> ComposeResult:
        yield Label("Search", classes="filter-heading")
        yield Input(placeholder="prompts and tags", id="filter-text", compact=True)
        yield Label("Kind, model, rating", classes="filter-heading")
        yield Select([(k, k) for k in GENERATION_KINDS], prompt="any kind", id="filter-kind", compact=True)
        yield Select([], prompt="any model", id="filter-model", compact=True)
        yield Select([(f"{'★' * n} or more", n) for n in range(1, 6)], prompt="any rating", id="filter-rating",
                     compact=True)
        yield Checkbox("favorites only", id="filter-favorite", compact=True)
        yield Label("Dates", classes="filter-heading")
        with Horizontal(id="filter-dates"):
            yield Input(placeholder="from Y-M-D", id="filter-from", compact=True)
            yield Input(placeholder="to Y-M-D", id="filter-to", compact=True)
        yield Label("", id="filter-error")
        yield Label("Tags (all of)", classes="filter-heading")
        yield Input(placeholder="find tags", id="filter-tag-prefix", compact=True)
        yield SelectionList[str](id="filter-tags", compact=True)

    # ------------------------------------------------------------------ fed by the screen

    def set_models(self, models: list[tuple[str, int]]) -> None:
        select = self.query_one("#filter-model", Select)
        current = select.value
        select.set_options([(f"{Path(m).stem} ({n})", m) for m, n in models])
        if current != Select.NULL and any(m == current for m, _ in models):
            select.value = current

    def set_facets(self, facets: list[TagCount]) -> None:
        """Show these tags with their counts; tags already picked stay listed (and picked) on top."""
        self._facets = facets
        listing = self.query_one("#filter-tags", SelectionList)
        counts = {f.name: f.count for f in facets}
        names = list(dict.fromkeys([*self._selected_tags, *(f.name for f in facets)]))
        with self.app.batch_update(), listing.prevent(SelectionList.SelectedChanged):
            listing.clear_options()
            listing.add_options([
                Selection(Content(f"{name} ({counts[name]})" if name in counts else name), name,
                          name in self._selected_tags)
                for name in names
            ])

    # ------------------------------------------------------------------ the query

    @property
    def selected_tags(self) -> list[str]:
        return list(self._selected_tags)

    def build_query(self) -> HistoryQuery:
        """The query the fields ask for; a bad date is shown under the fields and left out."""
        kind = self.query_one("#filter-kind", Select).value
        model = self.query_one("#filter-model", Select).value
        rating = self.query_one("#filter-rating", Select).value
        errors = []
        dates: list[datetime | None] = []
        for field_id, end in (("#filter-from", False), ("#filter-to", True)):
            field = self.query_one(field_id, Input)
            try:
                dates.append(parse_date(field.value, end=end))
                field.remove_class("-invalid")
            except DateError as exc:
                dates.append(None)
                field.add_class("-invalid")
                errors.append(str(exc))
        self.query_one("#filter-error", Label).update("\n".join(errors))
        return HistoryQuery(
            text=self.query_one("#filter-text", Input).value,
            tags=list(self._selected_tags),
            model=model if isinstance(model, str) else "",
            min_rating=rating if isinstance(rating, int) else 0,
            favorite=self.query_one("#filter-favorite", Checkbox).value,
            date_from=dates[0],
            date_to=dates[1],
            kind=kind if isinstance(kind, str) else "",
        )

    def clear(self) -> None:
        """Reset every filter (posts one Changed)."""
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed, SelectionList.SelectedChanged):
            for field_id in ("#filter-text", "#filter-from", "#filter-to", "#filter-tag-prefix"):
                self.query_one(field_id, Input).value = ""
            for field_id in ("#filter-kind", "#filter-model", "#filter-rating"):
                self.query_one(field_id, Select).clear()
            self.query_one("#filter-favorite", Checkbox).value = False
            self._selected_tags = []
            self.query_one("#filter-tags", SelectionList).deselect_all()
        self._emit()

    def focus_text(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def _emit(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        query = self.build_query()
        if query != self._last:
            self._last = query
            self.post_message(self.Changed(self, query))

    def _debounce(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self._emit)

    # ------------------------------------------------------------------ field events

    @on(Input.Changed, "#filter-text, #filter-from, #filter-to")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self._debounce()

    @on(Input.Submitted, "#filter-text, #filter-from, #filter-to")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._emit()  # Enter applies at once

    @on(Input.Changed, "#filter-tag-prefix")
    def _prefix_typed(self, event: Input.Changed) -> None:
        event.stop()
        if self._prefix_timer is not None:
            self._prefix_timer.stop()
        prefix = event.value
        self._prefix_timer = self.set_timer(DEBOUNCE_S, lambda: self.post_message(self.TagPrefixChanged(self, prefix)))

    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _picked(self, event: Select.Changed | Checkbox.Changed) -> None:
        event.stop()
        self._emit()

    @on(SelectionList.SelectedChanged, "#filter-tags")
    def _tags_picked(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        chosen = set(event.selection_list.selected)
        # Keep the order of picking; drop unpicked ones; add new ones at the end.
        self._selected_tags = [t for t in self._selected_tags if t in chosen] + sorted(
            chosen - set(self._selected_tags))
        self._emit()
