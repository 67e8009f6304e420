"""The one door clients read the database through: typed methods that return plain records.

The terminal interface and the CLI read here; they never write (every write is a request to the service,
which applies the rule once and tells every client what changed). Each method is blocking — call it from a
worker thread — and runs in its own db_session, then closes the calling thread's connection, so thread pools
never pile up idle SQLite connections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from pony.orm import Database, db_session

from ..core.rules import rerun_refusal, stored_file
from .queries import (
    count_history,
    finished_jobs,
    history_items,
    job_record,
    latest_generation_id,
    list_jobs,
    models_in_history,
    search_history,
    tag_counts,
    tag_counts_within,
)
from .records import (
    GenerationRecord,
    HistoryItem,
    HistoryQuery,
    ImagePresetRecord,
    JobRecord,
    LineageLink,
    LLMPresetRecord,
    Page,
    SnippetRecord,
    StyleRecord,
    TagCount,
    TagRecord,
)
from .schema import open_database

T = TypeVar("T")
CHILDREN_SHOWN = 100
LINEAGE_DEPTH = 200  # a parent chain longer than this is cut (it would be a loop in a damaged file)


def _link(gen: Any) -> LineageLink:
    return LineageLink(gen.id, gen.kind, gen.prompt or "", gen.created)


class Store:
    """Read access to one home's history database."""

    def __init__(self, db_file: Path | str, output_dir: Path | str, db: Database | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.db = db if db is not None else open_database(db_file)
        self._own_db = db is None

    def close(self) -> None:
        if self._own_db:
            self.db.disconnect()

    def _read(self, fn: Callable[[], T]) -> T:
        """Run `fn` in a db_session, then close this thread's connection."""
        try:
            with db_session:
                return fn()
        finally:
            self.db.disconnect()

    def file_of(self, stored: str) -> Path:
        return stored_file(stored, self.output_dir)

    # ------------------------------------------------------------------ history

    def history_page(self, q: HistoryQuery | None = None, after: int | None = None, limit: int = 60) -> Page:
        return self._read(lambda: search_history(self.db, q, after, limit))

    def history_count(self, q: HistoryQuery | None = None) -> int:
        return self._read(lambda: count_history(self.db, q))

    def history_items(self, ids: Iterable[int]) -> list[HistoryItem]:
        wanted = list(ids)
        return self._read(lambda: history_items(self.db, wanted))

    def generation_ids(self, untagged_only: bool = False, among: Iterable[int] | None = None) -> list[int]:
        """Ids of every item (or of the untagged ones, or those of `among` that exist), oldest first."""
        wanted = None if among is None else {int(i) for i in among}

        def read() -> list[int]:
            if wanted is not None:
                return sorted(g.id for g in self.db.Generation.select(lambda g: g.id in wanted))
            q = self.db.Generation.select(lambda g: g.tagged_at is None) if untagged_only else self.db.Generation.select()
            return sorted(g.id for g in q)

        return self._read(read)

    def latest_generation_id(self) -> int:
        return self._read(lambda: latest_generation_id(self.db))

    def tag_facets(self, limit: int = 50, prefix: str = "", category: str = "",
                   within: HistoryQuery | None = None) -> list[TagCount]:
        if within is None:
            return self._read(lambda: tag_counts(self.db, limit, prefix, category))
        return self._read(lambda: tag_counts_within(self.db, within, limit, prefix, category))

    def models_in_history(self) -> list[tuple[str, int]]:
        return self._read(lambda: models_in_history(self.db))

    def generation(self, generation_id: int) -> GenerationRecord | None:
        return self._read(lambda: self._generation(generation_id))

    def generation_by_uuid(self, uuid: str) -> GenerationRecord | None:
        def read() -> GenerationRecord | None:
            gen = self.db.Generation.get(uuid=uuid)
            return self._generation(gen.id) if gen is not None else None

        return self._read(read)

    def generations(self, ids: Iterable[int]) -> list[GenerationRecord]:
        """Full records of several items, in the order asked (missing ids are left out)."""
        wanted = [int(i) for i in ids]
        return self._read(lambda: [r for r in (self._generation(i) for i in wanted) if r is not None])

    def _generation(self, generation_id: int) -> GenerationRecord | None:
        gen = self.db.Generation.get(id=generation_id)
        if gen is None:
            return None
        tags = sorted((TagRecord(link.tag.name, link.tag.category, link.source) for link in gen.tags),
                      key=lambda t: (t.category, t.name))
        params = dict(gen.params or {})
        refusal = rerun_refusal(gen.kind, {**params, "model": params.get("model") or gen.model})
        children = gen.children.select().order_by(lambda c: c.id)
        return GenerationRecord(
            id=gen.id, uuid=gen.uuid, path=gen.path, file=self.file_of(gen.path), kind=gen.kind,
            prompt=gen.prompt or "", negative_prompt=gen.negative_prompt or "", model=gen.model or "",
            width=gen.width, height=gen.height, seed=gen.seed, steps=gen.steps, cfg=gen.cfg,
            sampler=gen.sampler or "", scheduler=gen.scheduler or "", rating=gen.rating, favorite=gen.favorite,
            created=gen.created, source=gen.source, duration_s=gen.duration_s,
            components=dict(gen.components or {}), params=params, model_hash=gen.model_hash or "",
            content_hash=gen.content_hash or "", tags_edited=gen.tags_edited, tagged_at=gen.tagged_at,
            rerunnable=not refusal, rerun_reason=refusal, tags=tags,
            parent=_link(gen.parent) if gen.parent else None,
            children=[_link(c) for c in children.limit(CHILDREN_SHOWN)], child_count=gen.children.count(),
        )

    def lineage(self, generation_id: int) -> list[LineageLink]:
        """The chain of parents up to the first image, root first, ending with the item itself."""
        def read() -> list[LineageLink]:
            chain: list[LineageLink] = []
            gen = self.db.Generation.get(id=generation_id)
            seen: set[int] = set()
            while gen is not None and gen.id not in seen and len(chain) < LINEAGE_DEPTH:
                seen.add(gen.id)
                chain.append(_link(gen))
                gen = gen.parent
            return chain[::-1]

        return self._read(read)

    # ------------------------------------------------------------------ prompt library and presets

    def styles(self) -> list[StyleRecord]:
        return self._read(lambda: [StyleRecord(s.id, s.name, s.prompt, s.negative_prompt or "")
                                   for s in self.db.Style.select().order_by(lambda s: s.name)])

    def snippets(self, sort: str = "use") -> list[SnippetRecord]:
        rows = self._read(lambda: [SnippetRecord(s.id, s.label, s.content, s.category, s.use_count)
                                   for s in self.db.PromptSnippet.select()])
        if sort == "label":
            return sorted(rows, key=lambda s: (s.label.lower(), s.id))
        return sorted(rows, key=lambda s: (-s.use_count, s.label.lower(), s.id))

    def image_presets(self) -> list[ImagePresetRecord]:
        return self._read(lambda: [
            ImagePresetRecord(p.id, p.name, p.model, dict(p.components), dict(p.flags), dict(p.params),
                              p.description or "")
            for p in self.db.ImagePreset.select().order_by(lambda p: p.name)])

    def llm_presets(self) -> list[LLMPresetRecord]:
        return self._read(lambda: [
            LLMPresetRecord(p.id, p.name, p.model, p.mmproj or "", p.context_size, dict(p.system_prompts))
            for p in self.db.LLMPreset.select().order_by(lambda p: p.name)])

    def setting(self, key: str, default: Any = None) -> Any:
        def read() -> Any:
            row = self.db.Setting.get(key=key)
            return row.value if row is not None else default

        return self._read(read)

    # ------------------------------------------------------------------ the queue

    def jobs(self, states: Iterable[str] | None = None, limit: int = 300, group: str = "") -> list[JobRecord]:
        """Jobs in `states` (all by default): running first, then queued by priority, then the rest."""
        return self._read(lambda: list_jobs(self.db, states, limit, group))

    def finished_jobs(self, limit: int = 200) -> list[JobRecord]:
        """The most recent jobs that ended (done, failed or cancelled), newest first."""
        return self._read(lambda: finished_jobs(self.db, limit))

    def job(self, job_id: int) -> JobRecord | None:
        def read() -> JobRecord | None:
            job = self.db.Job.get(id=job_id)
            return job_record(job) if job is not None else None

        return self._read(read)

    def queue_paused(self) -> bool:
        return bool(self.setting("queue.paused", False))


__all__ = ["Store"]
