"""The History screen: the searchable, virtualised grid of every generation, with its filters and details.

It owns the screen's workers: row pages (keyset, a page ahead of the view), the detail of the image under
the cursor, edits (rating, favorite, tags, delete) and the check for newly recorded images (a `JobEvent`
"image" from the app, or a cheap max-id poll every two seconds while the screen is shown). Everything a key
does is also a command palette entry (`PALETTE`, served by `ScreenPaletteCommands`).

Host app API used: `home`, `cfg`, `db`, `image_protocol`, `open_in_generate(params)`, `send_to(kind, id)`
(img2img, inpaint, explore, upscale; also from the detail panel's buttons), `submit(kind, params, priority,
group)`, `notify_error(title, detail)`, `copy_to_clipboard(text)`. Like every main screen it shows the header
and the row of screens (`ScreenNav`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pony.orm import db_session
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Footer, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...core.params import rerun_request
from ...core.recording import Recorder
from ...core.tagging import set_user_tags
from ...core.thumbnails import ensure_thumbnail, thumbnail_path
from ...db.queries import HistoryItem, HistoryQuery, models_in_history, tag_counts
from ..history_model import MAX_FETCH, HistoryModel
from ..host import Host
from ..messages import JobEvent, SettingsChanged
from ..viewing import history_viewing
from ..widgets.detail import DetailPanel, GenerationDetail, load_detail
from ..widgets.filterbar import FilterBar
from ..widgets.thumbgrid import ThumbGrid
from .base import MainScreen, ScreenPaletteCommands, title_bars

POLL_S = 2.0
DETAIL_DELAY_S = 0.06
FACETS = 40
RERUN_KINDS = ("txt2img", "img2img", "inpaint", "variation")


@dataclass
class DeleteChoice:
    delete_file: bool


class ConfirmDelete(ModalScreen[DeleteChoice | None]):
    """Asks before deleting an image from the history; optionally its file too."""

    CSS_PATH = "history.tcss"
    BINDINGS = [
        Binding("y", "confirm", "Delete", id="history.delete.confirm"),
        Binding("n,escape", "cancel", "Keep", id="history.delete.cancel"),
        Binding("a", "toggle_file", "Also delete the file", id="history.delete.file"),
    ]

    def __init__(self, item: HistoryItem, file_path: Path) -> None:
        super().__init__()
        self.item = item
        self.file_path = file_path

    def compose(self) -> ComposeResult:
        with Vertical(id="delete-dialog"):
            yield Label(f"Delete image #{self.item.id} from the history?", id="delete-title")
            yield Static(" ".join(self.item.prompt.split())[:200], id="delete-prompt", markup=False)
            yield Checkbox(f"also delete the file {self.file_path.name} (a)", id="delete-file")
            with Horizontal(id="delete-buttons"):
                yield Button("Delete (y)", variant="error", id="delete-yes")
                yield Button("Keep (n)", id="delete-no")

    def on_mount(self) -> None:
        self.query_one("#delete-no", Button).focus()

    @on(Button.Pressed, "#delete-yes")
    def action_confirm(self) -> None:
        self.dismiss(DeleteChoice(self.query_one("#delete-file", Checkbox).value))

    @on(Button.Pressed, "#delete-no")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_toggle_file(self) -> None:
        box = self.query_one("#delete-file", Checkbox)
        box.value = not box.value


class HistoryScreen(MainScreen[None]):
    """Every generation, newest first: grid or list, filters, details, and single-key actions."""

    CSS_PATH = "history.tcss"
    COMMANDS = {ScreenPaletteCommands}
    TITLE = "History"
    AUTO_FOCUS = "#history-grid"  # the single-key actions work on the grid: it has the focus when shown

    BINDINGS = [
        *[Binding(str(n), f"rate({n})", f"Rate {n}", show=False, id=f"history.rate_{n}") for n in range(6)],
        Binding("f", "toggle_favorite", "Favorite", id="history.favorite"),
        Binding("d", "delete", "Delete", id="history.delete"),
        Binding("u,enter", "reuse", "Reuse", id="history.reuse"),
        Binding("i", "send_to('img2img')", "img2img", id="history.img2img"),
        Binding("m", "send_to('inpaint')", "Inpaint", id="history.inpaint"),
        Binding("x", "send_to('explore')", "Explore", id="history.explore"),
        Binding("U", "send_to('upscale')", "Upscale", id="history.upscale"),
        Binding("R", "rerun", "Re-run", id="history.rerun"),
        Binding("y", "copy_path", "Copy path", id="history.copy_path"),
        Binding("slash", "focus_filter", "Filter", id="history.filter"),
        Binding("t", "edit_tags", "Tags", id="history.tags"),
        Binding("v", "toggle_view", "Grid/list", id="history.view"),
        Binding("p", "go_parent", "Parent", show=False, id="history.parent"),
        Binding("c", "focus_lineage", "Lineage", show=False, id="history.lineage"),
        Binding("ctrl+l", "clear_filters", "Clear filters", show=False, id="history.clear_filters"),
        Binding("escape", "back_to_grid", "Back to the images", show=False, id="history.grid"),
        Binding("space", "view_image", "View", id="history.view_image"),
        Binding("C", "compare_parent", "Compare with parent", show=False, id="history.compare"),
        Binding("plus,equals_sign", "tile_size(1)", "Bigger tiles", show=False, id="history.bigger"),
        Binding("minus", "tile_size(-1)", "Smaller tiles", show=False, id="history.smaller"),
    ]

    # (title, action, help): what the command palette offers; every key above has its entry.
    PALETTE: ClassVar[list[tuple[str, str, str]]] = [
        *[(f"History: rate {n}" if n else "History: clear the rating", f"rate({n})", f"key {n}")
          for n in range(6)],
        ("History: toggle favorite", "toggle_favorite", "key f"),
        ("History: delete the image", "delete", "key d; asks first, optionally deletes the file"),
        ("History: reuse the parameters in Generate", "reuse", "key u or enter"),
        ("History: send to img2img", "send_to('img2img')", "key i"),
        ("History: inpaint (paint a mask over it)", "send_to('inpaint')", "key m"),
        ("History: explore variations around it", "send_to('explore')", "key x; a 3x3 grid, only the seed free"),
        ("History: upscale", "send_to('upscale')", "key U"),
        ("History: re-run exactly", "rerun", "key R; same seed and parameters, as a child of this image"),
        ("History: copy the file path", "copy_path", "key y"),
        ("History: search and filter", "focus_filter", "key /"),
        ("History: edit tags", "edit_tags", "key t; your tags are never replaced by the tagger"),
        ("History: toggle grid / list", "toggle_view", "key v"),
        ("History: go to the parent image", "go_parent", "key p"),
        ("History: parents and children", "focus_lineage", "key c"),
        ("History: clear all filters", "clear_filters", "ctrl+l"),
        ("History: back to the images", "back_to_grid", "escape"),
        ("History: first image", "first", "key home"),
        ("History: last image", "last", "key end"),
        ("History: next page", "page_down", "key pagedown"),
        ("History: previous page", "page_up", "key pageup"),
        ("History: view the image full screen", "view_image", "key space; zoom, pan, next/previous, compare"),
        ("History: compare with its parent", "compare_parent", "key C; side by side, differences listed"),
        ("History: bigger tiles", "tile_size(1)", "key +"),
        ("History: smaller tiles", "tile_size(-1)", "key -"),
    ]

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.model: HistoryModel | None = None
        self._want = -1
        self._fetching = False
        self._seek_id: int | None = None
        self._polling = False
        self._detail_timer: Timer | None = None
        self.page_shown_at: float | None = None  # perf_counter when the last page was applied (benchmarks)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        self.model = HistoryModel(self.app.db)
        yield from title_bars()
        with Horizontal(id="history-body"):
            yield FilterBar(id="history-filters")
            with Vertical(id="history-main"):
                yield Static("", id="history-status")
                yield ThumbGrid(self.model, self._thumbnail_for, id="history-grid")
            yield DetailPanel(id="history-detail")
        yield Footer()

    @property
    def grid(self) -> ThumbGrid:
        return self.query_one("#history-grid", ThumbGrid)

    @property
    def detail(self) -> DetailPanel:
        return self.query_one("#history-detail", DetailPanel)

    @property
    def filters(self) -> FilterBar:
        return self.query_one("#history-filters", FilterBar)

    def on_mount(self) -> None:
        self._recorder = Recorder(self.app.db, Path(self.app.cfg.output_dir))
        self.grid.show_images = self.app.image_protocol != "none"
        self.grid.focus()
        self._load_facets("")
        self.poll_timer = self.set_interval(POLL_S, self._poll)
        self._update_status()

    def on_screen_resume(self) -> None:
        self._poll()

    # ------------------------------------------------------------------ rows

    @on(ThumbGrid.NeedRows, "#history-grid")
    def _need_rows(self, event: ThumbGrid.NeedRows) -> None:
        self._want = max(self._want, event.want)
        self._start_fetch()

    def _start_fetch(self) -> None:
        if not self._fetching:
            self._fetching = True
            self._fetch_rows()

    def _plan(self) -> tuple[int, int | None, int] | None:
        """The next fetch, decided on the UI thread; ends the fetch loop when nothing is missing."""
        assert self.model is not None
        want = self._want
        if self._seek_id is not None:
            last = self.model.items[-1].id if self.model.items else None
            if self.model.exhausted or (last is not None and last <= self._seek_id):
                self._finish_seek()
            else:
                want = max(want, len(self.model.items) + MAX_FETCH - 1)
        plan = self.model.plan(want)
        if plan is None:
            self._fetching = False
        return plan

    @work(thread=True, group="history-rows", exit_on_error=False)
    def _fetch_rows(self) -> None:
        assert self.model is not None
        while (plan := self.app.call_from_thread(self._plan)) is not None:
            fetched = self.model.fetch(*plan)
            self.app.call_from_thread(self._apply_rows, fetched)

    def _apply_rows(self, fetched: Any) -> None:
        assert self.model is not None
        first = not self.model.started
        if self.model.apply(fetched):
            self.grid.rows_changed()
            self.page_shown_at = time.perf_counter()
            if first:
                self._update_status()

    def _update_status(self) -> None:
        if self.model is None:
            return
        if not self.model.started:
            text = "loading\u2026"
        else:
            total = self.model.known_rows
            what = "image" if total == 1 else "images"
            text = f"{total:,} {what}" + ("" if self.model.query.is_empty() else " match the filters")
        self.query_one("#history-status", Static).update(f"{text} \u00b7 {self.grid.mode} view")

    # ------------------------------------------------------------------ filters

    @on(FilterBar.Changed, "#history-filters")
    def _filters_changed(self, event: FilterBar.Changed) -> None:
        self.apply_query(event.query)

    def apply_query(self, query: HistoryQuery) -> None:
        """Show the rows matching `query` from the top."""
        assert self.model is not None
        self.model.reset(query)
        self._want = -1
        self._seek_id = None
        self.grid.reset_view()
        self._update_status()

    @on(FilterBar.TagPrefixChanged, "#history-filters")
    def _tag_prefix(self, event: FilterBar.TagPrefixChanged) -> None:
        self._load_facets(event.prefix)

    @work(thread=True, group="history-facets", exclusive=True, exit_on_error=False)
    def _load_facets(self, prefix: str) -> None:
        facets = tag_counts(self.app.db, limit=FACETS, prefix=prefix)
        models = models_in_history(self.app.db) if not prefix else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_facets, facets, models)

    def _show_facets(self, facets: list, models: list | None) -> None:
        self.filters.set_facets(facets)
        if models is not None:
            self.filters.set_models(models)

    # ------------------------------------------------------------------ the detail panel

    @on(ThumbGrid.Highlighted, "#history-grid")
    def _highlighted(self, event: ThumbGrid.Highlighted) -> None:
        if event.item is None:
            return
        if self._detail_timer is not None:
            self._detail_timer.stop()
        # While keys repeat, the panel waits for the cursor to rest: the grid stays smooth.
        self._detail_timer = self.set_timer(DETAIL_DELAY_S, partial(self._load_detail, event.item.id, ""))

    @work(thread=True, group="history-detail", exclusive=True, exit_on_error=False)
    def _load_detail(self, generation_id: int, note: str) -> None:
        detail = load_detail(self.app.db, generation_id)
        thumb = self._thumbnail_path(detail) if detail else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_detail, detail, thumb, note)

    def _show_detail(self, detail: GenerationDetail | None, thumb: Path | None, note: str) -> None:
        self.detail.show(detail, thumb, note)

    def _thumbnail_path(self, detail: GenerationDetail) -> Path | None:
        path = thumbnail_path(self.app.home.thumbnails, detail.uuid)
        if path.exists():
            return path
        source = self._recorder.file_path(detail.path)
        if not source.exists():
            return None
        try:
            return ensure_thumbnail(source, self.app.home.thumbnails, detail.uuid)
        except OSError:
            return None

    def _thumbnail_for(self, item: HistoryItem) -> Path | None:
        """The grid's loader (worker thread): the cached thumbnail, made once from the image if missing."""
        path = thumbnail_path(self.app.home.thumbnails, item.uuid)
        if path.exists():
            return path
        source = self._recorder.file_path(item.path)
        if not source.exists():
            return None
        return ensure_thumbnail(source, self.app.home.thumbnails, item.uuid)

    # ------------------------------------------------------------------ lineage

    @on(DetailPanel.Navigate, "#history-detail")
    def _navigate(self, event: DetailPanel.Navigate) -> None:
        self.go_to(event.generation_id)

    @on(DetailPanel.SendTo, "#history-detail")
    def _detail_send_to(self, event: DetailPanel.SendTo) -> None:
        self._send_to(event.kind, event.generation_id)

    def go_to(self, generation_id: int) -> None:
        """Move the cursor to a generation; rows are fetched down to it, and one outside the filter is
        shown in the detail panel only."""
        assert self.model is not None
        index = self.model.index_of(generation_id)
        if index is not None:
            self.grid.select_index(index)
            self.grid.focus()
            return
        top = self.model.items[0].id if self.model.items else None
        if self.model.exhausted or (top is not None and generation_id > top):
            self._load_detail(generation_id, "outside the current filter (ctrl+l clears the filters)")
            return
        self._seek_id = generation_id
        self._start_fetch()

    def _finish_seek(self) -> None:
        assert self.model is not None
        target, self._seek_id = self._seek_id, None
        if target is None:
            return
        index = self.model.index_of(target)
        if index is not None:
            self.call_later(self.grid.select_index, index)
            self.call_later(self.grid.focus)
        else:
            self._load_detail(target, "outside the current filter (ctrl+l clears the filters)")

    def action_go_parent(self) -> None:
        parent = self.detail.detail.parent if self.detail.detail else None
        if parent is None:
            self.notify("This image has no parent.", severity="warning")
            return
        self.go_to(parent.id)

    def action_focus_lineage(self) -> None:
        self.detail.focus_lineage()

    def action_view_image(self, compare: bool = False) -> None:
        if (viewing := history_viewing(self)) is not None:
            self.app.open_viewer(*viewing, compare=compare)

    def action_compare_parent(self) -> None:
        self.action_view_image(compare=True)

    def action_tile_size(self, step: int) -> None:
        self.grid.step_tile_size(step)

    # ------------------------------------------------------------------ live updates

    @on(JobEvent)
    def _job_event(self, event: JobEvent) -> None:
        if event.event in ("image", "done"):
            self._poll()

    @on(SettingsChanged)
    def _settings_changed(self, event: SettingsChanged) -> None:
        if any(key.startswith("paths.") for key in event.changed):  # files now resolve under the new folder
            self._recorder = Recorder(self.app.db, Path(self.app.cfg.output_dir))

    def images_recorded(self) -> None:
        """Look for new images now (the app may call this on job events)."""
        self._poll()

    def _poll(self) -> None:
        if self.model is None or not self.model.started or self._polling or not self.is_current:
            return
        self._polling = True
        self._check_new(self.model.epoch, self.model.query, self.model.newest_seen)

    @work(thread=True, group="history-poll", exit_on_error=False)
    def _check_new(self, epoch: int, query: HistoryQuery, newest_seen: int) -> None:
        assert self.model is not None
        try:
            latest = self.model.latest_id()
            fresh = self.model.fetch_newer(newest_seen, query) if latest > newest_seen else []
        finally:
            self._polling = False
        if latest > newest_seen:
            self.app.call_from_thread(self._apply_new, epoch, fresh, latest)

    def _apply_new(self, epoch: int, fresh: list[HistoryItem], latest: int) -> None:
        assert self.model is not None
        if epoch != self.model.epoch:
            return
        added = self.model.prepend(fresh, latest)
        if added:
            self.grid.rows_prepended(added)
            self._update_status()
            self._load_facets("")

    # ------------------------------------------------------------------ actions on the current image

    def _current(self) -> HistoryItem | None:
        item = self.grid.current
        if item is None:
            self.notify("No image selected.", severity="warning")
        return item

    def action_rate(self, rating: int) -> None:
        if (item := self._current()) is not None:
            self._save_flags(item.id, rating=rating)

    def action_toggle_favorite(self) -> None:
        if (item := self._current()) is not None:
            self._save_flags(item.id, favorite=not item.favorite)

    @work(thread=True, group="history-edit", exit_on_error=False)
    def _save_flags(self, generation_id: int, rating: int | None = None, favorite: bool | None = None) -> None:
        db = self.app.db
        with db_session:
            gen = db.Generation.get(id=generation_id)
            if gen is None:
                raise LookupError(f"image #{generation_id} is no longer in the history")
            if rating is not None:
                gen.rating = rating
            if favorite is not None:
                gen.favorite = favorite
            values = (gen.rating, gen.favorite)
        self.app.call_from_thread(self._flags_saved, generation_id, *values)

    def _flags_saved(self, generation_id: int, rating: int, favorite: bool) -> None:
        assert self.model is not None
        self.model.update(generation_id, rating=rating, favorite=favorite)
        self.grid.item_changed(generation_id)
        if self.detail.detail and self.detail.detail.id == generation_id:
            self.detail.set_rating(rating, favorite)

    def action_delete(self) -> None:
        if (item := self._current()) is None:
            return
        path = self._recorder.file_path(item.path)
        self.app.push_screen(ConfirmDelete(item, path), callback=partial(self._delete_chosen, item))

    def _delete_chosen(self, item: HistoryItem, choice: DeleteChoice | None) -> None:
        if choice is not None:
            self._delete(item, choice.delete_file)

    @work(thread=True, group="history-edit", exit_on_error=False)
    def _delete(self, item: HistoryItem, delete_file: bool) -> None:
        db = self.app.db
        # The row goes first: a file without a row is adopted again at start; a row without a file is broken.
        with db_session:
            gen = db.Generation.get(id=item.id)
            if gen is not None:
                gen.delete()
        thumbnail_path(self.app.home.thumbnails, item.uuid).unlink(missing_ok=True)
        problem = ""
        if delete_file:
            try:
                self._recorder.file_path(item.path).unlink(missing_ok=True)
            except OSError as exc:
                problem = f"the file could not be deleted: {exc.strerror or exc}"
        self.app.call_from_thread(self._deleted, item, delete_file, problem)

    def _deleted(self, item: HistoryItem, delete_file: bool, problem: str) -> None:
        assert self.model is not None
        index = self.model.remove(item.id)
        self.grid.forget_tile(item.id)
        if index is not None:
            self.grid.row_removed(index)
        self._update_status()
        self._load_facets("")
        if problem:
            self._error(f"Deleted #{item.id} from the history, but not its file", problem)
        else:
            self.notify(f"Deleted #{item.id}" + (" and its file" if delete_file else ""))

    def action_edit_tags(self) -> None:
        if self._current() is not None:
            self.detail.edit_tags()

    @on(DetailPanel.TagsEdited, "#history-detail")
    def _tags_edited(self, event: DetailPanel.TagsEdited) -> None:
        self._save_tags(event.generation_id, event.add, event.remove)

    @work(thread=True, group="history-edit", exit_on_error=False)
    def _save_tags(self, generation_id: int, add: list[str], remove: list[str]) -> None:
        names = set_user_tags(self.app.db, generation_id, add=add, remove=remove)
        self.app.call_from_thread(self._tags_saved, generation_id, names)

    def _tags_saved(self, generation_id: int, names: list[str]) -> None:
        self.notify(f"Tags of #{generation_id}: {', '.join(names) or 'none'}")
        self._load_detail(generation_id, "")
        self._load_facets("")
        self.grid.focus()

    def action_copy_path(self) -> None:
        if (item := self._current()) is None:
            return
        path = str(self._recorder.file_path(item.path))
        self.app.copy_to_clipboard(path)
        self.notify(f"Copied {path}")

    def action_reuse(self) -> None:
        if (item := self._current()) is not None:
            self._with_detail(item.id, "reuse")

    def action_send_to(self, kind: str) -> None:
        if (item := self._current()) is not None:
            self._send_to(kind, item.id)

    def _send_to(self, kind: str, generation_id: int) -> None:
        try:
            self.app.send_to(kind, generation_id)
        except Exception as exc:  # noqa: BLE001 - the app refused: say why, keep the screen
            self._error(f"Send to {kind} failed", str(exc))

    def action_rerun(self) -> None:
        if (item := self._current()) is not None:
            self._with_detail(item.id, "rerun")

    @work(thread=True, group="history-detail-action", exit_on_error=False)
    def _with_detail(self, generation_id: int, what: str) -> None:
        detail = load_detail(self.app.db, generation_id)
        if detail is None:
            raise LookupError(f"image #{generation_id} is no longer in the history")
        self.app.call_from_thread(self._act, what, detail)

    def _act(self, what: str, detail: GenerationDetail) -> None:
        if what == "reuse":
            try:
                self.app.open_in_generate(reuse_params(detail))
            except Exception as exc:  # noqa: BLE001 - the app refused: say why, keep the screen
                self._error("Open in Generate failed", str(exc))
        elif what == "rerun":
            try:
                request = rerun_params(detail)
            except ValueError as exc:
                self._error("Cannot re-run this image", str(exc))
                return
            self.run_worker(self._rerun(request), group="history-rerun", exit_on_error=False)

    async def _rerun(self, request: dict[str, Any]) -> None:
        try:
            job = await self.app.submit("generate", request)
        except Exception as exc:  # noqa: BLE001 - the service refused or is away: say why, keep the screen
            self._error("Re-run failed", str(exc))
            return
        self.notify(f"Re-run of #{request['parent_id']} queued (job {job.get('id')})")

    # ------------------------------------------------------------------ view and focus

    def action_focus_filter(self) -> None:
        self.filters.focus_text()

    def action_back_to_grid(self) -> None:
        if self.detail.detail is not None and self.focused is self.query_one("#detail-tags"):
            self.detail.show(self.detail.detail, None)  # drop an unsaved tag edit
            self._load_detail(self.detail.detail.id, "")
        self.grid.focus()

    def action_toggle_view(self) -> None:
        self.grid.mode = "list" if self.grid.mode == "grid" else "grid"
        self._update_status()

    def action_clear_filters(self) -> None:
        self.filters.clear()

    def action_first(self) -> None:
        self.grid.action_first()

    def action_last(self) -> None:
        self.grid.action_last()

    def action_page_down(self) -> None:
        self.grid.action_page_down()

    def action_page_up(self) -> None:
        self.grid.action_page_up()

    # ------------------------------------------------------------------ failures

    def _error(self, title: str, detail: str) -> None:
        self.app.notify_error(title, detail)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        group = event.worker.group
        if group == "history-rows":
            self._fetching = False
            self.grid.rows_requested_again()
        elif group == "history-poll":
            self._polling = False
        # MainScreen reports the failure itself.


