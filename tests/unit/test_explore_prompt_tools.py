"""Exploration neighbours and the readers of LLM prompt-tool answers."""

import pytest

from ddtui.core.explore import CELLS, LOCKABLE, ExploreError, neighbours
from ddtui.core.prompt_tools import (
    PromptToolError,
    read_enhanced,
    read_styles,
    read_variations,
    variations_schema,
)

ANCHOR = {"prompt": "a red fox", "seed": 42, "steps": 20, "cfg": 7.0, "sampler": "euler_a",
          "scheduler": "karras", "model": "m", "width": 64, "height": 64}


def test_only_seed_unlocked_gives_eight_new_seeds_and_the_same_everything_else():
    cells = neighbours(ANCHOR, set(LOCKABLE) - {"seed"})
    assert len(cells) == CELLS
    assert len({c["seed"] for c in cells}) == CELLS and 42 not in {c["seed"] for c in cells}
    for c in cells:
        assert {k: c[k] for k in ANCHOR if k != "seed"} == {k: v for k, v in ANCHOR.items() if k != "seed"}
        assert c["batch"] == 1


def test_numbers_move_nearby_and_samplers_switch():
    cells = neighbours(ANCHOR, {"prompt", "seed", "sampler", "scheduler"}, seed=1)
    assert all(15 <= c["steps"] <= 25 for c in cells)
    assert all(5.0 <= c["cfg"] <= 9.0 for c in cells)
    assert len({(c["steps"], c["cfg"]) for c in cells}) == CELLS
    assert (20, 7.0) not in {(c["steps"], c["cfg"]) for c in cells}
    cells = neighbours(dict(ANCHOR, cfg=1.0), {"prompt", "seed", "steps", "sampler", "scheduler"}, seed=1)
    assert all(0.6 <= c["cfg"] <= 1.4 for c in cells)  # distilled models stay near 1
    cells = neighbours(ANCHOR, {"prompt", "steps", "cfg", "scheduler"})
    assert all(c["sampler"] != "euler_a" and c["seed"] != 42 for c in cells)


def test_prompt_rewrites_are_used_and_locks_are_checked():
    rewrites = ["a crimson fox", "a red vixen", "a fox, red fur"]
    cells = neighbours(ANCHOR, {"steps", "cfg", "sampler", "scheduler"}, rewrites)
    assert {c["prompt"] for c in cells} == set(rewrites)
    with pytest.raises(ExploreError, match="everything is locked"):
        neighbours(ANCHOR, set(LOCKABLE))
    with pytest.raises(ExploreError, match="no rewrites"):
        neighbours(ANCHOR, {"seed"})
    with pytest.raises(ExploreError, match="cannot lock model"):
        neighbours(ANCHOR, {"model"})
    with pytest.raises(ExploreError, match="eight distinct"):
        neighbours(ANCHOR, set(LOCKABLE) - {"prompt"}, ["only one"])


def test_variations_are_deduplicated_and_never_the_anchor():
    text = '{"prompts": ["A red fox!", "a crimson fox", "a  Crimson fox", "x", "a fox in snow", 3]}'
    assert read_variations(text, "a red fox", 8) == ["a crimson fox", "a fox in snow"]
    assert read_variations('{"prompts": ["one fox", "two fox", "three', "a fox", 8) == ["one fox", "two fox"]
    with pytest.raises(PromptToolError):
        read_variations("no json", "a fox", 8)
    schema = variations_schema(8, "a fox")
    assert schema["properties"]["prompts"]["minItems"] == 8
    assert schema["properties"]["prompts"]["items"]["maxLength"] == 34


def test_enhanced_prompt_reader():
    assert read_enhanced('"Enhanced prompt: a red fox, golden hour, 85mm"\n', "a fox") == "a red fox, golden hour, 85mm"
    for bad in ("", "  ", "a fox"):
        with pytest.raises(PromptToolError):
            read_enhanced(bad, "a fox")


def test_styles_reader_fixes_placeholders_and_drops_broken_ones():
    text = ('{"styles": [{"name": "Ink", "prompt": "{prompt}, ink drawing", "negative_prompt": "color"},'
            ' {"name": "Oil", "prompt": "oil painting {subject}"}, {"name": "ink", "prompt": "dup"},'
            ' {"name": "", "prompt": "nameless"}]}')
    assert read_styles(text) == [
        {"name": "Ink", "prompt": "{prompt}, ink drawing", "negative_prompt": "color"},
        {"name": "Oil", "prompt": "{prompt}, oil painting subject", "negative_prompt": ""},
    ]
    with pytest.raises(PromptToolError, match="no usable style"):
        read_styles('{"styles": [{"name": "", "prompt": ""}]}')
