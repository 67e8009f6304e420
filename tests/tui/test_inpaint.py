"""The inpainting editor in the real app: masks painted with keys and with the mouse reach the worker as PNG
files whose pixels are the painted cells, and each result is recorded as the source's child (kind inpaint).
Without a service: the mask file field, the checks before submitting, and how the editor is reached.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image
from pony.orm import db_session

from ddtui.catalog.demo import IMAGE_MODEL
from ddtui.core.recording import Recorder
from ddtui.core.thumbnails import make_thumbnail
from ddtui.tui.mask_model import CellGrid
from ddtui.tui.screens.inpaint import InpaintScreen

SIZE = (160, 48)


def record_source(app: Any, colour: tuple[int, int, int] = (30, 120, 200)) -> int:
    """A real 64x64 history image with the demo model's parameters (as the service records one)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, "PNG")
    params = {"prompt": "a blue lake", "negative_prompt": "", "model": IMAGE_MODEL, "width": 64, "height": 64,
              "steps": 2, "cfg": 1.0, "sampler": "euler", "scheduler": "discrete", "seed": 11}
    rec = Recorder(app.db, app.cfg.output_dir).record(buf.getvalue(), params, "txt2img")
    make_thumbnail(rec.path, app.home.thumbnails, rec.uuid)
    return rec.id


async def open_editor(pilot: Any, wait: Any, source: int) -> InpaintScreen:
    app = pilot.app
    app.send_to("inpaint", source)
    await wait(pilot, lambda: isinstance(app.screen, InpaintScreen) and app.screen.source is not None, 10,
               "the editor with its image")
    screen = app.screen
    await pilot.pause()
    return screen


