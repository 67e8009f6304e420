"""Prompt text edits on their own: separators before an insertion, LoRA weights under the cursor, trigger words."""

from __future__ import annotations

from ddtui.tui.prompt_text import adjust_weight, missing_words, separator_before


def test_separator_before_an_insertion():
    assert separator_before("") == ""
    assert separator_before("a fox") == ", "
    assert separator_before("a fox,") == " "
    assert separator_before("a fox, ") == ""
    assert separator_before("(a fox") == ", " and separator_before("a (") == ""


def test_weight_of_the_tag_under_the_cursor():
    line = "a fox <lora:ink:0.8> <lora:paper> snow"
    change = adjust_weight(line, 9, 0.05)  # inside the first tag
    assert change is not None and change.name == "ink" and change.weight == 0.85
    assert change.line == "a fox <lora:ink:0.85> <lora:paper> snow"
    assert change.line[change.start:change.end] == "<lora:ink:0.85>"
    after = adjust_weight(line, line.index("<lora:paper>") + len("<lora:paper>"), -0.1)  # just after it
    assert after is not None and after.weight == 0.9 and "<lora:paper:0.9>" in after.line
    assert adjust_weight(line, 2, 0.1) is None
    assert adjust_weight("<lora:x:4.98>", 3, 0.1).weight == 5.0  # kept within what the core accepts
    assert adjust_weight("<lora:x:-4.95>", 3, -0.1).weight == -5.0
    assert adjust_weight("<lora:x:oops>", 3, 0.05).weight == 1.05


def test_trigger_words_missing_from_the_prompt():
    assert missing_words("A cat, Demo  Style", ["demo style", "ink"]) == ["ink"]
    assert missing_words("", ["ink", " "]) == ["ink"]
