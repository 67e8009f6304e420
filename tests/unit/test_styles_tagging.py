"""Styles (placeholder, append, negatives merged, broken placeholders refused) and tag rules."""

import pytest
from pony.orm import db_session

from ddtui.core.styles import StyleError, apply_style, apply_styles, save_style
from ddtui.core.tagging import (
    MAX_TAGS,
    TaggingError,
    normalise_tag,
    parse_tag_answer,
    set_user_tags,
    store_llm_tags,
    tagging_messages,
    tags_of,
)
from ddtui.db.schema import open_database


@pytest.fixture
def db(tmp_path):
    d = open_database(tmp_path / "history.db")
    yield d
    d.disconnect()


def test_style_placeholder_and_append():
    assert apply_style("{prompt}, ink drawing", "", "a fox", "") == ("a fox, ink drawing", "")
    assert apply_style("cinematic", "", "a fox", "") == ("a fox, cinematic", "")
    assert apply_style("", "noise", "a fox", "blurry") == ("a fox", "blurry, noise")
    assert apply_style("{prompt}", "Blurry, text", "a fox", "blurry") == ("a fox", "blurry, text")


@pytest.mark.parametrize("prompt", ["{promt}, ink", "{prompt} and {prompt}", "oil {", "oil }", "{0}"])
def test_broken_placeholders_are_refused(db, prompt):
    with pytest.raises(StyleError):
        save_style(db, "bad", prompt)
    with db_session:
        assert db.Style.select().count() == 0


def test_apply_saved_styles_in_order(db):
    save_style(db, "ink", "{prompt}, ink drawing", "color")
    save_style(db, "moody", "dark mood", "bright, color")
    assert apply_styles(db, ["ink", "moody"], "a fox", "blurry") == (
        "a fox, ink drawing, dark mood", "blurry, color, bright")
    with pytest.raises(StyleError, match="no style named 'nope'.*ink, moody"):
        apply_styles(db, ["nope"], "a fox")


@pytest.mark.parametrize(
    "raw, expected",
    [("  Red Fox ", "red fox"), ("SNOW!!", "snow"), ("a", None), ("x" * 41, None), ("multi   space\ttag", "multi space tag"),
     (42, None), ("--", None), ("dot\x07bell", None), ("Ünïcode Ök", "ünïcode ök")],
)
def test_normalise_tag(raw, expected):
    assert normalise_tag(raw) == expected


def test_parse_answer_is_lenient_and_bounded():
    text = 'Sure! {"tags": [{"name": "Fox\n", "category": "subject"}, {"name": "fox", "category": "style"},' \
           ' {"name": "x", "category": "mood"}, {"name": "Cozy", "category": "feeling"}]} done'
    assert parse_tag_answer(text) == [("fox", "subject"), ("cozy", "general")]
    many = '{"tags": [' + ",".join(f'{{"name": "tag{i}", "category": "mood"}}' for i in range(30)) + "]}"
    assert len(parse_tag_answer(many)) == MAX_TAGS
    for bad in ("no json here", '{"tags": "fox"}', '{"tags": [{"name": "x"}]}', "{broken"):
        with pytest.raises(TaggingError):
            parse_tag_answer(bad)


def test_vision_and_text_messages():
    text = tagging_messages("sys", "a fox", "blurry")
    assert text[0] == {"role": "system", "content": "sys"} and "a fox" in text[1]["content"]
    vision = tagging_messages("sys", "a fox", image_png=b"\x89PNG fake")
    parts = vision[1]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_llm_tags_never_overwrite_user_edits(db):
    with db_session:
        gen = db.Generation(uuid="u1", path="a.png", prompt="a fox")
        gen.flush()
        gid = gen.id
    assert store_llm_tags(db, gid, [("fox", "subject"), ("cozy", "mood")], "llm_text")
    assert {t["name"] for t in tags_of(db, gid)} == {"fox", "cozy"}
    assert store_llm_tags(db, gid, [("vulpine", "subject")], "llm_vision")  # re-tag replaces LLM tags
    assert [(t["name"], t["source"]) for t in tags_of(db, gid)] == [("vulpine", "llm_vision")]
    set_user_tags(db, gid, add=["Winter"], remove=["vulpine"])
    assert not store_llm_tags(db, gid, [("summer", "mood")], "llm_text")
    assert [(t["name"], t["source"]) for t in tags_of(db, gid)] == [("winter", "user")]
