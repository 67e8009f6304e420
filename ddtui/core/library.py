"""Every write a client can ask for, with its rule applied once: ratings, favorites, tags, deletion, styles,
snippets, presets and settings.

The service calls these on behalf of the TUI and the CLI (never the clients themselves) and emits one change
event per successful call. Each method checks its input first and raises `EditError` with a message a user
can act on, so a refused write changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pony.orm import Database, db_session

from ..catalog.models import FLAGS, CatalogError, check_params
from ..db.entities import utcnow
from ..db.records import TagRecord
from .rules import stored_file
from .styles import StyleError, check_style_text
from .tagging import MAX_LEN, MIN_LEN, normalise_tag, set_user_tags, tags_of
from .thumbnails import thumbnail_path

LLM_ROLES = ("tagging", "enhance", "variations", "styles")
PRESET_KINDS = ("image", "llm")
MAX_SETTING_BYTES = 64 * 1024


class EditError(ValueError):
    """A write the service refuses; the message names the field or item and what is wrong."""


class DatabaseBusy(Exception):
    """The database stayed locked by another process past the busy timeout; nothing was changed."""


class NotFound(EditError):
    """The item, style, snippet or preset named does not exist (any more)."""


def _ids(values: Any, what: str = "ids") -> list[int]:
    if isinstance(values, (int, str)):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise EditError(f"{what}: give one or more history ids")
    try:
        return list(dict.fromkeys(int(v) for v in values))
    except (TypeError, ValueError):
        raise EditError(f"{what}: history ids are whole numbers, got {values!r}") from None


class Library:
    """The writes on one home's database (used by the core service only)."""

    def __init__(self, db: Database, output_dir: Path, thumbnails: Path) -> None:
        self.db = db
        self.output_dir = Path(output_dir)
        self.thumbnails = Path(thumbnails)

    # ------------------------------------------------------------------ history items

    def _existing(self, ids: list[int]) -> list[Any]:
        gens = [self.db.Generation.get(id=i) for i in ids]
        missing = [i for i, g in zip(ids, gens) if g is None]
        if missing:
            raise NotFound(f"no history item {', '.join(f'#{i}' for i in missing)}")
        return gens

    def rate(self, ids: Any, rating: Any) -> list[int]:
        wanted = _ids(ids)
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise EditError(f"rating must be a whole number from 0 to 5, got {rating!r}")
        with db_session:
            for gen in self._existing(wanted):
                gen.rating = rating
        return wanted

    def favorite(self, ids: Any, favorite: Any) -> list[int]:
        wanted = _ids(ids)
        if not isinstance(favorite, bool):
            raise EditError(f"favorite must be true or false, got {favorite!r}")
        with db_session:
            for gen in self._existing(wanted):
                gen.favorite = favorite
        return wanted

    def edit_tags(self, generation_id: Any, add: Iterable[str] = (), remove: Iterable[str] = (),
                  replace: Iterable[str] | None = None) -> list[TagRecord]:
        """A user's tag edit (the LLM never overwrites it afterwards); `replace` sets the whole list."""
        (gid,) = _ids(generation_id, "id")
        add, remove = [str(a) for a in add], [str(r) for r in remove]
        bad = [t for t in [*add, *(replace or [])] if normalise_tag(t) is None]
        if bad:
            raise EditError(f"not a usable tag: {bad[0]!r} ({MIN_LEN}-{MAX_LEN} characters after trimming)")
        with db_session:
            self._existing([gid])
        if replace is not None:
            wanted = {normalise_tag(t) for t in replace}
            current = {t["name"] for t in tags_of(self.db, gid)}
            add, remove = sorted(n for n in wanted if n and n not in current), sorted(current - wanted)
        set_user_tags(self.db, gid, add=add, remove=remove)
        return [TagRecord(t["name"], t["category"], t["source"]) for t in tags_of(self.db, gid)]

    def delete(self, ids: Any, files: bool = False) -> tuple[list[int], int, list[str]]:
        """Delete items (and their image files with `files`); returns (deleted ids, files removed, problems)."""
        wanted = _ids(ids)
        deleted: list[int] = []
        removed = 0
        problems: list[str] = []
        for gid in wanted:
            with db_session:
                gen = self.db.Generation.get(id=gid)
                if gen is None:
                    problems.append(f"no history item #{gid}")
                    continue
                path, uuid = stored_file(gen.path, self.output_dir), gen.uuid
                gen.delete()  # children stay (Pony clears their optional parent link), as do past jobs
            # The row goes first: a crash after it leaves a stray file (adopted again), never a row without file.
            deleted.append(gid)
            thumbnail_path(self.thumbnails, uuid).unlink(missing_ok=True)
            if files:
                try:
                    if path.exists():
                        path.unlink()
                        removed += 1
                except OSError as exc:
                    problems.append(f"#{gid}: the file {path} could not be deleted: {exc.strerror or exc}")
        return deleted, removed, problems

    # ------------------------------------------------------------------ styles and snippets

    def save_style(self, style_id: Any, name: str, prompt: str, negative: str = "") -> int:
        """Create or update (and rename) a style."""
        try:
            check_style_text(name, prompt, negative)
        except StyleError as exc:
            raise EditError(str(exc)) from None
        name = name.strip()
        with db_session:
            other = self.db.Style.get(name=name)
            if other is not None and other.id != style_id:
                raise EditError(f"there is already a style named {name!r}")
            if style_id is None:
                style = self.db.Style(name=name, prompt=prompt, negative_prompt=negative)
            else:
                style = self._row(self.db.Style, style_id, "style")
                style.set(name=name, prompt=prompt, negative_prompt=negative)
            style.flush()
            return int(style.id)

    def save_style_by_name(self, name: str, prompt: str, negative: str = "") -> int:
        """Create a style, or overwrite the one of that name (prompt tools' "save")."""
        with db_session:
            existing = self.db.Style.get(name=name.strip())
            style_id = existing.id if existing is not None else None
        return self.save_style(style_id, name, prompt, negative)

    def delete_style(self, style_id: Any) -> int:
        with db_session:
            self._row(self.db.Style, style_id, "style").delete()
        return int(style_id)

    def save_snippet(self, snippet_id: Any, label: str, content: str, category: str = "general") -> int:
        if not str(label).strip():
            raise EditError("label: a snippet needs a label")
        if len(label) > 120:
            raise EditError(f"label: at most 120 characters, got {len(label)}")
        if not str(content).strip():
            raise EditError("content: a snippet needs some text")
        if len(content) > 4000:
            raise EditError(f"content: at most 4000 characters, got {len(content)}")
        category = str(category).strip().lower() or "general"
        with db_session:
            if snippet_id is None:
                snippet = self.db.PromptSnippet(label=label.strip(), content=content, category=category)
            else:
                snippet = self._row(self.db.PromptSnippet, snippet_id, "snippet")
                snippet.set(label=label.strip(), content=content, category=category)
            snippet.flush()
            return int(snippet.id)

    def delete_snippet(self, snippet_id: Any) -> int:
        with db_session:
            self._row(self.db.PromptSnippet, snippet_id, "snippet").delete()
        return int(snippet_id)

    def use_snippet(self, snippet_id: Any) -> int:
        with db_session:
            snippet = self._row(self.db.PromptSnippet, snippet_id, "snippet")
            snippet.use_count += 1
            return int(snippet.use_count)

    # ------------------------------------------------------------------ presets

    def save_preset(self, kind: str, fields: dict[str, Any]) -> int:
        if kind not in PRESET_KINDS:
            raise EditError(f"preset kind must be image or llm, got {kind!r}")
        if not isinstance(fields, dict):
            raise EditError("preset: give its fields as an object")
        name = str(fields.get("name") or "").strip()
        if not name:
            raise EditError("name: a preset needs a name")
        if len(name) > 80:
            raise EditError(f"name: at most 80 characters, got {len(name)}")
        preset_id = fields.get("id")
        if not fields.get("model"):
            raise EditError("model: choose an image model" if kind == "image" else "model: choose an LLM")
        values = self._image_values(fields) if kind == "image" else self._llm_values(fields)
        entity = self.db.ImagePreset if kind == "image" else self.db.LLMPreset
        what = "image preset" if kind == "image" else "LLM preset"
        with db_session:
            other = entity.get(name=name)
            if other is not None and other.id != preset_id:
                raise EditError(f"name: there is already an {what} named {name!r}")
            if preset_id is None:
                preset = entity(name=name, **values)
            else:
                preset = self._row(entity, preset_id, what)
                preset.set(name=name, **values, updated=utcnow())
            preset.flush()
            return int(preset.id)

    @staticmethod
    def _image_values(fields: dict[str, Any]) -> dict[str, Any]:
        try:
            params = check_params(fields.get("params") or {}, "params")
        except CatalogError as exc:
            raise EditError(str(exc)) from None
        flags = fields.get("flags") or {}
        components = fields.get("components") or {}
        if not isinstance(flags, dict) or not isinstance(components, dict):
            raise EditError("flags and components must be objects")
        unknown = sorted(set(flags) - set(FLAGS))
        if unknown:
            raise EditError(f"flags: unknown flag(s) {', '.join(unknown)} (known: {', '.join(FLAGS)})")
        if any(not isinstance(v, bool) for v in flags.values()):
            raise EditError("flags: each flag is true or false")
        return {"model": str(fields["model"]), "components": {str(k): str(v) for k, v in components.items()},
                "flags": dict(flags), "params": params, "description": str(fields.get("description") or "")}

    @staticmethod
    def _llm_values(fields: dict[str, Any]) -> dict[str, Any]:
        context = fields.get("context_size", 4096)
        if isinstance(context, bool) or not isinstance(context, int) or not 64 <= context <= 1_048_576:
            raise EditError(f"context size must be a whole number from 64 to 1048576, got {context!r}")
        prompts = fields.get("system_prompts") or {}
        if not isinstance(prompts, dict):
            raise EditError("system prompts: give one text per role")
        unknown = sorted(set(prompts) - set(LLM_ROLES))
        if unknown:
            raise EditError(f"system prompts: unknown role(s) {', '.join(unknown)} (known: {', '.join(LLM_ROLES)})")
        return {"model": str(fields["model"]), "mmproj": str(fields.get("mmproj") or ""), "context_size": context,
                "system_prompts": {k: str(v) for k, v in prompts.items()}}

    def delete_preset(self, kind: str, preset_id: Any) -> int:
        if kind not in PRESET_KINDS:
            raise EditError(f"preset kind must be image or llm, got {kind!r}")
        entity = self.db.ImagePreset if kind == "image" else self.db.LLMPreset
        with db_session:
            self._row(entity, preset_id, f"{kind} preset").delete()
        return int(preset_id)

    # ------------------------------------------------------------------ settings (the Setting table)

    def set_setting(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key or len(key) > 200:
            raise EditError(f"setting key must be a short text, got {key!r}")
        if len(json.dumps(value)) > MAX_SETTING_BYTES:
            raise EditError(f"setting {key!r}: the value is larger than {MAX_SETTING_BYTES // 1024} KB")
        with db_session:
            row = self.db.Setting.get(key=key)
            if row is None:
                self.db.Setting(key=key, value=value)
            else:
                row.value = value

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _row(entity: Any, row_id: Any, what: str) -> Any:
        try:
            row = entity.get(id=int(row_id))
        except (TypeError, ValueError):
            raise EditError(f"{what} id must be a whole number, got {row_id!r}") from None
        if row is None:
            raise NotFound(f"no {what} with id {row_id}")
        return row
