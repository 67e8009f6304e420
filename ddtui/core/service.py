"""The core: the queue dispatcher that drives workers, records their images and fans out job events.

`Core` runs in one asyncio loop (the `ddtui serve` process, or a test). It owns the database, the job queue,
the recorder and the supervisor. Workers' events are routed to the job that caused them (the parent header
and the job id), turned into history rows and thumbnails, and passed on to every subscriber as job events.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from PIL import Image
from pony.orm import db_session

from ..catalog.models import Catalog, CatalogError
from ..config import Config, Home
from ..db.records import TagRecord
from ..db.schema import open_database
from ..protocol import Message
from ..protocol.keys import load_public, load_secret
from .hashing import ModelHashes
from .importer import ImportReport, Importer, expand_paths
from .explore import CELLS, GRID_POSITIONS, LOCKABLE, ExploreError, neighbours
from .params import ParamError, build_generate_payload, check_image, rerun_request
from .prompt_tools import PromptToolError, read_variations, variations_messages, variations_schema
from .library import DatabaseBusy, Library
from .queue import IMAGE_JOB_TYPES, JobInfo, JobQueue, QueueError
from .rules import rerun_refusal
from .styles import StyleError, apply_styles
from .recording import Recorder, RecordingError, png_size
from .supervisor import Supervisor, WorkerSlot
from .tagging import TAG_SCHEMA, TaggingError, parse_tag_answer, store_llm_tags, tagging_messages
from .thumbnails import make_thumbnail

log = logging.getLogger("ddtui.core")

# Error reasons that no retry can fix: the job fails at once.
PERMANENT_REASONS = {"bad_params", "bad_lora", "bad_path", "missing_file", "flat_image", "load_failed",
                     "generation_failed", "upscale_failed", "unsupported", "unknown_job", "bad_request"}
TICK_S = 0.2
LOOP_BUSY_TIMEOUT_MS = 1000
IMPORT_BATCH = 16  # files imported per step of a long import (each step is announced)
RECONCILE_S = 5.0


@dataclass
class JobRun:
    job: JobInfo
    slot: WorkerSlot
    # ("event", Message), ("lost", reason) or ("stopping", None)
    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    generation_ids: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    requests: list[str] = field(default_factory=list)  # msg_ids of the requests sent to the worker for it

    @property
    def worker_job_id(self) -> str:
        """The id the worker knows this attempt by: a retried job never collides with its earlier attempt."""
        return f"{self.job.id}-{self.job.attempts}"


# A listener gets each event, its buffers and the header of the request that caused it ({} for none).
T = TypeVar("T")
Listener = Callable[[dict[str, Any], list[bytes], dict[str, Any]], None]

# Job events that change what the queue shows: each also goes out as one `queue_changed`.
QUEUE_EVENTS = {"queued": "queued", "started": "started", "done": "done", "failed": "failed",
                "retrying": "retrying", "cancelled": "cancelled", "priority": "priority",
                "queue_paused": "paused", "queue_resumed": "resumed"}
# Change topics and the event each one is announced by.
CHANGE_EVENTS = {"history": "history_changed", "styles": "styles_changed", "snippets": "snippets_changed",
                 "presets": "presets_changed", "settings": "settings_changed", "queue": "queue_changed"}


class Core:
    def __init__(self, home: Home, cfg: Config, *, local_workers: bool = True) -> None:
        self.home = home.ensure()
        self.cfg = cfg
        self.db = open_database(home.db_file)
        self.queue = JobQueue(self.db, max_attempts=cfg["queue"]["max_attempts"])
        self.recorder = Recorder(self.db, cfg.output_dir)
        self.model_hashes = ModelHashes(self.db, cfg.model_dir)
        self.importer = Importer(self.recorder, self.queue, home.thumbnails, auto_tag=cfg["queue"]["auto_tag"])
        w = cfg["workers"]
        self.supervisor = Supervisor(
            home.run, cfg.model_dir, self._on_worker_event, self._on_worker_lost,
            threads={"sd": cfg.threads("sd"), "llm": cfg.threads("llm")},
            heartbeat_interval=w["heartbeat_interval"], heartbeat_timeout=w["heartbeat_timeout"],
            max_restarts=w["max_restarts"], restart_window=w["restart_window"],
            connect_timeout=cfg["timeouts"]["connect"] + 10, max_message_bytes=w["max_message_mb"] << 20,
        )
        if local_workers and w["local_sd"]:
            self.supervisor.add_local("sd-local", "sd")
        if local_workers and w["local_llm"]:
            self.supervisor.add_local("llm-local", "llm")
        for remote in w["remote"]:
            self.supervisor.add_remote(remote["name"], remote["kind"], remote["endpoint"], self._curve_for(remote))
        self.library = Library(self.db, cfg.output_dir, home.thumbnails)
        self.runs: dict[int, JobRun] = {}
        self._worker_requests: dict[str, JobRun] = {}  # worker request msg_id -> the run it belongs to
        self._parents: dict[int, dict[str, Any]] = {}  # job id -> header of the request that submitted it
        self.listeners: list[Listener] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()
        self._stopping = False

    def _curve_for(self, remote: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        keys = self.home.keys
        server_key = Path(remote["server_key"]) if remote.get("server_key") else keys / f"{remote['name']}.key"
        if not server_key.is_absolute():
            server_key = self.home.root / server_key
        return (load_secret(keys / "client.key_secret"), load_public(keys / "client.key"), load_public(server_key))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        # The loop's own queries wait briefly for a lock: while another process holds the database, requests
        # are still answered (writes run in threads with the full busy timeout, and say "locked" if it lasts).
        with db_session:
            self.db.get_connection().execute(f"PRAGMA busy_timeout = {LOOP_BUSY_TIMEOUT_MS}")
        for job in self.queue.recover_interrupted():
            log.info("job %d %s after an interrupted run", job.id, job.state)
        for rec in await asyncio.to_thread(self.recorder.adopt_orphans):
            self.queue.submit("thumbnail", {}, priority=10, generation_id=rec.id)
        await self.supervisor.start()
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="dispatch"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for run in list(self.runs.values()):
            run.events.put_nowait(("stopping", None))
        await self.supervisor.stop()
        self.db.disconnect()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ events to clients

    def emit(self, job_id: int | None, event: str, data: dict[str, Any] | None = None,
             buffers: list[bytes] | None = None, parent: dict[str, Any] | None = None) -> None:
        """Send an event to every listener, with the header of the request that caused it: for a job's
        events, the request that submitted the job (kept with it across restarts)."""
        if parent is None:
            parent = self._parent_of(job_id) if job_id is not None else {}
        data = data or {}
        payload = {"job_id": str(job_id) if job_id is not None else "", "event": event, "data": data}
        self._send(payload, buffers or [], parent)
        # What a job event changes for other views, announced once here for every kind of job.
        if event in QUEUE_EVENTS and job_id is not None:
            self.changed("queue", [job_id], QUEUE_EVENTS[event], parent)
        elif event in QUEUE_EVENTS:
            self.changed("queue", [], QUEUE_EVENTS[event], parent)
        if event in ("done", "failed", "cancelled") and job_id is not None:
            self._parents.pop(job_id, None)  # read again from the job row if anything follows
        if event == "image" and data.get("generation_id"):
            self.changed("history", [int(data["generation_id"])], "new", parent)
        elif event == "tagged" and data.get("generation_id"):
            self.changed("history", [int(data["generation_id"])], "tags", parent)

    def changed(self, topic: str, ids: list[int], action: str, parent: dict[str, Any] | None = None,
                **extra: Any) -> None:
        """One change event: what `topic` data changed (`ids`), how, and which request caused it."""
        payload = {"job_id": "", "event": CHANGE_EVENTS[topic],
                   "data": {"ids": [int(i) for i in ids], "action": action, **extra}}
        self._send(payload, [], parent or {})

    def _send(self, payload: dict[str, Any], buffers: list[bytes], parent: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(payload, buffers, parent)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the others
                log.exception("event listener failed")

    def _parent_of(self, job_id: int) -> dict[str, Any]:
        parent = self._parents.get(job_id)
        if parent is None:
            try:
                parent = self.queue.get(job_id).parent
            except QueueError:
                parent = {}
            self._parents[job_id] = parent
        return parent

    def _submit(self, type: str, payload: dict[str, Any], parent: dict[str, Any] | None, **kw: Any) -> JobInfo:
        job = self.queue.submit(type, payload, parent=parent, **kw)
        self._parents[job.id] = dict(parent or {})
        return job

    # ------------------------------------------------------------------ requests

    def catalog(self) -> Catalog:
        return Catalog.scan(self.cfg.model_dir)

    def submit_generate(self, request: dict[str, Any], priority: int = 0, group: str = "",
                        parent: dict[str, Any] | None = None) -> JobInfo:
        """Queue a generation. `styles` in the request names saved styles, applied here (the one place)."""
        preset = None
        if request.get("preset"):
            with db_session:
                p = self.db.ImagePreset.get(name=request["preset"])
                if p is None:
                    raise ParamError(f"no preset named {request['preset']!r}")
                preset = {"id": p.id, "model": p.model, "params": dict(p.params)}
        request, styles = self._with_styles(request)
        payload = build_generate_payload(request, self.catalog(), self.cfg["sd"]["default_model"], preset,
                                         mask_blur=self.cfg["sd"]["mask_blur"])
        payload.update(styles)
        job = self._submit("generate", payload, parent, priority=priority, group=group)
        self.emit(job.id, "queued", {"type": "generate", "batch": payload["batch"]})
        self.wake()
        return job

    def _with_styles(self, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request with its styles applied, and what to record about them (the names, the typed prompt)."""
        names = request.get("styles") or []
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ParamError(f"styles must be a list of style names, got {names!r}")
        if not names:
            return request, {}
        prompt, negative = request.get("prompt") or "", request.get("negative_prompt") or ""
        if not isinstance(prompt, str) or not isinstance(negative, str):
            raise ParamError("the prompt and the negative prompt must be text")
        try:
            styled, styled_negative = apply_styles(self.db, names, prompt, negative)
        except StyleError as exc:
            raise ParamError(str(exc)) from None
        recorded = {"styles": list(names), "base_prompt": prompt, "base_negative_prompt": negative}
        return {**request, "prompt": styled, "negative_prompt": styled_negative}, recorded

    def submit_upscale(self, generation_id: int, upscaler: str = "", priority: int = 0,
                       parent: dict[str, Any] | None = None) -> JobInfo:
        cat = self.catalog()
        try:
            entry = cat.find(upscaler, kind="esrgan") if upscaler else next(e for e in cat.of_kind("esrgan") if e.usable)
        except StopIteration:
            raise ParamError(f"no ESRGAN model in {cat.model_dir / 'esrgan'}") from None
        except CatalogError as exc:
            raise ParamError(str(exc)) from None
        with db_session:
            gen = self.db.Generation.get(id=generation_id)
            if gen is None:
                raise ParamError(f"no history item #{generation_id}")
            check_image(self.recorder.file_path(gen.path), "image")
        job = self._submit("upscale", {"upscaler": entry.rel_path}, parent, priority=priority,
                           generation_id=generation_id)
        self.emit(job.id, "queued", {"type": "upscale"})
        self.wake()
        return job

    def submit_tag(self, generation_id: int, priority: int = -10, parent: dict[str, Any] | None = None) -> JobInfo:
        with db_session:
            if self.db.Generation.get(id=generation_id) is None:
                raise ParamError(f"no history item #{generation_id}")
        job = self._submit("tag", {}, parent, priority=priority, generation_id=generation_id)
        self.emit(job.id, "queued", {"type": "tag"})
        self.wake()
        return job

    def submit_chat(self, messages: list[dict[str, Any]], params: dict[str, Any] | None = None,
                    priority: int = 5, group: str = "", parent: dict[str, Any] | None = None) -> JobInfo:
        job = self._submit("chat", {"messages": messages, "params": params or {}}, parent, priority=priority,
                           group=group)
        self.emit(job.id, "queued", {"type": "chat"})
        self.wake()
        return job

    def submit_rerun(self, generation_id: int, priority: int = 0, parent: dict[str, Any] | None = None) -> JobInfo:
        return self.submit_generate(dict(self.rerun_request_for(generation_id), parent_id=generation_id),
                                    priority=priority, parent=parent)

    def start_exploration(self, anchor: dict[str, Any], locked: list[str], parent_id: int | None = None,
                          parent: dict[str, Any] | None = None) -> str:
        """Queue a 3x3 exploration around `anchor` (a generate request); returns the group of its jobs.

        The anchor is checked now; the LLM rewrites (when the prompt is unlocked) and the eight jobs follow in
        the background, announced by an `exploration` event listing each cell's job."""
        unknown = set(locked) - set(LOCKABLE)
        if unknown:
            raise ParamError(f"cannot lock {', '.join(sorted(unknown))} (lockable: {', '.join(LOCKABLE)})")
        if all(p in locked for p in LOCKABLE):
            raise ParamError("everything is locked: unlock at least one parameter to explore")
        payload = build_generate_payload(dict(anchor, batch=1), self.catalog(), self.cfg["sd"]["default_model"])
        request = {k: payload[k] for k in ("prompt", "negative_prompt", "model", "width", "height", "steps", "cfg",
                                           "guidance", "sampler", "scheduler", "seed", "clip_skip", "vae_tiling")}
        for key, field_name in (("init_path", "init_image"), ("mask_path", "mask_image"), ("strength", "strength")):
            if payload.get(key) is not None:
                request[field_name] = payload[key]
        group = f"explore-{uuidlib.uuid4().hex[:10]}"
        self._tasks.append(asyncio.create_task(self._explore(group, request, set(locked), parent_id, parent or {}),
                                               name=f"explore-{group}"))
        return group

    def rerun_request_for(self, generation_id: int) -> dict[str, Any]:
        """The request that re-makes a history item exactly (for re-runs and exploration anchors)."""
        with db_session:
            gen = self.db.Generation.get(id=generation_id)
            if gen is None:
                raise ParamError(f"no history item #{generation_id}")
            params = dict(gen.params)
            refusal = rerun_refusal(gen.kind, {**params, "model": params.get("model") or gen.model})
            if refusal:
                raise ParamError(f"#{generation_id} cannot be re-run: {refusal}")
            return rerun_request(params)

    async def _explore(self, group: str, anchor: dict[str, Any], locked: set[str], parent_id: int | None,
                       parent: dict[str, Any]) -> None:
        try:
            rewrites = None
            if "prompt" not in locked:
                system = self.cfg["llm"]["system_prompts"]["variations"]
                chat = self.submit_chat(variations_messages(system, anchor["prompt"], CELLS),
                                        {"json_schema": variations_schema(CELLS, anchor["prompt"]), "max_tokens": 800,
                                         "temperature": 0.9, "stream": False}, priority=20, group=group,
                                        parent=parent)
                done = await self._wait_job(chat.id)
                if done.state != "done":
                    raise ExploreError(f"the LLM could not write rewrites ({done.state}: {done.error})")
                rewrites = read_variations(done.result.get("text", ""), anchor["prompt"], CELLS)
                if not rewrites:
                    raise ExploreError("the LLM's rewrites were all the same as the prompt")
            cells = []
            # A fresh draw each time: exploring the same anchor again shows new neighbours.
            cells_found = neighbours(anchor, locked, rewrites, seed=random.randrange(2**32))
            for index, (cell, position) in enumerate(zip(cells_found, GRID_POSITIONS)):
                request = dict(cell, kind="variation", parent_id=parent_id) if parent_id else dict(cell)
                job = self.submit_generate(request, priority=10, group=group, parent=parent)
                cells.append({"index": index, "position": list(position), "job_id": job.id,
                              **{k: cell.get(k) for k in LOCKABLE}})
            self.emit(None, "exploration", {"group": group, "cells": cells, "anchor": anchor,
                                            "parent_id": parent_id}, parent=parent)
        except (ExploreError, PromptToolError, ParamError) as exc:
            self.emit(None, "exploration_failed", {"group": group, "message": str(exc)}, parent=parent)

    async def _wait_job(self, job_id: int, poll_s: float = 0.05) -> JobInfo:
        while True:
            job = self.queue.get(job_id)
            if job.state in ("done", "failed", "cancelled"):
                return job
            await asyncio.sleep(poll_s)

    async def cancel(self, job_id: int, now: bool = False, parent: dict[str, Any] | None = None) -> JobInfo:
        """Cancel a job: queued ones are dropped; a running batch stops after the current image, or at once
        with `now` (the worker is ended and restarted with its model, since the binding cannot abort)."""
        job = self.queue.cancel(job_id)
        run = self.runs.get(job_id)
        if run is not None and run.slot.client is not None:
            if now:
                await self.supervisor.restart(run.slot, f"job {job_id} cancelled at once", crash=False)
            else:
                await run.slot.client.request("cancel", {"job_id": run.worker_job_id})
        self.emit(job_id, "cancelled", {"now": now, "by": "user"})
        return job

    async def cancel_group(self, group: str, parent: dict[str, Any] | None = None) -> list[JobInfo]:
        jobs = self.queue.cancel_group(group)
        for job in jobs:
            run = self.runs.get(job.id)
            if run is not None and run.slot.client is not None:
                await run.slot.client.request("cancel", {"job_id": run.worker_job_id})
            self.emit(job.id, "cancelled", {"group": group, "by": "user"})
        return jobs

    def retry(self, job_id: int, parent: dict[str, Any] | None = None) -> JobInfo:
        job = self.queue.retry(job_id)
        self.emit(job_id, "queued", {"type": job.type, "retry": True})
        self.wake()
        return job

    def set_priority(self, job_id: int, priority: int, parent: dict[str, Any] | None = None) -> JobInfo:
        job = self.queue.set_priority(job_id, priority)
        self.emit(job.id, "priority", {"priority": job.priority})
        return job

    def set_paused(self, paused: bool, parent: dict[str, Any] | None = None) -> None:
        self.queue.set_paused(paused)
        self.emit(None, "queue_paused" if paused else "queue_resumed", {}, parent=parent)
        self.wake()

    # ------------------------------------------------------------------ writes on the history and library

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one write off the event loop (a locked database waits there, not here)."""
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            if "database is locked" in str(exc):
                raise DatabaseBusy("the history database is locked by another process (still busy after "
                                   "waiting); nothing was changed, try again") from None
            raise

    async def rate(self, ids: Any, rating: Any, parent: dict[str, Any] | None = None) -> list[int]:
        done = await self._write(self.library.rate, ids, rating)
        self.changed("history", done, "rate", parent)
        return done

    async def set_favorite(self, ids: Any, favorite: Any, parent: dict[str, Any] | None = None) -> list[int]:
        done = await self._write(self.library.favorite, ids, favorite)
        self.changed("history", done, "favorite", parent)
        return done

    async def edit_tags(self, generation_id: Any, add: Any = (), remove: Any = (), replace: Any = None,
                        parent: dict[str, Any] | None = None) -> list[TagRecord]:
        tags = await self._write(self.library.edit_tags, generation_id, _texts(add, "add"),
                                 _texts(remove, "remove"), _texts(replace, "set") if replace is not None else None)
        self.changed("history", [int(generation_id)], "tags", parent)
        return tags

    async def delete_items(self, ids: Any, files: bool = False, parent: dict[str, Any] | None = None
                           ) -> tuple[list[int], int, list[str]]:
        deleted, removed, problems = await self._write(self.library.delete, ids, bool(files))
        if deleted:
            self.changed("history", deleted, "delete", parent)
        return deleted, removed, problems

    async def save_style(self, style_id: Any, name: str, prompt: str, negative: str = "",
                         parent: dict[str, Any] | None = None) -> int:
        sid = await self._write(self.library.save_style, style_id, name, prompt, negative)
        self.changed("styles", [sid], "save", parent)
        return sid

    async def save_style_by_name(self, name: str, prompt: str, negative: str = "",
                                 parent: dict[str, Any] | None = None) -> int:
        sid = await self._write(self.library.save_style_by_name, name, prompt, negative)
        self.changed("styles", [sid], "save", parent)
        return sid

    async def delete_style(self, style_id: Any, parent: dict[str, Any] | None = None) -> None:
        self.changed("styles", [await self._write(self.library.delete_style, style_id)], "delete", parent)

    async def save_snippet(self, snippet_id: Any, label: str, content: str, category: str = "general",
                           parent: dict[str, Any] | None = None) -> int:
        sid = await self._write(self.library.save_snippet, snippet_id, label, content, category)
        self.changed("snippets", [sid], "save", parent)
        return sid

    async def delete_snippet(self, snippet_id: Any, parent: dict[str, Any] | None = None) -> None:
        self.changed("snippets", [await self._write(self.library.delete_snippet, snippet_id)], "delete", parent)

    async def use_snippet(self, snippet_id: Any, parent: dict[str, Any] | None = None) -> int:
        count = await self._write(self.library.use_snippet, snippet_id)
        self.changed("snippets", [int(snippet_id)], "use", parent)
        return count

    async def save_preset(self, kind: str, fields: dict[str, Any], parent: dict[str, Any] | None = None) -> int:
        pid = await self._write(self.library.save_preset, kind, fields)
        self.changed("presets", [pid], "save", parent, kind=kind)
        return pid

    async def delete_preset(self, kind: str, preset_id: Any, parent: dict[str, Any] | None = None) -> None:
        self.changed("presets", [await self._write(self.library.delete_preset, kind, preset_id)], "delete", parent, kind=kind)

    async def set_setting(self, key: str, value: Any, parent: dict[str, Any] | None = None) -> None:
        await self._write(self.library.set_setting, key, value)
        self.changed("settings", [], "set", parent, keys=[key])

    async def save_config(self, data: dict[str, Any], parent: dict[str, Any] | None = None) -> list[str]:
        """Check and write config.json; the service keeps what it can apply without a restart."""
        changed = await self._write(self.cfg.replace, data)
        if changed:
            self.changed("settings", [], "config", parent, changed=changed)
        return changed

    async def import_paths(self, paths: list[str], tag: bool | None = None,
                           parent: dict[str, Any] | None = None) -> ImportReport:
        """Import files (folders are searched) off the event loop, a few at a time: each batch recorded is
        announced at once, with `import_progress`, so a long import shows up in every client as it goes."""
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or not paths:
            raise ParamError("import: give one or more file or folder paths")
        auto_tag = self.cfg["queue"]["auto_tag"] if tag is None else bool(tag) and self.cfg["queue"]["auto_tag"]
        importer = Importer(self.recorder, self.queue, self.home.thumbnails, auto_tag=auto_tag)
        files = await asyncio.to_thread(lambda: list(expand_paths(paths)))
        report = ImportReport()
        for start in range(0, len(files), IMPORT_BATCH):
            part = await asyncio.to_thread(importer.import_paths, files[start:start + IMPORT_BATCH])
            report.results += part.results
            ids = [r.generation_id for r in part.results if r.status == "imported" and r.generation_id]
            if ids:
                self.changed("history", ids, "import", parent)
            self.emit(None, "import_progress", {"done": len(report.results), "total": len(files),
                                                "imported": report.count("imported")}, parent=parent)
            self.wake()
        return report

    def status(self) -> dict[str, Any]:
        return {
            "workers": [s.to_dict() for s in self.supervisor.slots],
            "paused": self.queue.paused(),
            "running": sorted(self.runs),
            "queued": self.queue.count(("queued",)),
        }

    # ------------------------------------------------------------------ dispatch

    async def _dispatch_loop(self) -> None:
        last_check = time.monotonic()
        while not self._stopping:
            try:
                self._dispatch_once()
                if time.monotonic() - last_check > RECONCILE_S:
                    last_check = time.monotonic()
                    self._reconcile()
            except Exception:  # noqa: BLE001 - the loop must survive a bad job row or a locked database
                log.exception("dispatch failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            except asyncio.TimeoutError:
                pass

    def _reconcile(self) -> None:
        """Every job this service marked running is being worked on, or goes back to the queue."""
        tracked = set(self.runs) | {int(t.get_name()[6:]) for t in self._tasks
                                    if t.get_name().startswith("thumb-") and not t.done()}
        workers = {s.name for s in self.supervisor.slots} | {"core"}
        for job in self.queue.release_untracked(tracked, workers):
            log.warning("job %d was marked running but nothing ran it: %s", job.id, job.state)
            self.emit(job.id, "retrying" if job.state == "queued" else "failed",
                      {"reason": "lost", "message": job.error, "attempts": job.attempts, "state": job.state})

    def _unload_idle_llms(self) -> None:
        """Free an LLM that has not been used for `llm.idle_timeout` seconds (a fresh worker holds no model)."""
        limit = self.cfg["llm"]["idle_timeout"]
        if not limit:
            return
        now = time.monotonic()
        for slot in self.supervisor.slots:
            if (slot.kind == "llm" and slot.local and slot.state == "idle" and slot.loaded
                    and slot.last_used and now - slot.last_used > limit):
                slot.loaded = None
                slot.state = "unloading"  # not idle: nothing is dispatched to it meanwhile
                self._tasks.append(asyncio.create_task(
                    self.supervisor.restart(slot, f"unloaded after {limit} s idle", crash=False), name="unload"))

    def _dispatch_once(self) -> None:
        self._unload_idle_llms()
        # Thumbnails are the core's own work; a few at a time off the loop.
        thumbs_running = sum(1 for t in self._tasks if t.get_name().startswith("thumb") and not t.done())
        while thumbs_running < 2:
            job = self.queue.claim(("thumbnail",), "core")
            if job is None:
                break
            self._tasks.append(asyncio.create_task(self._run_thumbnail(job), name=f"thumb-{job.id}"))
            thumbs_running += 1
        self._tasks = [t for t in self._tasks if not t.done() or t.get_name() == "dispatch"]
        for slot in self.supervisor.slots:
            if slot.state != "idle" or slot.client is None:
                continue
            types = slot.job_types
            if slot.kind == "llm" and slot.local and self.cfg["queue"]["tagging_waits_for_images"]:
                if self.queue.count(("queued", "running"), IMAGE_JOB_TYPES) and any(
                        s.local and s.kind == "sd" for s in self.supervisor.slots):
                    types = tuple(t for t in types if t != "tag")  # tagging waits while images are due
            if not types:
                continue
            job = self.queue.claim(types, slot.name)
            if job is None:
                continue
            slot.state, slot.job_id = "busy", job.id
            self._parents[job.id] = job.parent
            run = JobRun(job, slot)
            self.runs[job.id] = run
            self.emit(job.id, "started", {"type": job.type, "worker": slot.name, "attempt": job.attempts})
            self._tasks.append(asyncio.create_task(self._run(run), name=f"job-{job.id}"))

    async def _run(self, run: JobRun) -> None:
        job, slot = run.job, run.slot
        failure: tuple[str, str] | None = None
        try:
            if job.type == "generate":
                await self._run_generate(run)
            elif job.type == "upscale":
                await self._run_upscale(run)
            elif job.type == "tag":
                await self._run_tag(run)
            elif job.type == "chat":
                await self._run_chat(run)
        except _JobFailed as exc:
            failure = (exc.reason, exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug in one job must not stop the queue
            log.exception("job %d failed unexpectedly", job.id)
            failure = ("internal", f"{type(exc).__name__}: {exc}")
        finally:
            self.runs.pop(job.id, None)
            for msg_id in run.requests:
                self._worker_requests.pop(msg_id, None)
            slot.last_used = time.monotonic()
            if slot.job_id == job.id:
                slot.job_id = None
                if slot.state == "busy":
                    slot.state = "idle"
            self.wake()
        if failure is not None:
            if slot.client is not None and failure[0] not in PERMANENT_REASONS:
                # The worker may still be making this attempt's images (the failure was on our side): stop it.
                try:
                    await slot.client.request("cancel", {"job_id": run.worker_job_id})
                except Exception:  # noqa: BLE001 - a worker that went away has nothing to stop
                    pass
            try:
                self._fail(run, *failure)
            except Exception:  # noqa: BLE001 - e.g. the database stayed locked: _reconcile re-queues the job
                log.exception("could not record the failure of job %d", job.id)

    def _fail(self, run: JobRun, reason: str, message: str) -> None:
        permanent = reason in PERMANENT_REASONS
        backoff = 0.0 if run.job.type != "tag" else min(300.0, 5.0 * 2 ** max(0, run.job.attempts - 1))
        info = self.queue.fail(run.job.id, f"{reason}: {message}", retry=not permanent, backoff_s=backoff)
        self.emit(run.job.id, "failed" if info.state == "failed" else "retrying",
                  {"reason": reason, "message": message, "attempts": info.attempts, "state": info.state})

    async def _next_event(self, run: JobRun, timeout: float) -> Message:
        try:
            kind, msg = await asyncio.wait_for(run.events.get(), timeout)
        except asyncio.TimeoutError:
            await self.supervisor.restart(run.slot, f"job {run.job.id} made no progress for {timeout:.0f} s")
            raise _JobFailed("hung", f"no progress for {timeout:.0f} s; the worker was restarted") from None
        if kind == "lost":
            raise _JobFailed("worker_lost", msg)
        if kind == "stopping":
            raise _JobFailed("interrupted", "the service is stopping")
        assert isinstance(msg, Message)
        return msg

    def _on_worker_event(self, slot: WorkerSlot, msg: Message) -> None:
        """Route a worker's event to the run whose request caused it (its parent header)."""
        run = self._worker_requests.get(msg.parent_id or "")
        if run is None:
            # Not a running job's: a late event of an earlier attempt, or the worker's own notice.
            if msg.msg_type == "error" and not msg.parent_id:
                log.warning("worker %s: %s", slot.name, msg.content.get("message"))
            return
        if run.slot is slot:
            run.events.put_nowait(("event", msg))

    async def _send_job(self, run: JobRun, msg_type: str, content: dict[str, Any], buffers: list[bytes] | None = None
                        ) -> None:
        """Send a job request to the run's worker; every event the worker sends for it names it as parent."""
        assert run.slot.client is not None
        msg_id = await run.slot.client.request(msg_type, content, buffers or [])
        # No await between the send and this line, so no event of this request can be read before it.
        self._worker_requests[msg_id] = run
        run.requests.append(msg_id)

    async def _on_worker_lost(self, slot: WorkerSlot, reason: str) -> None:
        if slot.job_id is not None and slot.job_id in self.runs:
            self.runs[slot.job_id].events.put_nowait(("lost", reason))

    # ------------------------------------------------------------------ job kinds

    async def _run_generate(self, run: JobRun) -> None:
        payload = dict(run.job.payload)
        buffers: list[bytes] = []
        params = dict(payload)
        for key, slot_key in (("init_path", "init_buffer"), ("mask_path", "mask_buffer")):
            if payload.get(key):
                try:
                    buffers.append(await asyncio.to_thread(_png_bytes, Path(payload[key])))
                except OSError as exc:
                    raise _JobFailed("bad_params", f"cannot read {payload[key]}: {exc}") from None
                params[slot_key] = len(buffers) - 1
        done = [int(i) for i in run.job.result.get("generation_ids", [])]
        if done:
            # An earlier attempt finished some images: make only the rest (the seeds continue).
            run.generation_ids = done
            params["seed"] = payload["seed"] + len(done)
            params["batch"] = payload["batch"] - len(done)
            if params["batch"] <= 0:
                resumed = {"generation_ids": done, "status": "done", "info": {"resumed": True}}
                self.queue.complete(run.job.id, resumed)
                self.emit(run.job.id, "done", resumed)
                return
        params["preview_every"] = self.cfg["sd"]["preview_interval"]
        params["preview_size"] = self.cfg["sd"]["preview_size"]
        # Hashing (first use of a file only) overlaps the worker's model load; images wait for it.
        hash_task = asyncio.create_task(self._model_hash(run.job.id, payload["model"]))
        run.slot.loaded = {"model": payload["model"], "kind": "sd", "options": payload["options"]}
        await self._send_job(run, "generate", {"job_id": run.worker_job_id, "params": params}, buffers)
        timeout = self.cfg["timeouts"]["generate"]
        while True:
            msg = await self._next_event(run, timeout)
            c = msg.content
            if msg.msg_type == "progress":
                steps = max(1, int(c.get("steps") or 1))
                batch = max(1, int(payload.get("batch", 1)))
                fraction = (len(run.generation_ids) + min(1.0, c.get("step", 0) / steps)) / batch
                self.queue.set_progress(run.job.id, fraction)
                self.emit(run.job.id, "progress", {**c, "image": len(run.generation_ids), "batch": batch,
                                                   "fraction": fraction})
            elif msg.msg_type == "preview":
                self.emit(run.job.id, "preview", dict(c), list(msg.buffers[:1]))
            elif msg.msg_type == "image":
                await self._record_image(run, payload, msg, await hash_task)
            elif msg.msg_type == "result":
                status = c.get("status")
                result: dict[str, Any] = {"generation_ids": run.generation_ids, "status": status,
                                          "info": c.get("info", {})}
                info = self.queue.complete(run.job.id, result)
                self.emit(run.job.id, "done" if info.state == "done" else info.state, result)
                return
            elif msg.msg_type == "error":
                raise _JobFailed(c.get("reason", "error"), c.get("message", ""))

    async def _model_hash(self, job_id: int, rel: str) -> str:
        """The model's short hash; a file not hashed before shows `model_hash` events while it is read."""
        loop = asyncio.get_running_loop()
        start = time.monotonic()

        def progress(done: int, total: int) -> None:
            data = {"model": rel, "done": done, "total": total, "fraction": done / total if total else 1.0,
                    "state": "done" if done >= total else "hashing", "seconds": round(time.monotonic() - start, 2)}
            loop.call_soon_threadsafe(self.emit, job_id, "model_hash", data)

        try:
            return (await asyncio.to_thread(self.model_hashes.get, rel, progress)).short
        except OSError as exc:
            log.warning("cannot hash %s: %s", rel, exc)
            return ""

    async def _record_image(self, run: JobRun, payload: dict[str, Any], msg: Message, model_hash: str) -> None:
        info = msg.content.get("info", {})
        params = {k: v for k, v in payload.items() if k not in ("batch", "preset_id", "parent_id")}
        params.update(seed=int(info.get("seed", payload["seed"])), model_hash=model_hash, batch=1,
                      components=payload["options"].get("components", {}))
        if info.get("retried_with_vae_tiling"):
            params["vae_tiling"] = True
        kind = payload.get("kind", payload.get("mode", "txt2img"))
        try:
            # The row and the job's list of finished images land in one transaction (see Recorder.record).
            rec = await asyncio.to_thread(
                self.recorder.record, msg.buffers[0], params, kind, payload.get("parent_id"),
                payload.get("preset_id"), info.get("elapsed"), info.get("vram_peak_mb"), job_id=run.job.id)
        except RecordingError as exc:
            raise _JobFailed("recording", str(exc)) from None
        run.generation_ids.append(rec.id)
        await asyncio.to_thread(make_thumbnail, rec.path, self.home.thumbnails, rec.uuid)
        if self.cfg["queue"]["auto_tag"]:
            self.queue.submit("tag", {}, priority=-10, generation_id=rec.id)
        self.emit(run.job.id, "image", {"generation_id": rec.id, "uuid": rec.uuid, "path": str(rec.path),
                                        "index": msg.content.get("index", 0), "seed": params["seed"],
                                        "width": rec.width, "height": rec.height})

    async def _run_upscale(self, run: JobRun) -> None:
        done = [int(i) for i in run.job.result.get("generation_ids", [])]
        if done:  # an earlier attempt recorded the upscale before it was interrupted
            resumed = {"generation_ids": done, "status": "done", "info": {"resumed": True}}
            self.queue.complete(run.job.id, resumed)
            self.emit(run.job.id, "done", resumed)
            return
        with db_session:
            gen = self.db.Generation[run.job.generation_id]
            source = self.recorder.file_path(gen.path)
            parent_params = dict(gen.params)
            parent_id = gen.id
        png = await asyncio.to_thread(_png_bytes, source)
        upscaler = run.job.payload["upscaler"]
        await self._send_job(run, "upscale", {"job_id": run.worker_job_id, "params": {"upscaler": upscaler}}, [png])
        while True:
            msg = await self._next_event(run, self.cfg["timeouts"]["generate"])
            if msg.msg_type == "progress":
                self.emit(run.job.id, "progress", dict(msg.content))
            elif msg.msg_type == "image":
                params = {k: v for k, v in parent_params.items() if k not in ("init_path", "mask_path")}
                params.update(upscaler=upscaler, upscaled_from=parent_id)
                w, h = png_size(msg.buffers[0])
                params.update(width=w, height=h)
                rec = await asyncio.to_thread(self.recorder.record, msg.buffers[0], params, "upscale", parent_id,
                                              None, msg.content.get("info", {}).get("elapsed"), job_id=run.job.id)
                run.generation_ids.append(rec.id)
                await asyncio.to_thread(make_thumbnail, rec.path, self.home.thumbnails, rec.uuid)
                self.emit(run.job.id, "image", {"generation_id": rec.id, "uuid": rec.uuid, "path": str(rec.path),
                                                "index": 0, "width": rec.width, "height": rec.height})
            elif msg.msg_type == "result":
                result: dict[str, Any] = {"generation_ids": run.generation_ids, "status": msg.content.get("status")}
                self.queue.complete(run.job.id, result)
                self.emit(run.job.id, "done", result)
                return
            elif msg.msg_type == "error":
                raise _JobFailed(msg.content.get("reason", "error"), msg.content.get("message", ""))

    def _llm_params(self) -> dict[str, Any]:
        llm = self.cfg["llm"]
        if not llm["default_model"]:
            raise _JobFailed("bad_params", "no LLM configured: set llm.default_model in config.json")
        options: dict[str, Any] = {"context_size": llm["context_size"]}
        mmproj = llm["default_mmproj"]
        try:
            entry = self.catalog().find(llm["default_model"], kind="llm")
            if not mmproj and entry.sidecar and entry.sidecar.mmproj:
                mmproj = entry.sidecar.mmproj
            if entry.sidecar and entry.sidecar.context_size:
                options["context_size"] = min(options["context_size"], entry.sidecar.context_size)
        except CatalogError as exc:
            raise _JobFailed("missing_file", str(exc)) from None
        if mmproj:
            options["mmproj"] = mmproj
        return {"model": entry.rel_path, "options": options}

    async def _run_chat_request(self, run: JobRun, messages: list[dict[str, Any]], params: dict[str, Any]
                                ) -> dict[str, Any]:
        base = self._llm_params()
        full = {**base, "max_tokens": 256, "temperature": 0.7, **params}
        run.slot.loaded = {"model": base["model"], "kind": "llm", "options": base["options"]}
        await self._send_job(run, "chat", {"job_id": run.worker_job_id, "messages": messages, "params": full})
        while True:
            msg = await self._next_event(run, self.cfg["timeouts"]["chat"])
            if msg.msg_type == "token":
                self.emit(run.job.id, "token", {"text": msg.content.get("text", "")})
            elif msg.msg_type == "result":
                return dict(msg.content)
            elif msg.msg_type == "error":
                raise _JobFailed(msg.content.get("reason", "error"), msg.content.get("message", ""))

    async def _run_chat(self, run: JobRun) -> None:
        payload = run.job.payload
        result = await self._run_chat_request(run, payload.get("messages", []), payload.get("params", {}))
        out = {"text": result.get("text", ""), "status": result.get("status"), "info": result.get("info", {})}
        self.queue.complete(run.job.id, out)
        self.emit(run.job.id, "done", out)

    async def _run_tag(self, run: JobRun) -> None:
        with db_session:
            gen = self.db.Generation.get(id=run.job.generation_id)
            if gen is None:
                raise _JobFailed("bad_params", "the image was deleted")
            prompt, negative, path = gen.prompt, gen.negative_prompt, self.recorder.file_path(gen.path)
        llm = self._llm_params()
        vision = bool(llm["options"].get("mmproj"))
        image_png = await asyncio.to_thread(_small_png, path, 336) if vision else None
        if not prompt and image_png is None:
            raise _JobFailed("bad_params", "nothing to tag from: no prompt and no vision projector")
        system = self.cfg["llm"]["system_prompts"]["tagging"]
        messages = tagging_messages(system, prompt, negative, image_png)
        # Not streamed: nobody watches tagging tokens, and one reply is cheaper than hundreds of events.
        result = await self._run_chat_request(run, messages, {"json_schema": TAG_SCHEMA, "max_tokens": 400,
                                                              "stream": False, "temperature": 0.2})
        try:
            tags = parse_tag_answer(result.get("text", ""))
        except TaggingError as exc:
            raise _JobFailed("bad_answer", str(exc)) from None
        source = "llm_vision" if vision else "llm_text"
        assert run.job.generation_id is not None  # a tag job is made for one image
        stored = store_llm_tags(self.db, run.job.generation_id, tags, source)
        out = {"tags": [{"name": n, "category": c} for n, c in tags], "stored": stored, "source": source}
        self.queue.complete(run.job.id, out)
        self.emit(run.job.id, "tagged", {"generation_id": run.job.generation_id, **out})

    async def _run_thumbnail(self, job: JobInfo) -> None:
        try:
            with db_session:
                gen = self.db.Generation[job.generation_id]
                path, gen_uuid = self.recorder.file_path(gen.path), gen.uuid
            await asyncio.to_thread(make_thumbnail, path, self.home.thumbnails, gen_uuid)
            self.queue.complete(job.id, {})
        except Exception as exc:  # noqa: BLE001 - a bad file fails its own job only
            self.queue.fail(job.id, f"thumbnail: {exc}", retry=False)
        finally:
            self.wake()  # a slot is free: dispatch the next one now, not at the next tick



class _JobFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _texts(values: Any, what: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ParamError(f"{what}: give a list of tag names, got {values!r}")
    return list(values)


def _png_bytes(path: Path) -> bytes:
    """The image as PNG bytes (converted when it is another format)."""
    data = path.read_bytes()
    if data.startswith(b"\x89PNG"):
        return data
    with Image.open(io.BytesIO(data)) as im:
        out = io.BytesIO()
        im.convert("RGBA" if "A" in im.mode else "RGB").save(out, "PNG")
        return out.getvalue()


def _small_png(path: Path, size: int) -> bytes:
    with Image.open(path) as opened:
        im = opened.convert("RGB")
        im.thumbnail((size, size))
        out = io.BytesIO()
        im.save(out, "PNG")
        return out.getvalue()
