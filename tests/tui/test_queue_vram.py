"""The queue, VRAM and settings screens through their keys: against a real service for the queue actions
and worker states, and against real files for the settings checks and the /proc figures.
"""

from __future__ import annotations

import json

from pony.orm import db_session
from textual.widgets import DataTable, Input, OptionList

from ddtui.tui.screens.errors import ErrorLogScreen
from ddtui.tui.screens.queue import QueueScreen
from ddtui.tui.screens.settings import SettingsScreen, error_id, field_id
from ddtui.tui.screens.vram import SystemProbe, VramScreen

SIZE = (160, 48)


def job_state(app, job_id: int) -> str:
    with db_session:
        return app.db.Job[job_id].state


async def select_job(pilot, screen: QueueScreen, job_id: int, wait) -> None:
    table = screen.query_one("#jobs", DataTable)
    await wait(pilot, lambda: str(job_id) in screen.jobs, 10, f"job {job_id} in the table")
    table.move_cursor(row=table.get_row_index(str(job_id)))
    await pilot.pause()
    assert screen.selected_job_id() == str(job_id)


async def test_queue_pause_cancel_retry_priority_resume(service, app_at, wait):
    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        await pilot.press("p")  # pause: the jobs below stay queued
        await wait(pilot, lambda: screen.paused, 10, "the queue to pause")
        assert "PAUSED" in str(screen.query_one("#queue-summary").render())
        first = await app.submit("generate", {"prompt": "a kept job"})
        second = await app.submit("generate", {"prompt": "a cancelled job"})
        await select_job(pilot, screen, second["id"], wait)
        await pilot.press("c")
        await wait(pilot, lambda: job_state(app, second["id"]) == "cancelled", 10, "the cancel")
        await wait(pilot, lambda: screen.jobs.get(str(second["id"])) is None, 10, "the row to leave active jobs")
        await pilot.press("a")  # finished jobs too
        await select_job(pilot, screen, second["id"], wait)
        assert screen.jobs[str(second["id"])].state == "cancelled"
        await pilot.press("r")  # retry puts it back in the queue
        await wait(pilot, lambda: job_state(app, second["id"]) == "queued", 10, "the retry")
        await select_job(pilot, screen, first["id"], wait)
        await pilot.press("plus", "plus")
        await wait(pilot, lambda: screen.jobs[str(first["id"])].priority == 2, 10, "priority 2")
        await pilot.press("minus")
        await wait(pilot, lambda: screen.jobs[str(first["id"])].priority == 1, 10, "priority 1")
        await pilot.press("p")  # resume: both run
        await wait(pilot, lambda: not screen.paused, 10, "the queue to resume")
        await wait(pilot, lambda: job_state(app, first["id"]) == "done" and job_state(app, second["id"]) == "done",
                   90, "both jobs to run")


async def test_cancel_now_stops_a_running_job(service, app_at, wait):
    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        await pilot.press("f4")
        screen = app.screen
        job = await app.submit("generate", {"prompt": "a long batch", "batch": 30})
        await wait(pilot, lambda: job_state(app, job["id"]) == "running", 30, "the job to run")
        await select_job(pilot, screen, job["id"], wait)
        restarts = sd_restarts(app)
        await pilot.press("C")
        await wait(pilot, lambda: job_state(app, job["id"]) == "cancelled", 30, "the cancel")
        with db_session:
            assert len(app.db.Job[job["id"]].result.get("generation_ids", [])) < 30
        # The worker was restarted on purpose: the user hears of a cancel, not of a crash.
        await wait(pilot, lambda: any("cancelled at once" in str(n.message) for n in app._notifications), 30,
                   "the note that it was cancelled at once")
        # The status that shows the restart is the one a crash warning would come with.
        await wait(pilot, lambda: sd_restarts(app) > restarts, 30, "the deliberate restart in the status")
        assert not [e for e in app.error_log if "restarted" in e.title], app.error_log
        await wait(pilot, lambda: str(job["id"]) not in screen.jobs, 10, "the job to leave the active jobs")
        await pilot.press("a")
        await wait(pilot, lambda: str(job["id"]) in screen.jobs, 10, "the job among finished ones")
        await select_job(pilot, screen, job["id"], wait)
        row = screen.query_one("#jobs", DataTable).get_row(str(job["id"]))
        assert str(row[-1]) == "cancelled"  # not the lost attempt's "worker_lost" error


def sd_restarts(app) -> int:
    return next((int(w.get("restarts", 0)) for w in app.link.status.get("workers", []) if w.get("kind") == "sd"), 0)


async def test_vram_screen_without_a_gpu_shows_cpu_ram_and_workers(service, app_at, wait):
    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected and app.link.status.get("workers"), 20, "worker states")
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, VramScreen)
        await wait(pilot, lambda: screen.last is not None, 10, "a sample")
        summary = str(screen.query_one("#vram-summary").render())
        devices = screen.query_one("#devices", DataTable)
        rows = [[str(c) for c in devices.get_row_at(i)] for i in range(devices.row_count)]
        if screen.last.gpus:  # a machine with an NVIDIA GPU
            assert "NVIDIA GPU" in summary and rows
        else:
            assert "No NVIDIA GPU" in summary and "CPU and RAM" in summary
            assert rows[0][0] == "CPU" and rows[1][0] == "RAM"
            assert rows[0][1] == f"{SystemProbe().cpu_count()} cores"
        workers = screen.query_one("#workers", DataTable)
        names = {str(workers.get_row_at(i)[0]) for i in range(workers.row_count)}
        assert {"sd-local", "llm-local"} <= names
        procs = screen.query_one("#processes", DataTable)
        proc_rows = [[str(c) for c in procs.get_row_at(i)] for i in range(procs.row_count)]
        assert any(r[1] == "sd-local" for r in proc_rows)  # worker pids mapped to names
        await pilot.press("r")
        await wait(pilot, lambda: len(screen.history.get("ram", [])) >= 2 or screen.last.gpus, 10, "a second sample")


