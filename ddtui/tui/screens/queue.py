"""The queue screen: jobs with their state and progress, and the keys to cancel, retry, reprioritise and pause.

Rows come straight from the `job` table (the queue is the table), reloaded when a job event arrives and
every few seconds while the screen is shown; progress events update their cell in between. Actions go to the
service, which owns the queue.
"""

from __future__ import annotations

from pathlib import Path

from datetime import datetime, timezone
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Static

from ...core.client import RequestFailed, ServiceUnavailable
from ...db.records import JobRecord as JobInfo
from ..keys import bindings_for
from ..messages import JobEvent, JobProgress, ServiceState
from ..widgets.progress import format_seconds
from .base import MainScreen, title_bars

ACTIVE = ("running", "queued", "failed")
FINISHED_SHOWN = 100
RELOAD_EVERY_S = 3.0
STATE_STYLE = {"running": "bold magenta", "queued": "cyan", "failed": "bold red", "done": "green",
               "cancelled": "yellow"}
COLUMNS = (("id", "Job"), ("type", "Type"), ("state", "State"), ("priority", "Prio"), ("progress", "Progress"),
           ("attempts", "Tries"), ("worker", "Worker"), ("what", "What"), ("note", "Note"))


def local(dt: datetime) -> datetime:
    """Job times are stored as naive UTC; people read local time."""
    return dt.replace(tzinfo=timezone.utc).astimezone()


