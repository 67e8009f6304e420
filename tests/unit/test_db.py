"""The history database: round trips, PRAGMAs, full-text search kept by triggers, every query filter, migration."""

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pony.orm import db_session

from ddtui.db.queries import HistoryQuery, QueryError, count_history, fts_expression, search_history, tag_counts
from ddtui.db.schema import LATEST_VERSION, SchemaError, open_database

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def db(tmp_path):
    d = open_database(tmp_path / "history.db")
    yield d
    d.disconnect()


def add(db, n, **kw):
    with db_session:
        fields = dict(uuid=f"u{n}", path=f"2026-01-01/{n}.png", prompt=f"prompt {n}")
        fields.update(kw)
        g = db.Generation(**fields)
        g.flush()  # ids are assigned on flush
        return g.id


def tag(db, gid, name, category="subject", source="llm_text"):
    with db_session:
        t = db.Tag.get(name=name, category=category) or db.Tag(name=name, category=category)
        db.GenerationTag(generation=db.Generation[gid], tag=t, source=source)


def test_pragmas(db):
    with db_session:
        conn = db.get_connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_round_trip_of_every_entity(db):
    with db_session:
        preset = db.ImagePreset(name="fast", model="stable-diffusion/a.gguf", params={"steps": 4},
                                flags={"vae_tiling": True})
        parent = db.Generation(uuid="p", path="a.png", prompt="a cat", seed=2**40, width=64, height=64,
                               steps=4, cfg=1.5, sampler="euler", scheduler="simple", model="stable-diffusion/a.gguf",
                               components={"taesd": "vae/t.safetensors"}, loras=[{"name": "ink", "weight": 0.8}],
                               preset=preset, duration_s=0.4, params={"prompt": "a cat", "seed": 2**40})
        db.Generation(uuid="c", path="b.png", kind="upscale", parent=parent, strength=0.5)
        db.LLMPreset(name="tagger", model="llm/t.gguf", mmproj="llm/m.gguf", system_prompts={"tagging": "x"})
        db.Style(name="ink", prompt="{prompt}, ink drawing", negative_prompt="color")
        db.PromptSnippet(label="light", content="golden hour", category="lighting")
        db.Job(type="generate", payload={"prompt": "a cat"}, priority=5, generation=parent)
        db.Setting(key="theme", value={"name": "ddtui-light"})
    with db_session:
        p = db.Generation.get(uuid="p")
        assert p.seed == 2**40 and p.components == {"taesd": "vae/t.safetensors"}
        assert p.loras == [{"name": "ink", "weight": 0.8}] and p.preset.name == "fast"
        assert [c.uuid for c in p.children] == ["c"]
        assert db.Generation.get(uuid="c").parent.uuid == "p"
        assert db.Style.get(name="ink").prompt == "{prompt}, ink drawing"
        assert db.Job.select().first().state == "queued"
        assert db.Setting["theme"].value == {"name": "ddtui-light"}


def test_fts_follows_inserts_updates_tags_and_deletes(db):
    a = add(db, 1, prompt="an astronaut riding a horse", negative_prompt="lowres")
    b = add(db, 2, prompt="a castle in the fog")
    assert [i.id for i in search_history(db, HistoryQuery(text="astronaut")).items] == [a]
    assert [i.id for i in search_history(db, HistoryQuery(text="astro")).items] == [a]  # prefix while typing
    assert [i.id for i in search_history(db, HistoryQuery(text="lowres")).items] == [a]  # negative prompt too
    tag(db, b, "medieval", "style")
    assert [i.id for i in search_history(db, HistoryQuery(text="medieval")).items] == [b]
    with db_session:
        db.Generation[b].prompt = "a lighthouse in the fog"
    assert search_history(db, HistoryQuery(text="castle")).items == []
    assert [i.id for i in search_history(db, HistoryQuery(text="lighthouse")).items] == [b]
    with db_session:
        db.GenerationTag[db.Generation[b], db.Tag.get(name="medieval")].delete()
    assert search_history(db, HistoryQuery(text="medieval")).items == []
    with db_session:
        db.Generation[a].delete()
    assert search_history(db, HistoryQuery(text="astronaut")).items == []
    with db_session:
        assert db.get_connection().execute("SELECT count(*) FROM generation_fts").fetchone()[0] == 1


def test_tag_counts_follow_links(db):
    ids = [add(db, n) for n in range(4)]
    for gid in ids:
        tag(db, gid, "cat")
    tag(db, ids[0], "dog")
    tag(db, ids[0], "moody", "mood")
    counts = {(t.name, t.category): t.count for t in tag_counts(db)}
    assert counts == {("cat", "subject"): 4, ("dog", "subject"): 1, ("moody", "mood"): 1}
    assert [t.name for t in tag_counts(db, category="mood")] == ["moody"]
    assert [t.name for t in tag_counts(db, prefix="d")] == ["dog"]
    with db_session:
        db.Generation[ids[0]].delete()  # cascades to its links; the trigger lowers the counts
    counts = {t.name: t.count for t in tag_counts(db)}
    assert counts == {"cat": 3}


