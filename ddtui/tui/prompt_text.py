"""Edits on prompt text that the generate screen makes for the user: inserting at the cursor with a sensible
separator, the weight of the `<lora:name:weight>` tag under the cursor, and adding trigger words once.

Plain functions over strings (a line and a column, as the prompt editor reports the cursor), no Textual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LORA_TAG = re.compile(r"<lora:([^:>]*)(?::([^>]*))?>", re.IGNORECASE)
WEIGHT_RANGE = (-5.0, 5.0)  # what the core accepts (core/params.parse_loras)


def separator_before(text_before_cursor: str) -> str:
    """What goes before an insertion so it does not run into the word before it."""
    if not text_before_cursor.strip() or text_before_cursor.endswith((" ", "\n", "(")):
        return ""
    return " " if text_before_cursor.endswith(",") else ", "


def lora_tag(name: str, weight: float) -> str:
    return f"<lora:{name}:{format_weight(weight)}>"


def format_weight(weight: float) -> str:
    return f"{round(weight, 2):g}"


@dataclass(frozen=True)
class WeightChange:
    """The line after a LoRA weight change, the tag's new span on it, and the new weight."""

    line: str
    start: int
    end: int
    name: str
    weight: float


def tag_at(line: str, column: int) -> re.Match[str] | None:
    """The LoRA tag the cursor is in or just after."""
    for match in LORA_TAG.finditer(line):
        if match.start() <= column <= match.end():
            return match
    return None


def adjust_weight(line: str, column: int, delta: float) -> WeightChange | None:
    """Add `delta` to the weight of the tag at `column` (a missing weight counts as 1), kept within the
    core's range; None when the cursor is not on a LoRA tag."""
    match = tag_at(line, column)
    if match is None:
        return None
    name, raw = match.group(1), match.group(2)
    try:
        weight = float(raw) if raw not in (None, "") else 1.0
    except ValueError:
        weight = 1.0  # an unreadable weight is replaced rather than refused: the user is fixing it
    weight = min(WEIGHT_RANGE[1], max(WEIGHT_RANGE[0], round(weight + delta, 2)))
    tag = lora_tag(name, weight)
    return WeightChange(line[:match.start()] + tag + line[match.end():], match.start(), match.start() + len(tag),
                        name, weight)


def missing_words(prompt: str, words: list[str]) -> list[str]:
    """The trigger words not yet in the prompt (case and spacing ignored)."""
    have = " ".join(prompt.lower().split())
    return [w for w in words if w.strip() and " ".join(w.lower().split()) not in have]