def _clip(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def progress_cell(fraction: float, width: int = 10) -> Text:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    text = Text("━" * filled, style="magenta")
    text.append("━" * (width - filled), style="grey37")
    text.append(f" {fraction * 100:3.0f}%")
    return text


class QueueScreen(MainScreen[None]):
    """Every queued, running and failed job (and, with `a`, the finished ones)."""

    CSS_PATH = Path(__file__).parent / "queue.tcss"
    TITLE = "Queue"
    BINDINGS = bindings_for("queue")

    show_all: reactive[bool] = reactive(False, init=False)
    paused: reactive[bool] = reactive(False, init=False)

    def __init__(self) -> None:
        super().__init__(name="queue")
        self.jobs: dict[str, JobInfo] = {}
        self._reload_pending = False

    def compose(self) -> ComposeResult:
        yield from title_bars()
        yield Static("", id="queue-summary")
        table: DataTable = DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="queue-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(RELOAD_EVERY_S, self._tick)

    def on_screen_resume(self) -> None:
        self.reload()

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    # ------------------------------------------------------------------ loading

    @work(group="queue-load", thread=True, exclusive=True, exit_on_error=False)
    def reload(self) -> None:
        store = self.app.store
        jobs = store.jobs(ACTIVE, limit=300)
        if self.show_all:
            jobs += [j for j in store.finished_jobs(FINISHED_SHOWN) if j.state in ("done", "cancelled")]
        paused = store.queue_paused()
        self.app.call_from_thread(self._show, jobs, paused)

    def _show(self, jobs: list[JobInfo], paused: bool) -> None:
        self._reload_pending = False
        table = self.query_one("#jobs", DataTable)
        selected = self.selected_job_id()
        self.jobs = {str(j.id): j for j in jobs}
        table.clear()
        for job in jobs:
            table.add_row(*self._cells(job), key=str(job.id))
        if selected in self.jobs:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        self.paused = paused
        self._summary()
        self._detail()

    def _cells(self, job: JobInfo) -> list[Any]:
        what = job.payload.get("prompt", "") if job.type == "generate" else (
            f"image #{job.generation_id}" if job.generation_id else "")
        if job.type == "generate" and job.payload.get("batch", 1) > 1:
            what = f"×{job.payload['batch']} {what}"
        # A cancelled job's error is the lost attempt's (a cancel now ends its worker): the cancel is the news.
        note = "cancelled" if job.state == "cancelled" else job.error or ""
        if job.state == "done" and job.result.get("generation_ids"):
            note = "→ " + " ".join(f"#{i}" for i in job.result["generation_ids"][:6])
        elif job.state == "running" and job.started is not None:
            note = note or f"started {local(job.started):%H:%M:%S}"
        return [
            Text(str(job.id), justify="right"),
            job.type,
            Text(job.state, style=STATE_STYLE.get(job.state, "")),
            Text(f"{job.priority:+d}" if job.priority else "0", justify="right"),
            progress_cell(job.progress),
            f"{job.attempts}/{job.max_attempts}",
            job.worker or "",
            _clip(what, 48),
            Text(_clip(note, 48), style="red" if job.state == "failed" else "dim"),
        ]

    def _summary(self) -> None:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        parts = [f"{counts.get(s, 0)} {s}" for s in ("running", "queued", "failed")]
        state = "[b red]PAUSED[/] (p resumes)" if self.paused else "[green]running[/] (p pauses)"
        scope = "all jobs (a: active only)" if self.show_all else "active jobs (a: also finished)"
        offline = "" if self.app.link.connected else "  [yellow]service offline: actions need it[/]"
        self.query_one("#queue-summary", Static).update(f"Queue {state} · {', '.join(parts)} · {scope}{offline}")

    def selected_job_id(self) -> str | None:
        table = self.query_one("#jobs", DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - the cursor sits outside the rows while they reload
            return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        job = self.jobs.get(self.selected_job_id() or "")
        if job is None:
            text = "No job selected." if self.jobs else "The queue is empty."
        else:
            took = ""
            if job.started and job.finished:
                took = f" · took {format_seconds((job.finished - job.started).total_seconds())}"
            prompt = job.payload.get("prompt", "")
            text = (f"Job {job.id} · {job.type} · {job.state} · created {local(job.created):%Y-%m-%d %H:%M:%S}{took}"
                    + (f" · group {escape(job.group)}" if job.group else "")
                    + (f"\n{escape(_clip(prompt, 300))}" if prompt else "")
                    + (f"\n[red]{escape(_clip(job.error, 300))}[/]" if job.error and job.state != "cancelled"
                       else ""))
        self.query_one("#queue-detail", Static).update(text)

    def _schedule_reload(self) -> None:
        if not self._reload_pending:
            self._reload_pending = True
            self.set_timer(0.2, self.reload)

    # ------------------------------------------------------------------ live events

    def on_job_event(self, message: JobEvent) -> None:
        if message.event in ("queue_paused", "queue_resumed"):
            self.paused = message.event == "queue_paused"
            self._summary()
        if message.event not in ("token", "preview"):
            self._schedule_reload()

    def on_job_progress(self, message: JobProgress) -> None:
        job = self.jobs.get(message.job_id)
        if job is None:
            return
        job.progress = message.fraction
        table = self.query_one("#jobs", DataTable)
        try:
            table.update_cell(message.job_id, "progress", progress_cell(message.fraction))
        except Exception:  # noqa: BLE001 - the row went away in a reload meanwhile
            pass

    def on_service_state(self, message: ServiceState) -> None:
        self._summary()

    # ------------------------------------------------------------------ actions

    def _job_or_warn(self) -> JobInfo | None:
        job = self.jobs.get(self.selected_job_id() or "")
        if job is None:
            self.notify("Select a job first (↑/↓).", severity="warning")
        return job

    def action_cancel(self) -> None:
        if job := self._job_or_warn():
            after = " after the current image" if job.state == "running" else ""
            self.send("cancel_job", {"job_id": str(job.id), "now": False}, f"Cancel job {job.id}",
                      f"Job {job.id} is cancelled; it stops{after}." if after else f"Job {job.id} is cancelled.")

    def action_cancel_now(self) -> None:
        if job := self._job_or_warn():
            restart = " (its worker restarts with the model)" if job.state == "running" else ""
            self.send("cancel_job", {"job_id": str(job.id), "now": True}, f"Cancel job {job.id} now",
                      f"Job {job.id} is cancelled at once{restart}.")

    def action_retry(self) -> None:
        if job := self._job_or_warn():
            self.send("retry_job", {"job_id": str(job.id)}, f"Retry job {job.id}")

    def action_priority(self, delta: int) -> None:
        if job := self._job_or_warn():
            self.send("set_priority", {"job_id": str(job.id), "priority": job.priority + delta},
                      f"Priority of job {job.id}")

    def action_toggle_pause(self) -> None:
        self.send("resume_queue" if self.paused else "pause_queue", {}, "Resume" if self.paused else "Pause")

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all

    def watch_show_all(self) -> None:
        self.reload()

    @work(group="queue-action", exit_on_error=False)
    async def send(self, request: str, content: dict[str, Any], what: str, done: str = "") -> None:
        try:
            result = await self.app.request(request, content)
        except (RequestFailed, ServiceUnavailable) as exc:
            self.app.notify_error(f"{what}: refused", str(exc))
            return
        if "paused" in result:
            self.paused = bool(result["paused"])
            self.notify("Queue paused: running jobs finish, nothing new starts." if self.paused
                        else "Queue resumed.", title="Queue")
        elif done:
            self.notify(done, title=what, timeout=4)
        elif "job" in result:
            job = result["job"]
            self.notify(f"Job {job.get('id')} is {job.get('state')} (priority {job.get('priority')}).",
                        title=what, timeout=3)
        self.reload()
