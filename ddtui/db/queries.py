"""The queries the interface and the CLI run on the history, each served by an index in schema.py.

History search combines full text, tags (all of), model, minimum rating, favorites, a date range and kind,
newest first, with keyset pagination on the generation id (ids grow with recording order). Results are
plain dataclasses so callers never hold Pony objects outside a db_session.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pony.orm import Database, db_session, desc, select

from .entities import FINAL_STATES, GENERATION_KINDS, JOB_STATES, TAG_CATEGORIES
from .records import HistoryItem, HistoryQuery, JobRecord, Page, TagCount


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


def _row(r: tuple[Any, ...]) -> HistoryItem:
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
        return int(db.get_connection().execute(f"SELECT count(*) FROM generation g{where}", args).fetchone()[0])


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


def tag_counts_within(db: Database, q: HistoryQuery, limit: int = 50, prefix: str = "", category: str = ""
                      ) -> list[TagCount]:
    """The most used tags among the items the filter `q` matches (an empty filter: the kept counts)."""
    if q.is_empty():
        return tag_counts(db, limit, prefix, category)
    clauses, args = _where(q)
    tag_clauses = ["1"]
    if prefix:
        p = prefix.strip().lower()
        tag_clauses.append("t.name >= ? AND t.name < ?")
        args += [p, p + "\uffff"]
    if category:
        if category not in TAG_CATEGORIES:
            raise QueryError(f"category must be one of {', '.join(TAG_CATEGORIES)}, got {category!r}")
        tag_clauses.append("t.category = ?")
        args.append(category)
    sql = (f"SELECT t.name, t.category, count(*) AS n FROM generation_tag gt JOIN tag t ON t.id = gt.tag "
           f"WHERE gt.generation IN (SELECT g.id FROM generation g WHERE {' AND '.join(clauses)}) "
           f"AND {' AND '.join(tag_clauses)} GROUP BY t.id ORDER BY n DESC, t.name LIMIT ?")
    args.append(limit)
    with db_session:
        rows = db.get_connection().execute(sql, args).fetchall()
    return [TagCount(*r) for r in rows]


def history_items(db: Database, ids: list[int]) -> list[HistoryItem]:
    """The grid rows of these ids, newest first (ids that no longer exist are left out)."""
    wanted = sorted({int(i) for i in ids}, reverse=True)
    items: list[HistoryItem] = []
    with db_session:
        conn = db.get_connection()
        for start in range(0, len(wanted), 500):  # below SQLite's bound-parameter limit
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT {_COLUMNS} FROM generation g WHERE g.id IN ({marks}) ORDER BY g.id DESC",
                                chunk).fetchall()
            items += [_row(r) for r in rows]
    return items


def latest_generation_id(db: Database) -> int:
    with db_session:
        row = db.get_connection().execute("SELECT max(id) FROM generation").fetchone()
    return int(row[0] or 0)


def models_in_history(db: Database) -> list[tuple[str, int]]:
    """Models that made images, with counts (served by idx_generation_model)."""
    with db_session:
        rows = db.get_connection().execute(
            "SELECT model, count(*) FROM generation WHERE model != '' GROUP BY model ORDER BY count(*) DESC"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


PARENT_KEY = "_parent"  # the submitting request's header, kept inside the payload column


def job_record(job: Any) -> JobRecord:
    """A job row as a plain record; the request header kept in the payload becomes `parent`."""
    payload = dict(job.payload)
    parent = payload.pop(PARENT_KEY, None) or {}
    return JobRecord(job.id, job.type, job.state, job.priority, job.attempts, job.max_attempts, job.error or "",
                     job.worker or "", job.progress, payload, dict(job.result), job.group or "",
                     job.generation.id if job.generation else None, job.created, job.started, job.finished,
                     dict(parent))


def list_jobs(db: Database, states: Any = None, limit: int = 200, group: str = "") -> list[JobRecord]:
    """Jobs in `states` (all by default): running first, then queued by priority, then the rest (in a db_session)."""
    wanted = tuple(states or JOB_STATES)
    unknown = [s for s in wanted if s not in JOB_STATES]
    if unknown:
        raise ValueError(f"unknown state {unknown[0]!r} (known: {', '.join(JOB_STATES)})")
    q = select(j for j in db.Job if j.state in wanted)
    if group:
        q = q.filter(lambda j: j.group == group)
    rows = q.order_by(lambda j: (j.state != "running", j.state != "queued", -j.priority, j.id))[:limit]
    return [job_record(j) for j in rows]


def finished_jobs(db: Database, limit: int = 200) -> list[JobRecord]:
    """The most recent jobs that ended (done, failed or cancelled), newest first (in a db_session)."""
    rows = select(j for j in db.Job if j.state in FINAL_STATES).order_by(lambda j: desc(j.id))[:limit]
    return [job_record(j) for j in rows]
