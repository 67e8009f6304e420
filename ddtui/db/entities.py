"""Pony ORM entities for everything ddtui stores, defined on a fresh `Database` per opened file.

Entities are defined by `define_entities(db)` (not at import time) so that one process can open several
history files, as the tests and the benchmark do. No image bytes are ever stored: generations point at
files under the output folder.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pony.orm import Database, Json, Optional, PrimaryKey, Required, Set, composite_key

GENERATION_KINDS = ("txt2img", "img2img", "inpaint", "upscale", "variation", "import")
TAG_CATEGORIES = ("subject", "style", "mood", "general")
TAG_SOURCES = ("user", "llm_text", "llm_vision", "import")
JOB_TYPES = ("generate", "upscale", "tag", "thumbnail", "chat")
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")


def utcnow() -> datetime:
    """Naive UTC timestamps: SQLite stores them as sortable ISO text."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def define_entities(db: Database) -> None:
    """Attach every entity to `db` (as attributes: db.Generation, db.Tag, ...)."""

    class Generation(db.Entity):
        _table_ = "generation"
        id = PrimaryKey(int, auto=True)
        uuid = Required(str, unique=True)
        path = Required(str)  # relative to the output folder when inside it, else absolute
        kind = Required(str, default="txt2img")
        prompt = Optional(str)
        negative_prompt = Optional(str)
        seed = Required(int, size=64, default=0)
        width = Required(int, default=0)
        height = Required(int, default=0)
        steps = Required(int, default=0)
        cfg = Required(float, default=0.0)
        sampler = Optional(str)
        scheduler = Optional(str)
        strength = Optional(float)
        model = Optional(str)  # catalog path of the main model, e.g. stable-diffusion/x.safetensors
        components = Required(Json, default={})  # component name -> catalog path
        model_hash = Optional(str)
        loras = Required(Json, default=[])  # [{"name": ..., "weight": ...}]
        parent = Optional("Generation", reverse="children")
        children = Set("Generation", reverse="parent")
        preset = Optional("ImagePreset")
        duration_s = Optional(float)
        vram_peak_mb = Optional(float)
        rating = Required(int, default=0)
        favorite = Required(bool, default=False)
        created = Required(datetime, default=utcnow)
        params = Required(Json, default={})  # every parameter, so an item can be re-run exactly
        content_hash = Optional(str)  # sha256 of the file bytes: recognises the same image imported twice
        source = Required(str, default="ddtui")  # which tool made it (imports: a1111, comfyui, ...)
        tagged_at = Optional(datetime)
        tags_edited = Required(bool, default=False)  # a user edited the tags: the LLM never overwrites them
        tags = Set("GenerationTag")
        jobs = Set("Job")

    class Tag(db.Entity):
        _table_ = "tag"
        id = PrimaryKey(int, auto=True)
        name = Required(str)
        category = Required(str, default="general")
        use_count = Required(int, default=0)  # kept by triggers, so the facet list never counts rows
        generations = Set("GenerationTag")
        composite_key(name, category)

    class GenerationTag(db.Entity):
        _table_ = "generation_tag"
        generation = Required(Generation)
        tag = Required(Tag)
        source = Required(str, default="user")
        confidence = Required(float, default=1.0)
        created = Required(datetime, default=utcnow)
        PrimaryKey(generation, tag)

    class ImagePreset(db.Entity):
        _table_ = "image_preset"
        id = PrimaryKey(int, auto=True)
        name = Required(str, unique=True)
        model = Required(str)
        components = Required(Json, default={})
        flags = Required(Json, default={})
        params = Required(Json, default={})  # steps, cfg, sampler, scheduler, width, height, ...
        description = Optional(str)
        created = Required(datetime, default=utcnow)
        updated = Required(datetime, default=utcnow)
        generations = Set(Generation)

    class LLMPreset(db.Entity):
        _table_ = "llm_preset"
        id = PrimaryKey(int, auto=True)
        name = Required(str, unique=True)
        model = Required(str)
        mmproj = Optional(str)
        context_size = Required(int, default=4096)
        system_prompts = Required(Json, default={})  # role (tagging, enhance, ...) -> system prompt
        created = Required(datetime, default=utcnow)
        updated = Required(datetime, default=utcnow)

    class Style(db.Entity):
        _table_ = "style"
        id = PrimaryKey(int, auto=True)
        name = Required(str, unique=True)
        prompt = Required(str, default="{prompt}")
        negative_prompt = Optional(str)
        created = Required(datetime, default=utcnow)

    class PromptSnippet(db.Entity):
        _table_ = "prompt_snippet"
        id = PrimaryKey(int, auto=True)
        label = Required(str)
        content = Required(str)
        category = Required(str, default="general")
        use_count = Required(int, default=0)
        created = Required(datetime, default=utcnow)

    class Job(db.Entity):
        _table_ = "job"
        id = PrimaryKey(int, auto=True)
        type = Required(str)
        payload = Required(Json, default={})
        state = Required(str, default="queued")
        priority = Required(int, default=0)  # higher runs first
        attempts = Required(int, default=0)
        max_attempts = Required(int, default=3)
        error = Optional(str)
        worker = Optional(str)
        progress = Required(float, default=0.0)
        result = Required(Json, default={})
        group = Optional(str)  # jobs submitted together (a batch, an exploration grid)
        generation = Optional(Generation)  # the image a tag/thumbnail/upscale job works on
        not_before = Optional(datetime)  # retry backoff: not dispatched before this time
        created = Required(datetime, default=utcnow)
        started = Optional(datetime)
        finished = Optional(datetime)

    class Setting(db.Entity):
        _table_ = "setting"
        key = PrimaryKey(str)
        value = Required(Json)

    class ModelFile(db.Entity):
        """A model file's hash and family, valid while its size and modification time stay the same (v3)."""
        _table_ = "model_file"
        path = PrimaryKey(str)  # relative to the model folder, as the catalog names it
        size = Required(int, size=64)
        mtime_ns = Required(int, size=64)
        sha256 = Required(str)
        family = Optional(str)
        seconds = Required(float, default=0.0)  # how long hashing took
        hashed = Required(datetime, default=utcnow)

    # Keep a handle on each class as an attribute of the Database for callers.
    for cls in (Generation, Tag, GenerationTag, ImagePreset, LLMPreset, Style, PromptSnippet, Job, Setting,
                ModelFile):
        setattr(db, cls.__name__, cls)
