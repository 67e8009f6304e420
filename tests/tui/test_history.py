"""Pilot tests of the History screen against a real history database (and, for re-run, a real service).

A small host app gives the screen the app API it uses (home, cfg, db, submit, open_in_generate, send_to,
notify_error); the real `DdtuiApp` hosts it in the tests at the end. Images are recorded by the real
`Recorder` (real PNG files and thumbnails); large histories come from `ddtui.db.synthetic.fill_history`.
"""

from __future__ import annotations

import io
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image
from pony.orm import db_session
from textual.app import App
from textual.widgets import Checkbox, Input, Select, SelectionList

from ddtui.config import load_config, resolve_home
from ddtui.core.client import CoreClient
from ddtui.core.recording import Recorder
from ddtui.core.tagging import set_user_tags, tags_of
from ddtui.core.thumbnails import thumbnail_path
from ddtui.db import synthetic
from ddtui.db.queries import HistoryQuery, count_history
from ddtui.db.schema import open_database
from ddtui.tui.history_model import HistoryModel, bench_next_page
from ddtui.tui.messages import JobEvent
from ddtui.tui.host import Host
from ddtui.tui.screens.base import ScreenPaletteCommands
from ddtui.tui.screens.history import ConfirmDelete, HistoryScreen, rerun_params
from ddtui.tui.widgets.detail import load_detail
from ddtui.tui.widgets.thumbgrid import ThumbGrid

SIZE = (160, 48)


# ------------------------------------------------------------------ helpers


class HostApp(Host):
    """The app API the History screen uses, over a real home; records what it was asked to do."""

    def __init__(self, home_root: Path, connect: bool = False) -> None:
        super().__init__()
        self.home = resolve_home(home_root)
        self.cfg = load_config(self.home)
        self.db = open_database(self.home.db_file)
        self.client: CoreClient | None = None
        self.image_protocol = "halfcell"
        self.calls: list[tuple[Any, ...]] = []
        self.errors: list[tuple[str, str]] = []
        self.clipboard_text = ""
        self._connect = connect

    async def on_mount(self) -> None:
        if self._connect:
            self.client = CoreClient(self.home)
            await self.client.subscribe()
        self.push_screen(HistoryScreen())

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def submit(self, kind: str, params: dict[str, Any], priority: int = 0, group: str = "") -> dict[str, Any]:
        assert self.client is not None, "this test app was started without the service"
        self.calls.append(("submit", kind, params))
        return await self.client.submit(kind, params, priority=priority, group=group)

    def open_in_generate(self, params: dict[str, Any]) -> None:
        self.calls.append(("open_in_generate", params))

    def send_to(self, kind: str, generation_id: int) -> None:
        self.calls.append(("send_to", kind, generation_id))

    def notify_error(self, title: str, detail: str = "", severity: str = "error") -> None:
        self.errors.append((title, detail))

    def copy_to_clipboard(self, text: str) -> None:
        self.clipboard_text = text


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def record(app: HostApp, n: int, parent_of: Callable[[int], int | None] = lambda i: None,
           prompt: str = "a red fox number {i}", kind: str = "txt2img") -> list[int]:
    """Record `n` real images (files and thumbnails) the way the service does; returns their ids."""
    from ddtui.core.thumbnails import make_thumbnail

    rec = Recorder(app.db, app.cfg.output_dir)
    ids: list[int] = []
    for i in range(n):
        params = {"prompt": prompt.format(i=i), "negative_prompt": "blurry", "seed": 1000 + i, "steps": 4,
                  "cfg": 1.0, "sampler": "euler", "scheduler": "discrete", "width": 64, "height": 64,
                  "model": "stable-diffusion/demo-flux2-klein.safetensors"}
        r = rec.record(png_bytes(((i * 37) % 256, 90, 200)), params, kind, parent_of(i))
        make_thumbnail(r.path, app.home.thumbnails, r.uuid)
        ids.append(r.id)
    return ids


def fill(db_path: Path, count: int) -> None:
    synthetic.fill_history(db_path, count)


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def history(app: App) -> HistoryScreen:
    screen = app.screen
    assert isinstance(screen, HistoryScreen), screen
    return screen