async def test_vram_figures_come_from_proc(demo_home, app_at, wait, fake_proc):
    app = app_at(demo_home)
    app.system_probe = SystemProbe(fake_proc, use_nvml=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f7")
        screen = app.screen
        await wait(pilot, lambda: screen.last is not None, 10, "a sample")
        s = screen.last.system
        assert (s.cpus, s.load) == (4, (0.5, 0.4, 0.3))
        assert (s.mem_total_mb, s.mem_used_mb) == (16384, 4096)
        workers = screen.query_one("#workers", DataTable)
        assert "service offline" in str(workers.get_row_at(0)[2])


async def test_settings_validation_error_next_to_the_field(service, app_at, wait):
    demo_home = service.home
    before = (demo_home / "config.json").read_text()
    app = app_at(demo_home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")  # the service writes the file
        await pilot.press("f8")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one(f"#{field_id('sd.preview_size')}", Input).value = "8"
        await pilot.press("ctrl+s")
        error = screen.query_one(f"#{error_id('sd.preview_size')}")
        assert "'sd.preview_size' must be at least 16, got 8" in str(error.render())
        assert error.has_class("-shown")
        assert app.focused is screen.query_one(f"#{field_id('sd.preview_size')}")
        assert (demo_home / "config.json").read_text() == before  # nothing written

        screen.query_one(f"#{field_id('sd.preview_size')}", Input).value = "96"
        screen.query_one(f"#{field_id('queue.max_attempts')}", Input).value = "lots"
        screen.query_one(f"#{field_id('ui.keys')}", Input).value = '{"app.errors": 5}'
        await pilot.press("ctrl+s")
        assert "whole number" in str(screen.query_one(f"#{error_id('queue.max_attempts')}").render())
        assert not screen.query_one(f"#{error_id('sd.preview_size')}").has_class("-shown")
        screen.query_one(f"#{field_id('queue.max_attempts')}", Input).value = "2"
        await pilot.press("ctrl+s")
        assert "must be a key name string" in str(screen.query_one(f"#{error_id('ui.keys')}").render())
        screen.query_one(f"#{field_id('ui.keys')}", Input).value = '{"app.errors": "ctrl+e"}'
        await pilot.press("ctrl+s")
        await wait(pilot, lambda: json.loads((demo_home / "config.json").read_text())["sd"]["preview_size"] == 96,
                   10, "the file to be saved")
        saved = json.loads((demo_home / "config.json").read_text())
        assert saved["queue"]["max_attempts"] == 2 and saved["ui"]["keys"] == {"app.errors": "ctrl+e"}
        # The service announces the change; the app reads the file again and applies the new keys.
        await wait(pilot, lambda: app.cfg["sd"]["preview_size"] == 96 and app.cfg["ui"]["keys"], 10, "the reload")
        await pilot.pause(0.1)
        await pilot.press("f4")
        await pilot.press("ctrl+e")  # the new key works at once
        assert type(app.screen).__name__ == "ErrorLogScreen"


async def test_a_worker_crash_is_an_alert_with_details(service, app_at, wait):
    import os
    import signal

    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.status.get("workers"), 20, "worker states")
        await pilot.press("f4")
        sd = next(w for w in app.link.status["workers"] if w["name"] == "sd-local")
        os.kill(int(sd["pid"]), signal.SIGKILL)
        await wait(pilot, lambda: any(e.title == "Worker sd-local restarted" for e in app.error_log), 60,
                   "the restart alert")
        assert any(n.title == "Worker sd-local restarted" for n in app._notifications)  # where the user looks
        await pilot.press("e")
        log_screen = app.screen
        assert isinstance(log_screen, ErrorLogScreen)

        def alert_shown() -> bool:
            # newest first; another error may have come in after the alert (the list refills): pick the alert
            index = [e.title for e in reversed(app.error_log)].index("Worker sd-local restarted")
            options = log_screen.query_one("#error-list", OptionList)
            if options.highlighted != index:
                options.highlighted = index
                return False
            return ("sd-local restarted" in str(log_screen.query_one("#error-title").render())
                    and "killed by SIGKILL" in str(log_screen.query_one("#error-detail").render()))

        await wait(pilot, alert_shown, 10, "the alert's detail")


async def test_a_failed_job_is_notified_and_shown_failed(service, app_at, wait):
    import io

    from PIL import Image

    from ddtui.core.recording import Recorder

    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        await pilot.press("f4")
        screen = app.screen
        png = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 120, 200)).save(png, "PNG")
        rec = Recorder(app.db, app.cfg.output_dir).record(png.getvalue(), {"prompt": "blue", "seed": 1})
        await pilot.press("p")
        await wait(pilot, lambda: screen.paused, 10, "the queue to pause")
        job = await app.submit("upscale", {"generation_id": rec.id})
        rec.path.unlink()  # the image goes away before the job runs
        await pilot.press("p")
        await wait(pilot, lambda: job_state(app, job["id"]) == "failed", 60, "the job to fail")
        title = f"Job {job['id']} failed"
        await wait(pilot, lambda: any(e.title == title for e in app.error_log), 10, "the failure alert")
        await wait(pilot, lambda: screen.jobs.get(str(job["id"])) and screen.jobs[str(job["id"])].state == "failed",
                   10, "the failed row")
        assert any(n.title == title for n in app._notifications)
