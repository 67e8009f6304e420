"""The store (the one door for reads) and the library (every write, its rule applied once), on a real file."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from ddtui.core.library import EditError, Library, NotFound
from ddtui.core.queue import JobQueue
from ddtui.core.recording import Recorder
from ddtui.core.thumbnails import make_thumbnail, thumbnail_path
from ddtui.db.records import GenerationRecord, HistoryQuery
from ddtui.db.schema import open_database
from ddtui.db.store import Store


def png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def home(tmp_path):
    db = open_database(tmp_path / "history.db")
    out = tmp_path / "outputs"
    recorder = Recorder(db, out)
    library = Library(db, out, tmp_path / "thumbs")
    store = Store(tmp_path / "history.db", out)
    yield db, recorder, library, store, tmp_path
    store.close()
    db.disconnect()


def record(recorder, prompt="a red fox", kind="txt2img", parent=None, **params):
    base = {"prompt": prompt, "model": "stable-diffusion/m.safetensors", "seed": 7, "steps": 4, "cfg": 2.0}
    return recorder.record(png(), {**base, **params}, kind, parent).id


def test_generation_record_is_plain_and_complete(home):
    db, recorder, library, store, _ = home
    a = record(recorder)
    b = record(recorder, "a red fox at dusk", "img2img", a)
    library.edit_tags(b, add=["Fox", "dusk"])
    gen = store.generation(b)
    assert isinstance(gen, GenerationRecord)
    assert gen.kind == "img2img" and gen.parent is not None and gen.parent.id == a
    assert gen.file.is_file() and gen.file.is_absolute()
    assert [t.name for t in gen.tags] == ["dusk", "fox"] and {t.source for t in gen.tags} == {"user"}
    assert gen.tags_edited and gen.rerunnable and gen.rerun_reason == ""
    assert store.generation(a).child_count == 1 and [c.id for c in store.generation(a).children] == [b]
    assert [link.id for link in store.lineage(b)] == [a, b]
    assert store.generation(999) is None
    gen.params["prompt"] = "changed"  # a copy: nothing reaches the database
    assert store.generation(b).params["prompt"] == "a red fox at dusk"


def test_rerun_rule_is_one_rule(home):
    db, recorder, _, store, _ = home
    up = record(recorder, kind="upscale")
    imp = record(recorder, kind="import")
    nomodel = record(recorder, model="")
    for gid, words in ((up, "upscale"), (imp, "imported"), (nomodel, "no model")):
        gen = store.generation(gid)
        assert not gen.rerunnable and words in gen.rerun_reason


def test_facets_within_the_filter(home):
    _, recorder, library, store, _ = home
    fox = [record(recorder, "a red fox") for _ in range(3)]
    cat = [record(recorder, "a grey cat") for _ in range(2)]
    for gid in fox:
        library.edit_tags(gid, add=["animal", "fox"])
    for gid in cat:
        library.edit_tags(gid, add=["animal", "cat"])
    everywhere = {t.name: t.count for t in store.tag_facets()}
    assert everywhere == {"animal": 5, "fox": 3, "cat": 2}
    within = {t.name: t.count for t in store.tag_facets(within=HistoryQuery(text="cat"))}
    assert within == {"animal": 2, "cat": 2}
    assert store.tag_facets(within=HistoryQuery(text="nothing-like-this")) == []


def test_history_items_refresh_only_what_changed(home):
    _, recorder, library, store, _ = home
    ids = [record(recorder) for _ in range(4)]
    library.rate(ids[1:3], 5)
    items = store.history_items([ids[2], ids[1], 12345])
    assert [i.id for i in items] == [ids[2], ids[1]] and all(i.rating == 5 for i in items)
    assert store.latest_generation_id() == ids[-1]
    assert store.generation_ids(among=[ids[0], 999]) == [ids[0]]
    assert store.generation_ids(untagged_only=True) == ids


def test_library_refuses_bad_writes_and_changes_nothing(home):
    _, recorder, library, store, _ = home
    gid = record(recorder)
    with pytest.raises(EditError, match="from 0 to 5"):
        library.rate([gid], 9)
    with pytest.raises(EditError, match="true or false"):
        library.favorite([gid], "yes")
    with pytest.raises(NotFound, match="#424242"):
        library.rate([gid, 424242], 3)
    assert store.generation(gid).rating == 0  # the valid id was not rated either
    with pytest.raises(EditError, match="usable tag"):
        library.edit_tags(gid, add=["x"])
    assert library.edit_tags(gid, replace=["one", "two"])[0].name == "one"
    assert [t.name for t in library.edit_tags(gid, replace=["two", "three"])] == ["three", "two"]


def test_delete_keeps_children_and_removes_files_and_thumbnails(home):
    _, recorder, library, store, tmp = home
    parent = record(recorder)
    child = record(recorder, parent=parent)
    gen = store.generation(parent)
    make_thumbnail(gen.file, tmp / "thumbs", gen.uuid)
    deleted, removed, problems = library.delete([parent, 31337], files=True)
    assert deleted == [parent] and removed == 1 and problems == ["no history item #31337"]
    assert not gen.file.exists() and not thumbnail_path(tmp / "thumbs", gen.uuid).exists()
    assert store.generation(child).parent is None


def test_styles_snippets_presets(home):
    _, _, library, store, _ = home
    sid = library.save_style(None, "Noir", "{prompt}, film noir", "colour")
    with pytest.raises(EditError, match="already a style named 'Noir'"):
        library.save_style(None, "Noir", "x")
    with pytest.raises(EditError, match="broken placeholder"):
        library.save_style(sid, "Noir", "{promt} noir")
    assert library.save_style_by_name("Noir", "{prompt}, noir") == sid
    assert [(s.name, s.prompt) for s in store.styles()] == [("Noir", "{prompt}, noir")]
    snip = library.save_snippet(None, "light", "golden hour", "Lighting")
    assert library.use_snippet(snip) == 1 and store.snippets()[0].category == "lighting"
    with pytest.raises(NotFound):
        library.delete_snippet(999)
    pid = library.save_preset("image", {"id": None, "name": "fast", "model": "stable-diffusion/m.safetensors",
                                        "params": {"steps": 4}, "flags": {"vae_tiling": True}})
    with pytest.raises(EditError, match="params.steps"):
        library.save_preset("image", {"id": pid, "name": "fast", "model": "m", "params": {"steps": "many"}})
    with pytest.raises(EditError, match="unknown flag"):
        library.save_preset("image", {"id": pid, "name": "fast", "model": "m", "flags": {"turbo": True}})
    with pytest.raises(EditError, match="context size"):
        library.save_preset("llm", {"id": None, "name": "chat", "model": "llm/x.gguf", "context_size": 3})
    (preset,) = store.image_presets()
    assert preset.id == pid and preset.params == {"steps": 4} and preset.generate_params()["preset"] == "fast"
    library.set_setting("tui.upscaler", "esrgan/x.pth")
    assert store.setting("tui.upscaler") == "esrgan/x.pth" and store.setting("missing", 3) == 3


def test_jobs_keep_their_request_header_out_of_the_payload(home):
    db, _, _, store, _ = home
    queue = JobQueue(db)
    header = {"msg_id": "abc123", "msg_type": "submit", "session": "s", "date": "2026-12-01T00:00:00", "version": "1"}
    job = queue.submit("generate", {"prompt": "p"}, parent=header)
    assert job.parent["msg_id"] == "abc123" and "_parent" not in job.payload
    (listed,) = store.jobs()
    assert listed.parent == header and listed.payload == {"prompt": "p"}
    assert "parent" not in listed.to_dict()
    claimed = queue.claim(("generate",), "w")
    assert claimed.parent == header
    assert store.job(job.id).state == "running" and store.finished_jobs() == []


def test_each_thread_closes_its_connection(home):
    _, recorder, _, store, _ = home
    record(recorder)
    seen = []

    def read():
        seen.append(store.history_count())
        seen.append(store.db.provider.pool.con)  # the thread's own connection, None once released

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [1, None] * 8