async def started(pilot: Any) -> HistoryScreen:
    screen = history(pilot.app)
    await wait_for(pilot, lambda: screen.model is not None and screen.model.started, what="the first page")
    await pilot.pause()
    return screen


async def shows_detail(pilot: Any, screen: HistoryScreen, generation_id: int) -> None:
    await wait_for(pilot, lambda: screen.detail.detail is not None and screen.detail.detail.id == generation_id,
                   what=f"the detail of #{generation_id}")


def db_row(app: HostApp, generation_id: int) -> Any:
    with db_session:
        gen = app.db.Generation.get(id=generation_id)
        return None if gen is None else (gen.rating, gen.favorite)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    resolve_home(root).ensure()
    return root


# ------------------------------------------------------------------ the model, without Textual


def test_model_pages_cover_every_row_once_and_drop_stale_results(tmp_path: Path) -> None:
    db_path = tmp_path / "history.db"
    open_database(db_path).disconnect()
    fill(db_path, 1000)
    db = open_database(db_path)
    model = HistoryModel(db, page_size=120)
    stale = model.fetch(*model.plan(0))
    model.reset(HistoryQuery(text="fox"))
    assert not model.apply(stale), "a page fetched for an older query must be dropped"
    model.reset(HistoryQuery())
    pages = 0
    while (plan := model.plan(len(model.items))) is not None:
        assert model.apply(model.fetch(*plan))
        pages += 1
    ids = [i.id for i in model.items]
    with db_session:
        every = [r[0] for r in db.get_connection().execute("SELECT id FROM generation ORDER BY id DESC")]
    assert ids == every and len(set(ids)) == 1000
    assert pages == 9  # 1000 rows in pages of 120
    assert model.total == 1000 and model.exhausted
    assert bench_next_page(db, pages=3)  # the benchmark hook runs


# ------------------------------------------------------------------ filtering


async def test_filters_text_tag_rating_and_kind(home: Path) -> None:
    app = HostApp(home)
    fill(app.home.db_file, 300)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        assert screen.model.total == 300

        await pilot.press("slash")
        assert isinstance(app.focused, Input) and app.focused.id == "filter-text"
        await pilot.press(*"fox")
        expected = count_history(app.db, HistoryQuery(text="fox"))
        assert 0 < expected < 300
        await wait_for(pilot, lambda: screen.model.query.text == "fox" and screen.model.started
                       and screen.model.total == expected, what="the text filter")
        # Full text covers prompts and tags.
        assert all("fox" in i.prompt or "fox" in {t["name"] for t in tags_of(app.db, i.id)}
                   for i in screen.model.items)

        # A tag facet, picked with the keyboard: all of the picked tags must be on every row.
        listing = app.screen.query_one("#filter-tags", SelectionList)
        await wait_for(pilot, lambda: listing.option_count > 0, what="tag facets")
        values = [listing.get_option_at_index(i).value for i in range(listing.option_count)]
        listing.focus()
        listing.highlighted = values.index("serene")
        await pilot.press("space")
        tagged = count_history(app.db, HistoryQuery(text="fox", tags=["serene"]))
        await wait_for(pilot, lambda: screen.model.query.tags == ["serene"] and screen.model.started
                       and screen.model.total == tagged, what="the tag facet")
        for item in screen.model.items:
            assert "serene" in {t["name"] for t in tags_of(app.db, item.id)}

        # Minimum rating and kind narrow further; clearing brings every row back.
        app.screen.query_one("#filter-text", Input).value = ""
        listing.deselect_all()
        app.screen.query_one("#filter-rating", Select).value = 4
        app.screen.query_one("#filter-kind", Select).value = "txt2img"
        query = HistoryQuery(min_rating=4, kind="txt2img")
        want = count_history(app.db, query)
        assert 0 < want < 300
        await wait_for(pilot, lambda: screen.model.query == query and screen.model.started
                       and screen.model.total == want, what="rating and kind")
        assert all(i.rating >= 4 and i.kind == "txt2img" for i in screen.model.items)
        app.screen.query_one("#filter-favorite", Checkbox).value = True
        await wait_for(pilot, lambda: screen.model.query.favorite and screen.model.started, what="favorites")
        assert all(i.favorite for i in screen.model.items)

        await pilot.press("escape", "ctrl+l")
        await wait_for(pilot, lambda: screen.model.query.is_empty() and screen.model.started
                       and screen.model.total == 300, what="cleared filters")


