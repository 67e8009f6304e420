"""Recording: the PNG's parameters parse back; a process killed mid-recording leaves nothing half-done."""

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image
from pony.orm import db_session

from ddtui.core.metadata import read_image_metadata
from ddtui.core.recording import Recorder
from ddtui.db.schema import open_database

ROOT = Path(__file__).resolve().parents[2]


def png(color=(10, 200, 30), size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


PARAMS = {
    "prompt": 'a fox, "in snow": 2, ünïcode\nsecond line', "negative_prompt": "blurry, low quality",
    "seed": 123456789012, "steps": 4, "cfg": 1.5, "sampler": "euler_a", "scheduler": "karras",
    "width": 64, "height": 48, "model": "stable-diffusion/demo-flux2-klein.safetensors", "model_hash": "0123abcdef",
    "loras": [{"name": "demo-lora", "weight": 0.8}], "guidance": 3.5,
}


def test_parameters_chunk_parses_back(tmp_path):
    db = open_database(tmp_path / "h.db")
    rec = Recorder(db, tmp_path / "out").record(png(), PARAMS)
    meta = read_image_metadata(rec.path)
    assert meta.source == "ddtui"
    for key in ("prompt", "negative_prompt", "seed", "steps", "cfg", "sampler", "scheduler", "width", "height",
                "model_hash", "loras"):
        assert meta.params[key] == PARAMS[key], key
    # The A1111 text alone (what other tools read) carries the same values.
    from ddtui.core.metadata import parse_parameters_text

    text = Image.open(rec.path).text["parameters"]
    parsed = parse_parameters_text(text)
    assert parsed["prompt"] == PARAMS["prompt"] and parsed["seed"] == PARAMS["seed"]
    assert (parsed["width"], parsed["height"], parsed["steps"], parsed["cfg"]) == (64, 48, 4, 1.5)
    assert parsed["sampler"] == "euler_a" and parsed["scheduler"] == "karras"
    assert "Model: demo-flux2-klein" in text and "Model hash: 0123abcdef" in text
    with db_session:
        gen = db.Generation[rec.id]
        assert gen.seed == PARAMS["seed"] and gen.path == rec.path.relative_to(tmp_path / "out").as_posix()
    db.disconnect()


def test_lineage_is_recorded(tmp_path):
    db = open_database(tmp_path / "h.db")
    r = Recorder(db, tmp_path / "out")
    parent = r.record(png(), PARAMS)
    child = r.record(png((1, 2, 3), (128, 96)), dict(PARAMS, strength=0.5), kind="img2img", parent_id=parent.id)
    with db_session:
        assert db.Generation[child.id].parent.id == parent.id
        assert db.Generation[child.id].kind == "img2img"
    assert read_image_metadata(child.path).document["lineage"]["parent"] == parent.uuid
    db.disconnect()


WRITER = textwrap.dedent("""
    import io, sys
    from pathlib import Path
    from PIL import Image
    from ddtui.core.recording import Recorder
    from ddtui.db.schema import open_database
    root = Path(sys.argv[1])
    db = open_database(root / "h.db")
    rec = Recorder(db, root / "out")
    buf = io.BytesIO()
    Image.effect_noise((512, 512), 64).convert("RGB").save(buf, "PNG")  # big enough that writes take a while
    data = buf.getvalue()
    i = 0
    while True:
        rec.record(data, {"prompt": f"image {i}", "seed": i, "width": 512, "height": 512})
        i += 1
        print(i, flush=True)
""")


def test_killed_while_recording_leaves_no_partial_state(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(4)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        proc.stdout.readline()  # at least one image recorded
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    db = open_database(tmp_path / "h.db")
    rec = Recorder(db, tmp_path / "out")
    adopted = rec.adopt_orphans()
    with db_session:
        rows = {g.uuid: rec.file_path(g.path) for g in db.Generation.select()}
        assert db.get_connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    files = list((tmp_path / "out").rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")], "half-written files were left behind"
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == len(rows) >= 6, (len(pngs), len(rows), len(adopted))
    for uuid, path in rows.items():
        assert path.exists(), f"row {uuid} points at a missing file"
        with Image.open(path) as im:
            im.load()  # every file is a whole PNG
    db.disconnect()
