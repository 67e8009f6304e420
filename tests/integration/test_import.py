"""`ddtui import` through the real CLI: every tool's format, duplicates by content, corrupt and hostile files."""

from __future__ import annotations

import json

from PIL import Image
from pony.orm import db_session

from ddtui.db.schema import open_database
from tests.conftest import ddtui
from tests.unit.test_metadata import (
    A1111_JPEG_TEXT,
    A1111_TEXT,
    COMFY_DEFAULT,
    FOOOCUS_JSON,
    INVOKE_V4,
    SDCPP_TEXT,
    SWARM,
    exif_with_user_comment,
    write_png,
    write_with_exif,
)


def test_import_every_format(service, tmp_path):
    demo_home = service.home  # an import is a request to the service
    src = tmp_path / "made-elsewhere"
    src.mkdir()
    write_png(src / "a1111.png", {"parameters": A1111_TEXT})
    write_with_exif(src / "a1111.jpg",
                    exif_with_user_comment(b"UNICODE\0" + A1111_JPEG_TEXT.encode("utf-16-be")), "JPEG", (80, 48))
    write_png(src / "sdcpp.png", {"parameters": SDCPP_TEXT}, (64, 40))
    write_png(src / "comfy.png", {"prompt": json.dumps(COMFY_DEFAULT)}, (64, 56))
    write_png(src / "invoke.png", {"invokeai_metadata": json.dumps(INVOKE_V4)}, (72, 48))
    write_png(src / "swarm.png", {"parameters": json.dumps(SWARM)}, (64, 64))
    write_png(src / "fooocus.png", {"parameters": json.dumps(FOOOCUS_JSON), "fooocus_scheme": "fooocus"}, (56, 48))
    Image.new("RGB", (32, 32), (5, 5, 5)).save(src / "plain.webp", "WEBP")
    r = ddtui(demo_home, "import", str(src), "--json")
    assert r.returncode == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines()]
    by_name = {res["path"].rsplit("/", 1)[-1]: res for res in results}
    assert {n: res["source"] for n, res in by_name.items()} == {
        "a1111.png": "a1111", "a1111.jpg": "a1111", "sdcpp.png": "sdcpp", "comfy.png": "comfyui",
        "invoke.png": "invokeai", "swarm.png": "swarmui", "fooocus.png": "fooocus", "plain.webp": "unknown",
    }
    assert all(res["status"] == "imported" for res in results)
    db = open_database(demo_home / "history.db")
    try:
        with db_session:
            invoke = db.Generation[by_name["invoke.png"]["generation_id"]]
            assert invoke.kind == "import" and invoke.source == "invokeai"
            assert (invoke.prompt, invoke.seed, invoke.steps) == ("a castle on a hill, golden hour", 3141592, 30)
            plain = db.Generation[by_name["plain.webp"]["generation_id"]]
            assert plain.prompt == "" and (plain.width, plain.height) == (32, 32)
            # Every import is thumbnailed now and queued for tagging.
            thumbs = demo_home / "cache" / "thumbnails"
            for res in results:
                gen = db.Generation[res["generation_id"]]
                assert (thumbs / gen.uuid[:2] / f"{gen.uuid}.jpg").exists()
            assert db.Job.select(lambda j: j.type == "tag").count() == len(results)
    finally:
        db.disconnect()
    found = json.loads(ddtui(demo_home, "history", "search", "castle", "--json").stdout.splitlines()[0])
    assert found["id"] == by_name["invoke.png"]["generation_id"]


def test_duplicates_and_bad_files_are_reported(service, tmp_path):
    demo_home = service.home
    good = write_png(tmp_path / "good.png", {"parameters": A1111_TEXT})
    assert ddtui(demo_home, "import", str(good)).returncode == 0
    copy = tmp_path / "renamed-copy.png"
    copy.write_bytes(good.read_bytes())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:200])
    (tmp_path / "notes.png").write_text("not an image at all")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # tiny on disk, 400 megapixels when decoded
    r = ddtui(demo_home, "import", str(copy), str(tmp_path / "empty.png"), str(tmp_path / "truncated.png"),
              str(tmp_path / "notes.png"), str(bomb), str(tmp_path / "missing.png"), "--json")
    assert r.returncode == 1  # some were skipped
    results = {res["path"].rsplit("/", 1)[-1]: res for res in map(json.loads, r.stdout.splitlines())}
    assert results["renamed-copy.png"]["status"] == "duplicate"
    assert "file is empty" in results["empty.png"]["message"]
    assert "truncated" in results["truncated.png"]["message"]
    assert "not a recognised image" in results["notes.png"]["message"]
    assert "decompression bomb" in results["bomb.png"]["message"]
    assert results["missing.png"]["message"] == "no such file"
    db = open_database(demo_home / "history.db")
    try:
        with db_session:
            assert db.Generation.select().count() == 1  # nothing but the one good image
    finally:
        db.disconnect()