async def test_bad_date_is_shown_and_left_out(home: Path) -> None:
    app = HostApp(home)
    record(app, 3)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        field = app.screen.query_one("#filter-from", Input)
        field.value = "yesterday"
        await wait_for(pilot, lambda: field.has_class("-invalid"), what="the date error")
        assert "YYYY-MM-DD" in str(app.screen.query_one("#filter-error").render())
        assert screen.model.query.date_from is None and screen.model.total == 3
        field.value = "2999-01-01"
        await wait_for(pilot, lambda: screen.model.query.date_from == datetime(2999, 1, 1)
                       and screen.model.started, what="a future start date")
        assert screen.model.total == 0 and not field.has_class("-invalid")


# ------------------------------------------------------------------ paging


async def test_paging_through_1000_rows_sees_every_row_once(home: Path) -> None:
    app = HostApp(home)
    fill(app.home.db_file, 1000)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        grid = screen.grid
        assert len(screen.model.items) < 1000, "rows come in pages, not all at once"
        seen: list[int] = []
        for _ in range(400):
            first, last = grid.visible_range()
            await wait_for(pilot, lambda: last < len(screen.model.items), what="the visible rows")
            seen.extend(i.id for i in screen.model.items[first:last + 1] if not seen or i.id < seen[-1])
            if last >= 999:
                break
            await pilot.press("pagedown")
        with db_session:
            every = [r[0] for r in app.db.get_connection().execute("SELECT id FROM generation ORDER BY id DESC")]
        assert seen == every
        assert screen.model.exhausted and len(screen.model.items) == 1000
        await pilot.press("end")
        assert grid.cursor == 999
        await shows_detail(pilot, screen, every[-1])
        await pilot.press("home")
        assert grid.cursor == 0 and grid.scroll_y == 0


async def test_end_key_jumps_far_and_loads_in_big_pages(home: Path) -> None:
    app = HostApp(home)
    fill(app.home.db_file, 3000)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await pilot.press("end")
        assert screen.grid.cursor == 2999  # the count is known: the cursor goes there at once
        with db_session:
            oldest = app.db.get_connection().execute("SELECT min(id) FROM generation").fetchone()[0]
        await shows_detail(pilot, screen, oldest)
        assert screen.model.exhausted


# ------------------------------------------------------------------ single-key actions


async def test_number_keys_rate_and_f_favorites(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 5)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        newest = ids[-1]
        await pilot.press("4")
        await wait_for(pilot, lambda: db_row(app, newest) == (4, False), what="rating 4 in the database")
        assert screen.grid.current.rating == 4
        await pilot.press("right", "2")
        await wait_for(pilot, lambda: db_row(app, ids[-2]) == (2, False), what="rating of the second image")
        await pilot.press("0")
        await wait_for(pilot, lambda: db_row(app, ids[-2]) == (0, False), what="rating cleared")
        await pilot.press("f")
        await wait_for(pilot, lambda: db_row(app, ids[-2]) == (0, True), what="favorite")
        assert screen.grid.current.favorite
        await pilot.press("f")
        await wait_for(pilot, lambda: db_row(app, ids[-2]) == (0, False), what="unfavorite")
        assert db_row(app, newest) == (4, False)


async def test_delete_asks_and_keeps_the_file_unless_asked(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 3)
    rec = Recorder(app.db, app.cfg.output_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        target = ids[-1]
        item = screen.grid.current
        file = rec.file_path(item.path)
        thumb = thumbnail_path(app.home.thumbnails, item.uuid)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDelete)
        await pilot.press("n")  # keep
        assert db_row(app, target) is not None
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: db_row(app, target) is None, what="the row deleted")
        await wait_for(pilot, lambda: screen.model.index_of(target) is None, what="the row gone from the grid")
        assert file.exists() and not thumb.exists()
        assert [i.id for i in screen.model.items] == [ids[1], ids[0]]
        assert screen.grid.current.id == ids[1]


