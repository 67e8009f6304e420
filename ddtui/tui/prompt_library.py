"""The prompt library as the screens use it: styles and snippets, read and written from worker threads.

Every function is blocking (call it from a `@work(thread=True)` worker) and returns plain data, never Pony
entities. A style's text is checked with `core.styles.check_style_text` before it is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pony.orm import db_session

from ..core.styles import PLACEHOLDER, StyleError, check_style_text

@dataclass
class StyleData:
    id: int | None
    name: str
    prompt: str = PLACEHOLDER + ", "
    negative_prompt: str = ""


@dataclass
class SnippetData:
    id: int | None
    label: str
    content: str
    category: str = "general"
    use_count: int = 0


class SnippetError(ValueError):
    """A snippet that cannot be saved; the message names the field."""


def list_styles(db: Any) -> list[StyleData]:
    with db_session:
        return [StyleData(s.id, s.name, s.prompt, s.negative_prompt or "")
                for s in db.Style.select().order_by(lambda s: s.name)]


def field_errors(name: str, prompt: str, negative: str) -> dict[str, str]:
    """StyleError messages per field ("name", "prompt", "negative"), each checked on its own."""
    errors: dict[str, str] = {}
    label = name.strip() or "(unnamed)"
    for key, args in (("name", (name, "", "")), ("prompt", (label, prompt, "")), ("negative", (label, "", negative))):
        try:
            check_style_text(*args)
        except StyleError as exc:
            errors[key] = str(exc)
    return errors


def save_style_data(db: Any, data: StyleData) -> int:
    """Create or update (and rename) a style; StyleError when its text is broken or the name is taken."""
    check_style_text(data.name, data.prompt, data.negative_prompt)
    name = data.name.strip()
    with db_session:
        other = db.Style.get(name=name)
        if other is not None and other.id != data.id:
            raise StyleError(f"there is already a style named {name!r}")
        if data.id is None:
            style = db.Style(name=name, prompt=data.prompt, negative_prompt=data.negative_prompt)
        else:
            style = db.Style[data.id]
            style.set(name=name, prompt=data.prompt, negative_prompt=data.negative_prompt)
        style.flush()
        return style.id


def delete_style(db: Any, style_id: int) -> None:
    with db_session:
        style = db.Style.get(id=style_id)
        if style is not None:
            style.delete()


def list_snippets(db: Any, sort: str = "use") -> list[SnippetData]:
    with db_session:
        rows = [SnippetData(s.id, s.label, s.content, s.category, s.use_count) for s in db.PromptSnippet.select()]
    if sort == "label":
        return sorted(rows, key=lambda s: (s.label.lower(), s.id or 0))
    return sorted(rows, key=lambda s: (-s.use_count, s.label.lower(), s.id or 0))


def save_snippet(db: Any, data: SnippetData) -> int:
    if not data.label.strip():
        raise SnippetError("label: a snippet needs a label")
    if not data.content.strip():
        raise SnippetError("content: a snippet needs some text")
    category = data.category.strip().lower() or "general"
    with db_session:
        if data.id is None:
            snippet = db.PromptSnippet(label=data.label.strip(), content=data.content, category=category)
        else:
            snippet = db.PromptSnippet[data.id]
            snippet.set(label=data.label.strip(), content=data.content, category=category)
        snippet.flush()
        return snippet.id


def count_snippet_use(db: Any, snippet_id: int) -> int:
    with db_session:
        snippet = db.PromptSnippet[snippet_id]
        snippet.use_count += 1
        return snippet.use_count


def delete_snippet(db: Any, snippet_id: int) -> None:
    with db_session:
        snippet = db.PromptSnippet.get(id=snippet_id)
        if snippet is not None:
            snippet.delete()
