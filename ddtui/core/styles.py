"""Styles: reusable prompt text applied by a `{prompt}` placeholder (or appended), negatives merged.

A style's prompt may hold one `{prompt}` placeholder where the user's prompt goes; without one, the style is
appended. Any other brace text (`{promt}`, `{`, `{0}`) is a broken placeholder and is refused when the style is
saved, so applying a style never fails half-way.
"""

from __future__ import annotations

import re
from typing import Iterable

from pony.orm import Database, db_session

PLACEHOLDER = "{prompt}"
_BRACES = re.compile(r"[{}]")


class StyleError(ValueError):
    """A style that cannot be saved or applied; the message names it and the problem."""


def check_style_text(name: str, prompt: str, negative: str = "") -> None:
    if not name or not name.strip():
        raise StyleError("a style needs a name")
    if len(name) > 80:
        raise StyleError(f"style name is {len(name)} characters; at most 80")
    for what, text in (("prompt", prompt), ("negative prompt", negative)):
        if len(text) > 4000:
            raise StyleError(f"style {name!r}: the {what} is longer than 4000 characters")
        rest = text.replace(PLACEHOLDER, "", 1 if what == "prompt" else 0)
        if what == "negative prompt" and PLACEHOLDER in text:
            raise StyleError(f"style {name!r}: {PLACEHOLDER} belongs in the prompt, not the negative prompt")
        if PLACEHOLDER in rest:
            raise StyleError(f"style {name!r}: {PLACEHOLDER} may appear only once")
        if _BRACES.search(rest):
            bad = re.search(r"\{[^{}]*\}?|\}", rest)
            raise StyleError(f"style {name!r}: broken placeholder {bad.group(0) if bad else '{'!r} in the {what}; "
                             f"only {PLACEHOLDER} is allowed")


def _merge_negatives(*parts: str) -> str:
    seen: dict[str, None] = {}
    for part in parts:
        for piece in part.split(","):
            piece = piece.strip()
            if piece and piece.lower() not in (k.lower() for k in seen):
                seen[piece] = None
    return ", ".join(seen)


def apply_style(style_prompt: str, style_negative: str, prompt: str, negative: str) -> tuple[str, str]:
    if PLACEHOLDER in style_prompt:
        new_prompt = style_prompt.replace(PLACEHOLDER, prompt)
    elif style_prompt.strip():
        new_prompt = f"{prompt}, {style_prompt.strip()}" if prompt.strip() else style_prompt.strip()
    else:
        new_prompt = prompt
    return new_prompt, _merge_negatives(negative, style_negative)


def apply_styles(db: Database, names: Iterable[str], prompt: str, negative: str = "") -> tuple[str, str]:
    with db_session:
        for name in names:
            style = db.Style.get(name=name)
            if style is None:
                known = ", ".join(sorted(s.name for s in db.Style.select())) or "(none yet)"
                raise StyleError(f"no style named {name!r} (saved styles: {known})")
            check_style_text(style.name, style.prompt, style.negative_prompt)
            prompt, negative = apply_style(style.prompt, style.negative_prompt, prompt, negative)
    return prompt, negative


def save_style(db: Database, name: str, prompt: str, negative: str = "") -> int:
    check_style_text(name, prompt, negative)
    with db_session:
        style = db.Style.get(name=name)
        if style is None:
            style = db.Style(name=name.strip(), prompt=prompt, negative_prompt=negative)
        else:
            style.prompt, style.negative_prompt = prompt, negative
        style.flush()
        return int(style.id)
