"""The history browser's row model: loaded rows of one filtered view, newest first, fetched by keyset pages.

No Textual here, so it is tested and benchmarked on its own. Blocking queries (`fetch`, `fetch_newer`,
`latest_id`) run in worker threads; every change to the loaded rows (`apply`, `prepend`, `remove`, `update`)
happens on the UI thread, so the grid never sees a half-applied page. A query change bumps `epoch`, and a
result fetched under an older epoch is dropped instead of mixing two filters in one list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from pony.orm import Database, db_session

from ..db.queries import HistoryItem, HistoryQuery, Page, count_history, search_history

PAGE_SIZE = 120
# A long jump (End, a lineage link far below) fetches in big pages: fewer round trips for the same rows.
MAX_FETCH = 5000


@dataclass
class Fetched:
    """One page fetched in a thread, to be applied on the UI thread."""

    epoch: int
    after: int | None
    page: Page
    total: int | None = None
    seconds: float = 0.0


class HistoryModel:
    """The rows a history view has loaded so far, and what to fetch next."""

    def __init__(self, db: Database, query: HistoryQuery | None = None, page_size: int = PAGE_SIZE) -> None:
        self.db = db
        self.page_size = page_size
        self.query = query or HistoryQuery()
        self.items: list[HistoryItem] = []
        self.next_cursor: int | None = None
        self.exhausted = False
        self.started = False  # the first page has been applied
        self.total: int | None = None  # rows matching the query (counted with the first page)
        self.epoch = 0
        self.newest_seen = 0  # the highest generation id known when the view last looked (any filter)
        self._index: dict[int, int] | None = None

    # ------------------------------------------------------------------ state (UI thread)

    def reset(self, query: HistoryQuery | None = None) -> None:
        """Forget the loaded rows (a new filter); results of earlier fetches will be ignored."""
        if query is not None:
            self.query = query
        self.epoch += 1
        self.items = []
        self.next_cursor = None
        self.exhausted = False
        self.started = False
        self.total = None
        self._index = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def known_rows(self) -> int:
        """Rows the view may show: the count when known (unloaded ones as placeholders), else the loaded ones."""
        if self.total is None or self.exhausted:
            return len(self.items)
        return max(self.total, len(self.items))

    def get(self, index: int) -> HistoryItem | None:
        return self.items[index] if 0 <= index < len(self.items) else None

    def index_of(self, generation_id: int) -> int | None:
        if self._index is None:
            self._index = {item.id: i for i, item in enumerate(self.items)}
        return self._index.get(generation_id)

    def wants(self, index: int) -> bool:
        """Whether rows up to `index` are missing and more can be fetched."""
        return not self.exhausted and (not self.started or index >= len(self.items))

    def plan(self, want: int) -> tuple[int, int | None, int] | None:
        """What to fetch so that row `want` is loaded: (epoch, after, limit), or None when nothing is needed."""
        if not self.wants(want):
            return None
        missing = want + 1 - len(self.items)
        limit = min(MAX_FETCH, max(self.page_size, missing))
        return self.epoch, (self.next_cursor if self.started else None), limit

    def apply(self, fetched: Fetched) -> bool:
        """Append a fetched page; False (and nothing changes) when it belongs to an older query or position."""
        expected = self.next_cursor if self.started else None
        if fetched.epoch != self.epoch or fetched.after != expected or self.exhausted:
            return False
        start = len(self.items)
        self.items.extend(fetched.page.items)
        if self._index is not None:
            for i, item in enumerate(fetched.page.items, start):
                self._index[item.id] = i
        self.next_cursor = fetched.page.next_cursor
        self.exhausted = fetched.page.next_cursor is None
        if not self.started:
            self.started = True
            if fetched.total is not None:
                self.total = fetched.total
            if self.items:
                self.newest_seen = max(self.newest_seen, self.items[0].id)
        return True

    def prepend(self, items: list[HistoryItem], newest_seen: int) -> int:
        """Put newly recorded rows on top; returns how many were added."""
        have = {i.id for i in self.items[: len(items) + 1]}
        fresh = [i for i in items if i.id not in have and (not self.items or i.id > self.items[0].id)]
        self.newest_seen = max(self.newest_seen, newest_seen)
        if not fresh:
            return 0
        self.items[:0] = fresh
        if self.total is not None:
            self.total += len(fresh)
        self._index = None
        return len(fresh)

    def remove(self, generation_id: int) -> int | None:
        """Drop a deleted row; returns the index it had."""
        index = self.index_of(generation_id)
        if index is None:
            return None
        del self.items[index]
        if self.total is not None:
            self.total = max(0, self.total - 1)
        self._index = None
        return index

    def update(self, generation_id: int, **changes: Any) -> HistoryItem | None:
        """Change a loaded row in place (rating, favorite) after the database was updated."""
        index = self.index_of(generation_id)
        if index is None:
            return None
        self.items[index] = replace(self.items[index], **changes)
        return self.items[index]

    # ------------------------------------------------------------------ queries (worker threads)

    def fetch(self, epoch: int, after: int | None, limit: int) -> Fetched:
        """Run one keyset page query (the first page of a query also counts its rows)."""
        t0 = time.perf_counter()
        page = search_history(self.db, self.query, after=after, limit=limit)
        total = count_history(self.db, self.query) if after is None else None
        return Fetched(epoch, after, page, total, time.perf_counter() - t0)

    def latest_id(self) -> int:
        """The newest generation id in the whole history (one index lookup)."""
        with db_session:
            row = self.db.get_connection().execute("SELECT max(id) FROM generation").fetchone()
        return int(row[0] or 0)

    def fetch_newer(self, newer_than: int, query: HistoryQuery | None = None) -> list[HistoryItem]:
        """Rows matching the query with an id above `newer_than`, newest first."""
        query = query or self.query
        limit = 60
        while True:
            page = search_history(self.db, query, limit=limit)
            fresh = [i for i in page.items if i.id > newer_than]
            if len(fresh) < len(page.items) or page.next_cursor is None or limit >= MAX_FETCH:
                return fresh
            limit *= 4  # every row of the page is new: there may be more


def bench_next_page(db: Database, pages: int = 20, page_size: int = PAGE_SIZE,
                    query: HistoryQuery | None = None) -> list[float]:
    """Seconds to fetch and apply each of `pages` consecutive pages (the model's share of a grid page)."""
    model = HistoryModel(db, query, page_size)
    times = []
    for _ in range(pages):
        t0 = time.perf_counter()
        plan = model.plan(len(model.items))
        if plan is None:
            break
        model.apply(model.fetch(*plan))
        times.append(time.perf_counter() - t0)
    return times