async def test_delete_with_the_file_option_removes_the_file(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 2)
    rec = Recorder(app.db, app.cfg.output_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        item = screen.grid.current
        file = rec.file_path(item.path)
        assert file.exists()
        await pilot.press("d", "a")  # a: also delete the file
        assert app.screen.query_one("#delete-file", Checkbox).value
        await pilot.press("y")
        await wait_for(pilot, lambda: db_row(app, ids[-1]) is None and not file.exists(), what="row and file gone")
        await wait_for(pilot, lambda: len(screen.model.items) == 1, what="the grid updated")
        assert screen.model.total == 1


async def test_tag_edit_stores_user_tags(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 2)
    set_user_tags(app.db, ids[-1], add=["fox", "forest"])
    with db_session:
        app.db.Generation[ids[-1]].tags_edited = False
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await shows_detail(pilot, screen, ids[-1])
        await pilot.press("t")
        field = app.screen.query_one("#detail-tags", Input)
        assert app.focused is field and field.value == "forest, fox"
        field.value = "fox, night sky"
        await pilot.press("enter")
        await wait_for(pilot, lambda: {t["name"] for t in tags_of(app.db, ids[-1])} == {"fox", "night sky"},
                       what="the tags saved")
        with db_session:
            assert app.db.Generation[ids[-1]].tags_edited
        assert {t["source"] for t in tags_of(app.db, ids[-1])} == {"user"}
        await wait_for(pilot, lambda: screen.detail.detail.tag_names == ["fox", "night sky"], what="detail reload")
        assert app.focused is screen.grid


async def test_lineage_navigates_to_parent_and_child(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 6)  # no lineage among these
    root = ids[1]
    child = record(app, 1, parent_of=lambda i: root, prompt="a child of the root")[0]
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await shows_detail(pilot, screen, child)
        assert screen.detail.detail.parent.id == root
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.grid.current.id == root, what="the parent selected")
        await shows_detail(pilot, screen, root)
        assert [c.id for c in screen.detail.detail.children] == [child]
        await pilot.press("c")  # the lineage list; enter follows the highlighted link
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.grid.current.id == child, what="the child selected")
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.grid.current.id == root, what="back at the parent")


async def test_lineage_outside_the_loaded_rows_is_fetched(home: Path) -> None:
    app = HostApp(home)
    fill(app.home.db_file, 900)
    with db_session:
        oldest = app.db.get_connection().execute("SELECT min(id) FROM generation").fetchone()[0]
    child = record(app, 1, parent_of=lambda i: oldest)[0]
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        assert screen.model.index_of(oldest) is None
        await shows_detail(pilot, screen, child)
        await pilot.press("p")
        await wait_for(pilot, lambda: screen.grid.current is not None and screen.grid.current.id == oldest,
                       what="the far parent selected")
        assert screen.grid.cursor == 900


async def test_view_toggle_between_grid_and_list(home: Path) -> None:
    app = HostApp(home)
    record(app, 12)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        grid = screen.grid
        assert grid.mode == "grid" and grid.columns > 1
        await pilot.press("right", "down")
        current = grid.current.id
        await pilot.press("v")
        assert grid.mode == "list" and grid.columns == 1
        assert grid.current.id == current
        line = "".join(s.text for s in grid.render_line(grid.cursor - int(grid.scroll_y)))
        assert f"#{current}" in line and "a red fox number" in line
        await pilot.press("down")
        assert grid.current.id == current - 1
        await pilot.press("v")
        assert grid.mode == "grid"
        assert "grid view" in str(app.screen.query_one("#history-status").render())


