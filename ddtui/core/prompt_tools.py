"""Prompt tools that use the local LLM: enhancement, subtle rewrites for exploration, style extraction.

Each tool is a pair: the chat messages (and JSON schema where the answer is structured) sent to the LLM
worker, and a lenient reader of the answer. The answers of small or random models are cleaned, bounded and
de-duplicated here, so callers always get usable text or a clear `PromptToolError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .styles import PLACEHOLDER, StyleError, check_style_text


class PromptToolError(Exception):
    """The LLM's answer could not be used (the message says why)."""


MAX_PROMPT = 1000

def variations_schema(n: int, prompt: str = "") -> dict[str, Any]:
    # A rewrite is about as long as its prompt; the bound keeps n of them inside a small context.
    longest = max(24, min(400, 2 * len(prompt) + 24))
    item = {"type": "string", "minLength": 3, "maxLength": longest}
    return {
        "type": "object",
        "properties": {"prompts": {"type": "array", "items": item, "minItems": n, "maxItems": n}},
        "required": ["prompts"],
    }


STYLES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "styles": {
            "type": "array", "minItems": 1, "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9 -]{1,30}$"},
                    "prompt": {"type": "string", "minLength": 3, "maxLength": 160},
                    "negative_prompt": {"type": "string", "maxLength": 80},
                },
                "required": ["name", "prompt"],
            },
        }
    },
    "required": ["styles"],
}


def _clean(text: str) -> str:
    text = "".join(c if c >= " " or c == "\n" else " " for c in text)
    text = re.sub(r"\s+", " ", text).strip().strip('"').strip("'").strip()
    return text[:MAX_PROMPT]


_DECODER = json.JSONDecoder(strict=False)


def _array_items(text: str, key: str) -> list[Any]:
    """The complete items of the JSON array under `key`, even when the answer was cut off by its token budget."""
    at = text.find(f'"{key}"')
    start = text.find("[", at) if at >= 0 else -1
    if start < 0:
        raise PromptToolError(f"the answer has no {key!r} list: {text[:60]!r}")
    items: list[Any] = []
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            item, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            break  # the cut-off tail: keep what was complete
        items.append(item)
    if not items:
        raise PromptToolError(f"the answer's {key!r} list holds no complete item")
    return items


# -- enhancement

def enhance_messages(system: str, prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Improve this image prompt:\n{prompt}"}]


def read_enhanced(text: str, original: str) -> str:
    """The enhanced prompt, or PromptToolError when the answer is empty or unusable."""
    cleaned = _clean(text)
    for prefix in ("Prompt:", "Enhanced prompt:", "Improved prompt:"):
        if cleaned.lower().startswith(prefix.lower()):
            cleaned = cleaned[len(prefix):].strip()
    if len(cleaned) < 3:
        raise PromptToolError("the LLM gave no usable prompt; the original is kept")
    if cleaned == original.strip():
        raise PromptToolError("the LLM returned the prompt unchanged")
    return cleaned


# -- subtle rewrites for exploration

def variations_messages(system: str, prompt: str, n: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Write {n} subtle rewrites of this image prompt, each different:\n{prompt}"}]


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def read_variations(text: str, anchor: str, n: int) -> list[str]:
    """Up to `n` distinct rewrites (case, spacing and punctuation ignored), none equal to the anchor."""
    items = _array_items(text, "prompts")
    seen = {_key(anchor)}
    out = []
    for item in items:
        if not isinstance(item, str):
            continue
        cleaned = _clean(item)
        k = _key(cleaned)
        if len(cleaned) >= 3 and k and k not in seen:
            seen.add(k)
            out.append(cleaned)
        if len(out) == n:
            break
    return out


# -- style extraction

def styles_messages(system: str, prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system},
            {"role": "user", "content": (
                "Split this image prompt into reusable styles. Each style prompt keeps the place of the subject "
                f"as {PLACEHOLDER}.\n{prompt}")}]


def read_styles(text: str) -> list[dict[str, str]]:
    """Proposed styles that pass the same checks as a saved style (a missing placeholder is added)."""
    items = _array_items(text, "styles")
    out: list[dict[str, str]] = []
    names: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        name = _clean(str(item.get("name", "")))[:80]
        prompt = _clean(str(item.get("prompt", "")))
        negative = _clean(str(item.get("negative_prompt", "") or ""))
        prompt = re.sub(r"[{}]", "", prompt.replace(PLACEHOLDER, "\0")).replace("\0", PLACEHOLDER)
        negative = re.sub(r"[{}]", "", negative)
        if PLACEHOLDER not in prompt:
            prompt = f"{PLACEHOLDER}, {prompt}"
        try:
            check_style_text(name, prompt, negative)
        except StyleError:
            continue
        if name.lower() in names:
            continue
        names.add(name.lower())
        out.append({"name": name, "prompt": prompt, "negative_prompt": negative})
    if not out:
        raise PromptToolError("the LLM proposed no usable style")
    return out