def test_hostile_text_is_safe(db):
    add(db, 1, prompt='say "hello" AND NOT (this) OR that*')
    for text in ['"', "NOT", "(", "a OR", "*", "NEAR(", "'; DROP TABLE generation; --", "🦊"]:
        search_history(db, HistoryQuery(text=text))  # never an FTS syntax error
    assert fts_expression('hello "world') == '"hello" AND "world"*'
    assert len(search_history(db, HistoryQuery(text='"hello"')).items) == 1


@pytest.fixture
def filled(db):
    base = datetime(2026, 3, 1, 12, 0)
    spec = [
        # prompt, model, rating, favorite, kind, day, tags
        ("red fox in snow", "m/a", 5, True, "txt2img", 0, ["fox", "winter"]),
        ("red fox asleep", "m/b", 3, False, "img2img", 1, ["fox"]),
        ("blue whale", "m/a", 4, False, "txt2img", 2, ["whale", "winter"]),
        ("fox and whale", "m/a", 0, True, "upscale", 3, ["fox", "whale"]),
        ("a quiet garden", "m/b", 1, False, "inpaint", 4, []),
    ]
    ids = {}
    for n, (prompt, model, rating, fav, kind, day, tags) in enumerate(spec):
        gid = add(db, n, prompt=prompt, model=model, rating=rating, favorite=fav, kind=kind,
                  created=base + timedelta(days=day))
        for t in tags:
            tag(db, gid, t)
        ids[prompt] = gid
    return db, ids, base


@pytest.mark.parametrize(
    "query, expected",
    [
        (HistoryQuery(), ["a quiet garden", "fox and whale", "blue whale", "red fox asleep", "red fox in snow"]),
        (HistoryQuery(text="fox"), ["fox and whale", "red fox asleep", "red fox in snow"]),
        (HistoryQuery(tags=["fox", "winter"]), ["red fox in snow"]),
        (HistoryQuery(tags=["FOX ", "whale"]), ["fox and whale"]),
        (HistoryQuery(model="m/b"), ["a quiet garden", "red fox asleep"]),
        (HistoryQuery(min_rating=4), ["blue whale", "red fox in snow"]),
        (HistoryQuery(favorite=True), ["fox and whale", "red fox in snow"]),
        (HistoryQuery(kind="inpaint"), ["a quiet garden"]),
        (HistoryQuery(text="fox", model="m/a"), ["fox and whale", "red fox in snow"]),
        (HistoryQuery(text="fox", tags=["winter"], min_rating=5, favorite=True, model="m/a", kind="txt2img"),
         ["red fox in snow"]),
        (HistoryQuery(tags=["winter"], min_rating=5, kind="img2img"), []),
        (HistoryQuery(text="whale", favorite=True), ["fox and whale"]),
        (HistoryQuery(tags=["nothing"]), []),
        (HistoryQuery(text="?!"), []),
    ],
)
def test_every_filter_and_combination(filled, query, expected):
    db, ids, _ = filled
    page = search_history(db, query)
    assert [i.prompt for i in page.items] == expected
    assert count_history(db, query) == len(expected)


def test_date_range(filled):
    db, _, base = filled
    q = HistoryQuery(date_from=base + timedelta(days=1), date_to=base + timedelta(days=3))
    assert [i.prompt for i in search_history(db, q).items] == ["blue whale", "red fox asleep"]
    q = HistoryQuery(date_from=base + timedelta(days=3))
    assert [i.prompt for i in search_history(db, q).items] == ["a quiet garden", "fox and whale"]
    q = HistoryQuery(date_to=base + timedelta(hours=1), tags=["fox"])
    assert [i.prompt for i in search_history(db, q).items] == ["red fox in snow"]
    assert search_history(db, HistoryQuery(date_from=base + timedelta(days=30))).items == []


def test_keyset_pagination_visits_every_row_once(db):
    ids = [add(db, n, prompt=f"cat number {n}") for n in range(25)]
    seen, cursor = [], None
    while True:
        page = search_history(db, HistoryQuery(text="cat"), after=cursor, limit=7)
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)


def test_bad_filter_values(db):
    with pytest.raises(QueryError, match="kind must be one of"):
        search_history(db, HistoryQuery(kind="sketch"))
    with pytest.raises(QueryError, match="from 0 to 5"):
        search_history(db, HistoryQuery(min_rating=9))


def test_migration_from_schema_1(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "history_v1.sql").read_text())
    conn.close()
    db = open_database(path)
    try:
        with db_session:
            conn = db.get_connection()
            assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST_VERSION
            g = db.Generation[1]
            assert g.source == "ddtui" and g.rating == 4 and g.favorite
            assert db.Generation[2].parent.id == 1
        # The backfilled index finds old prompts and tags; counts were rebuilt from the links.
        assert [i.id for i in search_history(db, HistoryQuery(text="lighthouse")).items] == [2, 1]
        assert [i.id for i in search_history(db, HistoryQuery(text="oil painting")).items] == [1]
        assert {(t.name, t.count) for t in tag_counts(db)} == {("lighthouse", 2), ("oil painting", 1)}
        add(db, 3, prompt="a new lighthouse")  # new rows keep flowing into the index
        assert len(search_history(db, HistoryQuery(text="lighthouse")).items) == 3
    finally:
        db.disconnect()
    reopened = open_database(path)  # opening again is a no-op upgrade
    reopened.disconnect()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    open_database(path).disconnect()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer ddtui"):
        open_database(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SchemaError, match="not a readable SQLite database"):
        open_database(path)