async def test_new_image_appears_on_top_without_moving_the_user(home: Path) -> None:
    app = HostApp(home)
    record(app, 60)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        grid = screen.grid
        await pilot.press("pagedown", "pagedown")
        before_item, before_scroll = grid.current.id, grid.scroll_y
        row_on_screen = (grid.cursor // grid.columns) * grid.row_height - before_scroll
        assert before_scroll > 0
        newest = record(app, 1, prompt="a brand new image")[0]
        screen.images_recorded()  # what a JobEvent "image" does; the 2 s poll finds it too
        await wait_for(pilot, lambda: screen.model.items[0].id == newest, what="the new image on top")
        assert grid.current.id == before_item
        assert (grid.cursor // grid.columns) * grid.row_height - grid.scroll_y == row_on_screen
        await pilot.press("home")
        assert grid.current.id == newest


async def test_poll_finds_images_recorded_elsewhere(home: Path) -> None:
    app = HostApp(home)
    record(app, 2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        looking_at = screen.grid.current.id
        newest = record(app, 1)[0]
        await wait_for(pilot, lambda: screen.model.items[0].id == newest, timeout=6, what="the 2 s poll")
        # At the top the new image comes into view; the cursor stays on the image the user had.
        assert screen.grid.scroll_y == 0 and screen.grid.current.id == looking_at


async def test_missing_thumbnail_is_made_once_in_a_thread(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 2)
    with db_session:
        uuid = app.db.Generation[ids[-1]].uuid
    thumb = thumbnail_path(app.home.thumbnails, uuid)
    thumb.unlink()
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await wait_for(pilot, lambda: ids[-1] in screen.grid._tiles, what="the tile drawn")
        assert thumb.exists()


async def test_reuse_send_to_and_copy_call_the_app(home: Path) -> None:
    app = HostApp(home)
    ids = record(app, 2)
    rec = Recorder(app.db, app.cfg.output_dir)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("u")
        await wait_for(pilot, lambda: any(c[0] == "open_in_generate" for c in app.calls), what="reuse")
        params = next(c[1] for c in app.calls if c[0] == "open_in_generate")
        assert params["prompt"] == "a red fox number 1" and params["seed"] == 1001
        await pilot.press("i", "m", "U")
        await wait_for(pilot, lambda: len([c for c in app.calls if c[0] == "send_to"]) == 3, what="send-to")
        assert [c for c in app.calls if c[0] == "send_to"] == [
            ("send_to", "img2img", ids[-1]), ("send_to", "inpaint", ids[-1]), ("send_to", "upscale", ids[-1])]
        await pilot.press("y")
        with db_session:
            stored = app.db.Generation[ids[-1]].path
        assert app.clipboard_text == str(rec.file_path(stored))
        await pilot.press("enter")
        await wait_for(pilot, lambda: len([c for c in app.calls if c[0] == "open_in_generate"]) == 2,
                       what="enter reuses too")


async def test_rerun_without_a_service_reports_the_error(home: Path) -> None:
    app = HostApp(home)
    record(app, 1)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("R")
        await wait_for(pilot, lambda: app.errors, what="the error")
        assert "Re-run failed" in app.errors[0][0] and "without the service" in app.errors[0][1]


def test_rerun_params_keep_seed_and_name_the_parent(home: Path) -> None:
    db = open_database(resolve_home(home).db_file)
    cfg = load_config(resolve_home(home))
    rec = Recorder(db, cfg.output_dir)
    gen = rec.record(png_bytes((1, 2, 3)), {"prompt": "p", "seed": 77, "steps": 3, "model": "m.safetensors",
                                            "kind": "variation", "batch": 4}, "variation")
    request = rerun_params(load_detail(db, gen.id))
    assert request["seed"] == 77 and request["parent_id"] == gen.id and request["batch"] == 1
    assert request["kind"] == "variation" and request["prompt"] == "p"
    imported = rec.record(png_bytes((1, 2, 3)), {"prompt": "q", "seed": 5, "kind": "import"}, "import")
    assert "kind" not in rerun_params(load_detail(db, imported.id))  # re-run as a plain txt2img
    up = Recorder(db, cfg.output_dir).record(png_bytes((1, 2, 3)), {"prompt": "p"}, "upscale", gen.id)
    with pytest.raises(ValueError, match="upscale"):
        rerun_params(load_detail(db, up.id))


def test_palette_reaches_every_key() -> None:
    screen_actions = {b.action for b in HistoryScreen.BINDINGS}
    grid_actions = {b.action for b in ThumbGrid.BINDINGS}
    palette_actions = {action for _title, action, _help in HistoryScreen.PALETTE}
    assert screen_actions <= palette_actions
    assert {"first", "last", "page_down", "page_up"} <= palette_actions
    assert all(b.id and b.description for b in [*HistoryScreen.BINDINGS, *ThumbGrid.BINDINGS])
    assert grid_actions >= {"first", "last", "page_down", "page_up"}
    assert HistoryScreen.COMMANDS == {ScreenPaletteCommands}


async def test_palette_runs_a_screen_action(home: Path, offers: Any) -> None:
    app = HostApp(home)
    record(app, 30)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await pilot.press("ctrl+p")
        await offers(pilot, "last image", "last image")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.grid.cursor == 29, what="the palette's 'last image'")


# ------------------------------------------------------------------ with the real service and the real app


@pytest.mark.slow
async def test_rerun_queues_a_child_that_appears_on_top(service: Any) -> None:
    app = HostApp(service.home, connect=True)
    ids = record(app, 3)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot)
        await pilot.press("right")  # the second-newest image
        source = screen.grid.current
        await shows_detail(pilot, screen, source.id)
        await pilot.press("R")
        await wait_for(pilot, lambda: any(c[0] == "submit" for c in app.calls), what="the submit")
        _, kind, request = next(c for c in app.calls if c[0] == "submit")
        assert kind == "generate" and request["parent_id"] == source.id and request["seed"] == source.seed
        await wait_for(pilot, lambda: screen.model.items[0].id not in ids, timeout=120, what="the re-run image")
        child = screen.model.items[0]
        assert child.seed == source.seed and child.prompt == source.prompt
        with db_session:
            assert app.db.Generation[child.id].parent.id == source.id
        assert screen.grid.current.id == source.id  # the user stays on the image they were looking at


async def test_history_inside_the_ddtui_app(home: Path) -> None:
    from ddtui.tui.app import DdtuiApp

    h = resolve_home(home)
    app = DdtuiApp(h, load_config(h), connect=False)
    recorder = Recorder(app.db, app.cfg.output_dir)
    gen = recorder.record(png_bytes((200, 10, 10)), {"prompt": "inside the app", "seed": 5}, "txt2img")
    async with app.run_test(size=SIZE) as pilot:
        app.show_main("history")
        await pilot.pause()
        screen = await started(pilot)
        assert screen.grid.current.id == gen.id
        screen.grid.focus()
        await pilot.press("5")
        await wait_for(pilot, lambda: db_row(app, gen.id) == (5, False), what="rating through the app")
        # A job event forwarded by the app brings a new image in at once (the 2 s poll is paused here).
        screen.poll_timer.pause()
        newer = recorder.record(png_bytes((10, 200, 10)), {"prompt": "just made", "seed": 6}, "txt2img")
        app.on_job_event(JobEvent("7", "image", {"generation_id": newer.id}))
        await wait_for(pilot, lambda: screen.model.items[0].id == newer.id, timeout=1.5, what="the job event")
        assert screen.grid.current.id == gen.id
        await pilot.press("f2")  # the app's key for the Generate screen still works here
        await pilot.pause()
        assert not isinstance(app.screen, HistoryScreen)


def test_history_screen_snapshot(snap_compare, home: Path) -> None:
    from ddtui.tui.app import DdtuiApp

    h = resolve_home(home)
    app = DdtuiApp(h, load_config(h), image_protocol="none", connect=False, service_note="no service in snapshots")
    rec = Recorder(app.db, app.cfg.output_dir)
    parent = None
    for i in range(9):
        params = {"prompt": f"a quiet harbour at dawn, study {i}", "seed": 100 + i, "steps": 4, "cfg": 1.0,
                  "width": 64, "height": 64, "sampler": "euler", "model": "stable-diffusion/demo.safetensors"}
        r = rec.record(png_bytes((20 * i, 120, 200)), params, "txt2img" if i % 3 else "variation", parent,
                       created=datetime(2026, 1, 2, 3, 4, i))
        parent = r.id
        set_user_tags(app.db, r.id, add=["harbour", "dawn" if i % 2 else "study"])
    with db_session:
        app.db.Generation[parent].rating = 4
        app.db.Generation[parent - 1].favorite = True

    async def ready(pilot: Any) -> None:
        app.show_main("history")
        await pilot.pause()
        screen = await started(pilot)
        screen.poll_timer.pause()
        await pilot.press("right")
        await shows_detail(pilot, screen, parent - 1)
        await wait_for(pilot, lambda: app.screen.query_one("#filter-tags", SelectionList).option_count == 3)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
