"""Synthetic history rows for benchmarks and large-history tests: many generations with tags, fast.

Rows go in through plain SQL in one transaction, so the same triggers that serve real recording keep the
full-text index and tag counts in sync. No image files are written; paths point at names that do not exist.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path

SUBJECTS = ["fox", "castle", "astronaut", "forest", "city", "dragon", "portrait", "ocean", "robot", "cat",
            "mountain", "lighthouse", "garden", "train", "owl", "desert", "violin", "ship", "bridge", "tiger"]
STYLES = ["watercolor", "oil painting", "pixel art", "photograph", "ink sketch", "3d render", "anime",
          "charcoal", "low poly", "cinematic", "isometric", "art nouveau"]
MOODS = ["serene", "gloomy", "joyful", "mysterious", "epic", "cozy", "melancholic", "vibrant"]
ADJECTIVES = ["red", "ancient", "tiny", "glowing", "misty", "golden", "frozen", "neon", "quiet", "wild"]
MODELS = ["stable-diffusion/sdxl-base.safetensors", "stable-diffusion/flux1-dev-q8.gguf",
          "stable-diffusion/sd15.safetensors", "stable-diffusion/z-image-turbo.gguf"]
KINDS = ["txt2img"] * 8 + ["img2img", "inpaint", "upscale", "variation"]


def fill_history(db_path: Path, count: int, tags_per_image: int = 5, seed: int = 0,
                 start: datetime | None = None) -> None:
    """Append `count` generations with `tags_per_image` tags each to the database at `db_path`."""
    rng = random.Random(seed)
    start = start or datetime(2025, 1, 1)
    conn = sqlite3.connect(str(db_path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    tag_vocab = ([(s, "subject") for s in SUBJECTS] + [(s, "style") for s in STYLES]
                 + [(m, "mood") for m in MOODS] + [(f"detail {i}", "general") for i in range(60)])
    tag_ids: list[int] = []
    for name, category in tag_vocab:
        conn.execute("INSERT OR IGNORE INTO tag(name, category, use_count) VALUES (?, ?, 0)", (name, category))
        tag_ids.append(conn.execute("SELECT id FROM tag WHERE name = ? AND category = ?",
                                    (name, category)).fetchone()[0])
    # The per-link trigger rebuilds one row's tag text; for a bulk fill, disable it and write the text once.
    conn.execute("DROP TRIGGER IF EXISTS generation_tag_insert")
    gen_sql = """INSERT INTO generation(uuid, path, kind, prompt, negative_prompt, seed, width, height, steps,
        cfg, sampler, scheduler, model, components, model_hash, loras, rating, favorite, created, params,
        content_hash, source, tags_edited) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, '[]', ?, ?, ?, ?, ?,
        'ddtui', 0)"""
    link_sql = ("INSERT INTO generation_tag(generation, tag, source, confidence, created) "
                "VALUES (?, ?, 'llm_text', 0.9, ?)")
    for i in range(count):
        subject, style, mood = rng.choice(SUBJECTS), rng.choice(STYLES), rng.choice(MOODS)
        prompt = f"a {rng.choice(ADJECTIVES)} {subject} in a {mood} scene, {style}, detailed, number {i}"
        created = (start + timedelta(seconds=37 * i)).isoformat(sep=" ")
        params = {"prompt": prompt, "steps": 20, "cfg": 7.0}
        cur = conn.execute(gen_sql, (
            uuid.UUID(int=rng.getrandbits(128)).hex, f"synthetic/{i}.png", rng.choice(KINDS), prompt,
            "blurry", rng.getrandbits(32), 512, 512, 20, 7.0, "euler_a", "karras", rng.choice(MODELS),
            "0123456789", rng.choice([0, 0, 0, 1, 2, 3, 4, 5]), int(rng.random() < 0.1), created,
            json.dumps(params), ""))
        gid = cur.lastrowid
        chosen = {tag_ids[SUBJECTS.index(subject)], tag_ids[len(SUBJECTS) + STYLES.index(style)],
                  tag_ids[len(SUBJECTS) + len(STYLES) + MOODS.index(mood)]}
        while len(chosen) < tags_per_image:
            chosen.add(rng.choice(tag_ids))
        for tid in chosen:
            conn.execute(link_sql, (gid, tid, created))
    conn.execute("""UPDATE tag SET use_count = (SELECT count(*) FROM generation_tag gt WHERE gt.tag = tag.id)""")
    conn.execute("""UPDATE generation_fts SET tags = (
        SELECT coalesce(group_concat(t.name, ' '), '') FROM generation_tag gt JOIN tag t ON t.id = gt.tag
        WHERE gt.generation = generation_fts.rowid)""")
    conn.execute("COMMIT")
    conn.close()
    # Put the trigger back exactly as the schema defines it.
    from .schema import FTS_SQL

    conn = sqlite3.connect(str(db_path), isolation_level=None)
    for stmt in FTS_SQL:
        conn.execute(stmt)
    conn.execute("ANALYZE")
    conn.close()
