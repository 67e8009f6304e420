"""The queries the interface and the CLI run on the history, each served by an index in schema.py.

History search combines full text, tags (all of), model, minimum rating, favorites, a date range and kind,
newest first, with keyset pagination on the generation id (ids grow with recording order). Results are
plain dataclasses so callers never hold Pony objects outside a db_session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pony.orm import Database, db_session

from .entities import GENERATION_KINDS, TAG_CATEGORIES


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
        d["created"] = self.created.isoformat(sep=" ", timespec="seconds")
        return d


@dataclass
class Page:
    items: list[HistoryItem]
    next_cursor: int | None  # pass as `after` for the next page; None at the end


class QueryError(ValueError):
    """A filter value that cannot be used (unknown kind, rating out of range, ...)."""


_TOKEN = re.compile(r"[\w][\w'\-]*", re.UNICODE)


def fts_expression(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word must match, the last one as a prefix."""
    words = _TOKEN.findall(text)
    if not words:
        return ""
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    quoted[-1] += "*"  # typing "astro" finds "astronaut" while the user is still typing
    return " AND ".join(quoted)


_COLUMNS = "g.id, g.uuid, g.path, g.kind, g.prompt, g.model, g.width, g.height, g.seed, g.rating, g.favorite, g.created"


def _where(q: HistoryQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    expr = fts_expression(q.text)
    if q.text.strip() and not expr:
        clauses.append("0")  # only punctuation: nothing can match
    elif expr:
        clauses.append("g.id IN (SELECT rowid FROM generation_fts WHERE generation_fts MATCH ?)")
        args.append(expr)
    for name in dict.fromkeys(t.strip().lower() for t in q.tags if t.strip()):
        clauses.append(
            "g.id IN (SELECT gt.generation FROM generation_tag gt JOIN tag t ON t.id = gt.tag WHERE t.name = ?)"
        )
        args.append(name)
    if q.model:
        clauses.append("g.model = ?")
        args.append(q.model)
    if q.min_rating:
        if not 0 <= q.min_rating <= 5:
            raise QueryError(f"minimum rating must be from 0 to 5, got {q.min_rating}")
        clauses.append("g.rating >= ?")
        args.append(q.min_rating)
    if q.favorite:
        clauses.append("g.favorite = 1")
    if q.date_from or q.date_to:
        lo = _sql_time(q.date_from) if q.date_from else "0001-01-01 00:00:00"
        hi = _sql_time(q.date_to) if q.date_to else "9999-12-31 23:59:59"  # text, never numeric
        clauses.append("g.created >= ? AND g.created < ?")
        args += [lo, hi]
        # Exact id bounds from the covering (created, id) index let the newest-first scan start in the range.
        clauses.append(
            "g.id BETWEEN (SELECT min(id) FROM generation WHERE created >= ? AND created < ?)"
            " AND (SELECT max(id) FROM generation WHERE created >= ? AND created < ?)"
        )
        args += [lo, hi, lo, hi]
    if q.kind:
        if q.kind not in GENERATION_KINDS:
            raise QueryError(f"kind must be one of {', '.join(GENERATION_KINDS)}, got {q.kind!r}")
        clauses.append("g.kind = ?")
        args.append(q.kind)
    return clauses, args


def _sql_time(value: datetime) -> str:
    """Pony stores datetimes as 'YYYY-MM-DD HH:MM:SS[.ffffff]' text; compare in the same form."""
    return value.isoformat(sep=" ")


def _row(r: tuple) -> HistoryItem:
    created = r[11]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return HistoryItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]), created)


def search_history(db: Database, q: HistoryQuery | None = None, after: int | None = None,
                   limit: int = 60) -> Page:
    """One page of the history, newest first; `after` is the previous page's `next_cursor`."""
    q = q or HistoryQuery()
    clauses, args = _where(q)
    if after is not None:
        clauses.append("g.id < ?")
        args.append(after)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"SELECT {_COLUMNS} FROM generation g{where} ORDER BY g.id DESC LIMIT ?"
    args.append(limit + 1)
    with db_session:
        rows = db.get_connection().execute(sql, args).fetchall()
    items = [_row(r) for r in rows[:limit]]
    next_cursor = items[-1].id if len(rows) > limit else None
    return Page(items, next_cursor)


def count_history(db: Database, q: HistoryQuery | None = None) -> int:
    q = q or HistoryQuery()
    clauses, args = _where(q)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    with db_session:
        return db.get_connection().execute(f"SELECT count(*) FROM generation g{where}", args).fetchone()[0]


@dataclass
class TagCount:
    name: str
    category: str
    count: int


def tag_counts(db: Database, limit: int = 50, prefix: str = "", category: str = "") -> list[TagCount]:
    """The most used tags for the facet list (counts kept by triggers, so this never scans links)."""
    clauses = ["use_count > 0"]
    args: list[Any] = []
    if prefix:
        clauses.append("name >= ? AND name < ?")
        p = prefix.strip().lower()
        args += [p, p + "\uffff"]
    if category:
        if category not in TAG_CATEGORIES:
            raise QueryError(f"category must be one of {', '.join(TAG_CATEGORIES)}, got {category!r}")
        clauses.append("category = ?")
        args.append(category)
    sql = (f"SELECT name, category, use_count FROM tag WHERE {' AND '.join(clauses)} "
           "ORDER BY use_count DESC, name LIMIT ?")
    args.append(limit)
    with db_session:
        rows = db.get_connection().execute(sql, args).fetchall()
    return [TagCount(*r) for r in rows]


def models_in_history(db: Database) -> list[tuple[str, int]]:
    """Models that made images, with counts (served by idx_generation_model)."""
    with db_session:
        rows = db.get_connection().execute(
            "SELECT model, count(*) FROM generation WHERE model != '' GROUP BY model ORDER BY count(*) DESC"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]