def reuse_params(detail: GenerationDetail) -> dict[str, Any]:
    """The parameters a Generate form takes from a history item (everything recorded, minus job plumbing)."""
    params = {k: v for k, v in detail.params.items() if k not in ("options", "batch", "preview_every",
                                                                  "preview_size", "parent_id")}
    for key in ("prompt", "negative_prompt", "model", "width", "height", "seed"):
        if params.get(key) in (None, ""):
            params[key] = getattr(detail, key)
    return params


def rerun_params(detail: GenerationDetail) -> dict[str, Any]:
    """A generate request that re-runs the item exactly, recorded as its child."""
    if detail.kind == "upscale":
        raise ValueError("an upscale is re-run from its source image: select the parent (p) and press U")
    request = rerun_request(reuse_params(detail))
    if request.get("kind") not in RERUN_KINDS:
        request.pop("kind", None)
    request["parent_id"] = detail.id
    return request


# ------------------------------------------------------------------ benchmark hook


async def measure_next_page(pilot: Any, pages: int = 20) -> list[float]:
    """Seconds from a page-down key to the drawn frame that shows that page, for `pages` pages in a row.

    Run it with a HistoryScreen active under `App.run_test()`. Each figure covers the key, any row fetch the
    prefetch had not already done, and drawing the grid; the Pilot's own waiting after the frame is not
    counted, and thumbnails (drawn when their thread delivers them) are not either.
    """
    screen = pilot.app.screen
    if not isinstance(screen, HistoryScreen) or screen.model is None:
        raise RuntimeError("the History screen is not the active screen")
    grid, model = screen.grid, screen.model
    grid.focus()
    await pilot.pause()
    times = []
    for _ in range(pages):
        grid.draw_times = []
        loaded_before = len(model.items)
        t0 = time.perf_counter()
        await pilot.press("pagedown")
        while grid.visible_range()[1] >= len(model.items) and not model.exhausted:
            await pilot.pause(0.001)
        await pilot.pause()
        # Rows the prefetch had loaded are drawn with the key; others once their page was applied.
        fetched = grid.visible_range()[1] >= loaded_before
        ready = max(t0, grid.moved_at, screen.page_shown_at or t0 if fetched else t0)
        drawn = [t for t in grid.draw_times if t >= ready]
        times.append((drawn[0] if drawn else time.perf_counter()) - t0)
    grid.draw_times = None
    return times


