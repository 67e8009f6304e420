"""Opening a history database: PRAGMAs, the schema version, ordered migrations, FTS5 and indexes.

Pony creates the entity tables; everything Pony does not know about (the full-text index, the triggers
that keep it and the tag counts in sync, the query indexes, the version row) is raw SQL run after the
mapping. A database written by an older schema is upgraded by the ordered `MIGRATIONS` before Pony maps it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from pony.orm import Database

from .entities import define_entities

log = logging.getLogger("ddtui.db")

LATEST_VERSION = 3
BUSY_TIMEOUT_MS = 5000


class SchemaError(Exception):
    """The database cannot be opened or upgraded; the message says which file and why."""


def _pragmas(conn: sqlite3.Connection) -> None:
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL is durable across application crashes
    cur.execute("PRAGMA temp_store = MEMORY")
    cur.execute("PRAGMA cache_size = -32768")  # 32 MB page cache for the history grid's queries


# The full-text index keeps its own copy of the text (prompts are small), so a row can be replaced by rowid.
FTS_SQL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS generation_fts USING fts5(
        prompt, negative_prompt, tags, tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS generation_fts_insert AFTER INSERT ON generation BEGIN
        INSERT INTO generation_fts(rowid, prompt, negative_prompt, tags)
        VALUES (new.id, new.prompt, new.negative_prompt, '');
    END""",
    """CREATE TRIGGER IF NOT EXISTS generation_fts_update AFTER UPDATE OF prompt, negative_prompt ON generation
    BEGIN
        UPDATE generation_fts SET prompt = new.prompt, negative_prompt = new.negative_prompt
        WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS generation_fts_delete AFTER DELETE ON generation BEGIN
        DELETE FROM generation_fts WHERE rowid = old.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS generation_tag_insert AFTER INSERT ON generation_tag BEGIN
        UPDATE tag SET use_count = use_count + 1 WHERE id = new.tag;
        UPDATE generation_fts SET tags = (
            SELECT coalesce(group_concat(t.name, ' '), '') FROM generation_tag gt JOIN tag t ON t.id = gt.tag
            WHERE gt.generation = new.generation)
        WHERE rowid = new.generation;
    END""",
    """CREATE TRIGGER IF NOT EXISTS generation_tag_delete AFTER DELETE ON generation_tag BEGIN
        UPDATE tag SET use_count = use_count - 1 WHERE id = old.tag;
        UPDATE generation_fts SET tags = (
            SELECT coalesce(group_concat(t.name, ' '), '') FROM generation_tag gt JOIN tag t ON t.id = gt.tag
            WHERE gt.generation = old.generation)
        WHERE rowid = old.generation;
    END""",
]

# One index per query in queries.py (named after what it serves).
INDEX_SQL = [
    "CREATE INDEX IF NOT EXISTS idx_generation_created ON generation(created, id)",
    "CREATE INDEX IF NOT EXISTS idx_generation_model ON generation(model, id)",
    "CREATE INDEX IF NOT EXISTS idx_generation_kind ON generation(kind, id)",
    "CREATE INDEX IF NOT EXISTS idx_generation_rating ON generation(rating, id)",
    "CREATE INDEX IF NOT EXISTS idx_generation_favorite ON generation(id) WHERE favorite = 1",
    "CREATE INDEX IF NOT EXISTS idx_generation_content_hash ON generation(content_hash)",
    "CREATE INDEX IF NOT EXISTS idx_generation_untagged ON generation(id) WHERE tagged_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_generation_tag_tag ON generation_tag(tag, generation)",
    "CREATE INDEX IF NOT EXISTS idx_tag_use_count ON tag(use_count DESC)",
    "CREATE INDEX IF NOT EXISTS idx_job_state ON job(state, priority DESC, id)",
    "CREATE INDEX IF NOT EXISTS idx_job_group ON job(\"group\")",
]

VERSION_SQL = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """v2 adds import de-duplication, the source tool, user-edited tags, tag counts and the full-text index."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(generation)")}
    if "tags_edited" not in cols:
        conn.execute("ALTER TABLE generation ADD COLUMN tags_edited BOOLEAN NOT NULL DEFAULT 0")
    if "content_hash" not in cols:
        conn.execute("ALTER TABLE generation ADD COLUMN content_hash TEXT")
    if "source" not in cols:
        conn.execute("ALTER TABLE generation ADD COLUMN source TEXT NOT NULL DEFAULT 'ddtui'")
    tag_cols = {row[1] for row in conn.execute("PRAGMA table_info(tag)")}
    if "use_count" not in tag_cols:
        conn.execute("ALTER TABLE tag ADD COLUMN use_count INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "UPDATE tag SET use_count = (SELECT count(*) FROM generation_tag gt WHERE gt.tag = tag.id)"
    )
    for stmt in FTS_SQL:
        conn.execute(stmt)
    # Backfill the index for rows written before it existed.
    conn.execute(
        """INSERT INTO generation_fts(rowid, prompt, negative_prompt, tags)
        SELECT g.id, g.prompt, g.negative_prompt,
               coalesce((SELECT group_concat(t.name, ' ') FROM generation_tag gt JOIN tag t ON t.id = gt.tag
                         WHERE gt.generation = g.id), '')
        FROM generation g"""
    )


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """v3 adds the model_file table (hashes and families by size and mtime); Pony creates it, nothing to move."""


MIGRATIONS = {2: _migrate_1_to_2, 3: _migrate_2_to_3}


def read_version(conn: sqlite3.Connection) -> int | None:
    """The schema version, or None for an empty file."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        if "generation" in tables:
            raise SchemaError("the file has ddtui tables but no schema version; it was not written by ddtui")
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        raise SchemaError("the schema_version table is empty")
    return int(row[0])


def upgrade(path: Path) -> int | None:
    """Run pending migrations in one transaction each; return the version found before (None: new file)."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        try:
            _pragmas(conn)
            found = read_version(conn)
        except sqlite3.DatabaseError as exc:
            raise SchemaError(f"{path}: not a readable SQLite database ({exc})") from exc
        if found is None:
            return None
        if found > LATEST_VERSION:
            raise SchemaError(
                f"{path}: schema version {found} was written by a newer ddtui (this one knows {LATEST_VERSION})"
            )
        for version in range(found + 1, LATEST_VERSION + 1):
            log.info("migrating %s from schema %d to %d", path, version - 1, version)
            conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[version](conn)
                conn.execute("UPDATE schema_version SET version = ?", (version,))
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
        return found
    finally:
        conn.close()


def open_database(path: str | Path) -> Database:
    """Open (creating or upgrading) the history database at `path` and return a bound Pony Database."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    found = upgrade(path)
    db = Database()

    @db.on_connect(provider="sqlite")  # type: ignore[untyped-decorator]  # Pony has no type hints
    def _on_connect(_db: Database, connection: sqlite3.Connection) -> None:
        _pragmas(connection)

    define_entities(db)
    db.bind(provider="sqlite", filename=str(path), create_db=True)
    db.generate_mapping(create_tables=True)
    _finish_schema(db, fresh=found is None)
    db.path = path
    return db


def _finish_schema(db: Database, fresh: bool) -> None:
    conn = sqlite3.connect(str(db.provider.pool.filename), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        _pragmas(conn)
        conn.execute("BEGIN IMMEDIATE")
        for stmt in [VERSION_SQL, *FTS_SQL, *INDEX_SQL]:
            conn.execute(stmt)
        if fresh and conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
            conn.execute("INSERT INTO schema_version(version) VALUES (?)", (LATEST_VERSION,))
        conn.execute("COMMIT")
    finally:
        conn.close()
