"""Smart tagging: what the LLM is asked, how its answer is read, and how tags are stored.

The LLM answers under a JSON schema with tags in categories (subject, style, mood), from the pixels when a
vision projector is configured, otherwise from the prompt. Tags are normalised (lowercase, trimmed, 2 to 40
characters, at most 12 per image) and stored with their source. Tags a user edited are never overwritten.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Iterable

from pony.orm import Database, db_session

from ..db.entities import TAG_CATEGORIES, TAG_SOURCES, utcnow

MAX_TAGS = 12
MIN_LEN, MAX_LEN = 2, 40
LLM_CATEGORIES = ("subject", "style", "mood")
TAG_PATTERN = "^[a-zA-Z0-9\u00c0-\u024f][a-zA-Z0-9\u00c0-\u024f '-]{1,39}$"

TAG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_TAGS,
            "items": {
                "type": "object",
                "properties": {
                    # Letters, digits, spaces and hyphens only: no control characters can slip into strings.
                    "name": {"type": "string", "pattern": TAG_PATTERN},
                    "category": {"type": "string", "enum": list(LLM_CATEGORIES)},
                },
                "required": ["name", "category"],
            },
        }
    },
    "required": ["tags"],
}


class TaggingError(Exception):
    """The LLM's answer held no usable tags (the job is retried; the image stays untagged)."""


_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def normalise_tag(name: Any) -> str | None:
    """Lowercase, trimmed, inner whitespace collapsed, edge punctuation dropped; None if out of bounds."""
    if not isinstance(name, str):
        return None
    text = _SPACE.sub(" ", name).strip().lower()
    text = _EDGE.sub("", text).strip()
    if not MIN_LEN <= len(text) <= MAX_LEN:
        return None
    if any(ord(c) < 32 for c in text):
        return None
    return text


def normalise_tags(pairs: Iterable[tuple[Any, Any]], limit: int = MAX_TAGS) -> list[tuple[str, str]]:
    """Normalise and de-duplicate (name, category) pairs, keeping the first category seen for a name."""
    out: dict[str, str] = {}
    for name, category in pairs:
        norm = normalise_tag(name)
        if norm is None or norm in out:
            continue
        cat = category.strip().lower() if isinstance(category, str) else "general"
        out[norm] = cat if cat in TAG_CATEGORIES else "general"
        if len(out) >= limit:
            break
    return list(out.items())


def parse_tag_answer(text: str) -> list[tuple[str, str]]:
    """Read the LLM's JSON answer leniently (raw control characters, prose around the object)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise TaggingError(f"the answer holds no JSON object: {text[:80]!r}")
    try:
        data = json.loads(text[start:end + 1], strict=False)
    except json.JSONDecodeError as exc:
        raise TaggingError(f"the answer is not valid JSON ({exc.msg})") from None
    items = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TaggingError("the answer has no 'tags' list")
    pairs = [(i.get("name"), i.get("category")) for i in items if isinstance(i, dict)]
    tags = normalise_tags(pairs)
    if not tags:
        raise TaggingError("the answer held no usable tags")
    return tags


def tagging_messages(system: str, prompt: str, negative: str = "", image_png: bytes | None = None
                     ) -> list[dict[str, Any]]:
    """Chat messages for one image: the pixels when given (vision), else the prompt text."""
    instruction = (f"Give up to {MAX_TAGS} short tags for this image, each with a category "
                   f"({', '.join(LLM_CATEGORIES)}).")
    if image_png is not None:
        uri = "data:image/png;base64," + base64.b64encode(image_png).decode("ascii")
        user: Any = [
            {"type": "image_url", "image_url": {"url": uri}},
            {"type": "text", "text": f"{instruction}\nThe prompt that made it: {prompt}"},
        ]
    else:
        user = f"{instruction}\nPrompt: {prompt}" + (f"\nAvoided: {negative}" if negative else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def store_llm_tags(db: Database, generation_id: int, tags: list[tuple[str, str]], source: str,
                   confidence: float = 0.8) -> bool:
    """Replace the image's LLM tags with `tags`; returns False (and changes nothing) if a user edited them."""
    if source not in TAG_SOURCES:
        raise ValueError(f"unknown tag source {source!r}")
    with db_session:
        gen = db.Generation.get(id=generation_id)
        if gen is None:
            return False
        if gen.tags_edited:
            gen.tagged_at = gen.tagged_at or utcnow()
            return False
        for link in list(gen.tags):
            if link.source in ("llm_text", "llm_vision"):
                link.delete()
        kept = {link.tag.name for link in gen.tags}
        for name, category in tags:
            if name in kept:
                continue
            tag = _tag(db, name, category)
            db.GenerationTag(generation=gen, tag=tag, source=source, confidence=confidence)
        gen.tagged_at = utcnow()
        return True


def set_user_tags(db: Database, generation_id: int, add: Iterable[str] = (), remove: Iterable[str] = (),
                  category: str = "general") -> list[str]:
    """A user's edit: add and remove tags; marks the image so the LLM never overwrites its tags."""
    with db_session:
        gen = db.Generation.get(id=generation_id)
        if gen is None:
            raise KeyError(generation_id)
        drop = {n for n in (normalise_tag(r) for r in remove) if n}
        for link in list(gen.tags):
            if link.tag.name in drop:
                link.delete()
        have = {link.tag.name for link in gen.tags}
        for name, cat in normalise_tags((a, category) for a in add):
            if name not in have:
                db.GenerationTag(generation=gen, tag=_tag(db, name, cat), source="user", confidence=1.0)
                have.add(name)
        gen.tags_edited = True
        return sorted(have)


def tags_of(db: Database, generation_id: int) -> list[dict[str, Any]]:
    with db_session:
        gen = db.Generation.get(id=generation_id)
        if gen is None:
            return []
        return sorted(({"name": link.tag.name, "category": link.tag.category, "source": link.source,
                        "confidence": link.confidence} for link in gen.tags),
                      key=lambda t: (t["category"], t["name"]))


def _tag(db: Database, name: str, category: str) -> Any:
    # A name keeps the category it was first stored with, so facets do not split one word in two.
    existing = db.Tag.select(lambda t: t.name == name).first()
    return existing or db.Tag(name=name, category=category)