class HistoryBenchApp(Host):
    """A minimal host for the History screen alone: what `bench_next_page` runs (and a quick manual look)."""

    def __init__(self, db_path: Path, home_root: Path) -> None:
        super().__init__()
        from ...config import Config, Home
        from ...db.schema import open_database

        self.db = open_database(db_path)
        self.home = Home(home_root)
        self.cfg = Config({"paths": {"model_dir": "", "output_dir": str(home_root / "outputs")}}, self.home)
        self.image_protocol = "halfcell"

    def on_mount(self) -> None:
        self.push_screen(HistoryScreen())


def bench_next_page(db_path: Path, pages: int = 20, size: tuple[int, int] = (160, 48)) -> list[float]:
    """Time to show the next grid page, page after page, on the history at `db_path` (headless)."""
    import asyncio
    import tempfile

    async def run() -> list[float]:
        with tempfile.TemporaryDirectory() as tmp:
            app = HistoryBenchApp(Path(db_path), Path(tmp))
            async with app.run_test(size=size) as pilot:
                screen = app.screen
                for _ in range(200):  # the first page
                    if isinstance(screen, HistoryScreen) and screen.model and screen.model.started:
                        break
                    await pilot.pause(0.01)
                    screen = app.screen
                return await measure_next_page(pilot, pages)

    return asyncio.run(run())