def pixels_of_cells(cells: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """On a 64x64 image drawn in 64x32 half cells, cell (c, r) is pixel column c, rows 2r and 2r+1."""
    return {(c, y) for c, r in cells for y in (2 * r, 2 * r + 1)}


def white_pixels(path: Path) -> set[tuple[int, int]]:
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (64, 64)
        data = im.load()
        return {(x, y) for y in range(64) for x in range(64) if data[x, y] >= 128}


async def wait_result(pilot: Any, wait: Any, screen: InpaintScreen, count: int) -> int:
    await wait(pilot, lambda: len(screen.result_ids) >= count, 90, f"inpaint result {count}")
    return screen.result_ids[count - 1]


async def test_masks_painted_with_keys_and_mouse_reach_the_worker_and_make_children(service, app_at, wait):
    app = app_at(service.home, connect=True, protocol="halfcell")
    source = record_source(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        screen = await open_editor(pilot, wait, source)
        canvas = screen.canvas
        assert canvas.model.grid == CellGrid(64, 64, 64, 32)
        assert canvas.cursor == (32, 16)
        # Keys: a one-cell brush, two dabs, then a rectangle selection filled with enter.
        await pilot.press("minus")
        assert canvas.brush == 1
        await pilot.press("space", "right", "right", "right", "space")
        await pilot.press("left", "left", "left", "left", "left", "left", "up", "up", "up", "up")
        assert canvas.cursor == (29, 12)
        await pilot.press("r", "right", "right", "down", "enter")
        keyed = {(32, 16), (35, 16)} | {(c, r) for c in (29, 30, 31) for r in (12, 13)}
        screen.query_one("#inpaint-prompt").value = "a red boat"
        await pilot.press("ctrl+g")
        first = await wait_result(pilot, wait, screen, 1)
        first_mask = screen.last_mask_path
        assert first_mask.parent == service.home / "cache" / "masks"
        assert white_pixels(first_mask) == pixels_of_cells(keyed)
        # The mouse: clear, then drag from cell (10, 5) to (14, 5) and paint a second stroke lower down.
        await pilot.press("c")
        assert canvas.model.is_empty()
        await pilot.mouse_down("#mask-view", offset=(10, 5))
        await pilot.hover("#mask-view", offset=(12, 5))
        await pilot.hover("#mask-view", offset=(14, 5))
        await pilot.mouse_up("#mask-view", offset=(14, 5))
        await pilot.mouse_down("#mask-view", offset=(40, 20))
        await pilot.mouse_up("#mask-view", offset=(40, 20))
        assert canvas.model.undo_depth == 6  # dab, dab, rectangle, clear, and each drag is one step
        dragged = {(c, 5) for c in range(10, 15)} | {(40, 20)}
        await pilot.press("ctrl+g")
        second = await wait_result(pilot, wait, screen, 2)
        assert white_pixels(screen.last_mask_path) == pixels_of_cells(dragged)
        with db_session:
            for gid, mask in ((first, first_mask), (second, screen.last_mask_path)):
                gen = app.db.Generation[gid]
                assert gen.kind == "inpaint" and gen.parent.id == source
                assert Path(gen.params["mask_path"]) == mask.resolve()
                assert gen.prompt == "a red boat" and (gen.width, gen.height) == (64, 64)
            job = app.db.Job[int(screen.job_id)]
            assert job.payload["mask_path"] == str(screen.last_mask_path.resolve())
            assert job.payload["mode"] == "inpaint" and job.payload["parent_id"] == source


async def test_mask_file_field_and_checks_before_submitting(demo_home: Path, app_at, wait, tmp_path: Path):
    app = app_at(demo_home, protocol="none")  # the editor draws half cells even then
    source = record_source(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_editor(pilot, wait, source)
        assert screen.canvas.protocol == "halfcell"
        await pilot.press("ctrl+g")
        assert "the mask is empty" in str(screen.query_one("#form-error").render())
        # A missing and a corrupt file are reported in the form and as an error, and change nothing.
        await pilot.press("l")
        field = screen.query_one("#mask-path")
        assert screen.focused is field
        field.value = str(tmp_path / "nope.png")
        await pilot.press("enter")
        await wait(pilot, lambda: app.error_log, 5, "the error")
        assert "no file at" in str(screen.query_one("#form-error").render())
        assert app.error_log[-1].title == "Cannot load the mask"
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"garbage")
        field.value = str(bad)
        await pilot.press("enter")
        await wait(pilot, lambda: "not a readable image" in str(screen.query_one("#form-error").render()), 5,
                   "the corrupt-file error")
        assert screen.canvas.model.is_empty()
        # Letters typed in a field stay text: the painting keys are off there.
        field.value = ""
        await pilot.press("x", "i", "c")
        assert field.value == "xic" and screen.canvas.model.is_empty()
        good = tmp_path / "mask.png"
        mask = Image.new("L", (32, 32), 0)
        mask.paste(255, (0, 0, 16, 32))
        mask.save(good)
        field.value = str(good)
        await pilot.press("enter")
        await wait(pilot, lambda: not screen.canvas.model.is_empty(), 5, "the loaded mask")
        assert abs(screen.canvas.model.coverage() - 0.5) < 0.02
        assert screen.focused is screen.canvas
        await pilot.press("i")
        assert screen.canvas.model.mask.getpixel((5, 5)) == 0
        await pilot.press("u", "u")
        assert screen.canvas.model.is_empty()
        await pilot.press("U")
        assert abs(screen.canvas.model.coverage() - 0.5) < 0.02
        # Strength and feather are checked before anything is written or queued.
        screen.query_one("#inpaint-strength").value = "1.5"
        await pilot.press("ctrl+g")
        assert "strength must be above 0 and at most 1" in str(screen.query_one("#form-error").render())
        screen.query_one("#inpaint-strength").value = "0.9"
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert screen.feather == 2 and screen.query_one("#inpaint-feather").value == "2"
        request = screen.build_request()
        assert Path(request["init_image"]).is_file()
        assert request["parent_id"] == source and request["kind"] == "inpaint" and request["strength"] == 0.9
        assert (request["width"], request["height"], request["model"]) == (64, 64, IMAGE_MODEL)
        assert not (demo_home / "cache" / "masks").exists()  # nothing written while the form was refused
        await pilot.press("escape")
        assert app.current_mode == "history"
