"""SVG snapshots of the main screens with fixed content: a demo home without a service, a fixed /proc,
fixed job rows, no inline images. Update them with `pytest tests/tui/test_snapshots.py --snapshot-update`
after a deliberate change to a screen, and look at the report before committing.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from pony.orm import db_session

from ddtui.core.queue import JobQueue
from ddtui.tui.screens.vram import SystemProbe, VramScreen

SIZE = (120, 36)
FIXED = datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture
def snap_app(demo_home, app_at):
    return app_at(demo_home, protocol="none", service_note="the service is not started in snapshot tests")


def test_generate_screen(snap_compare, snap_app, wait):
    async def ready(pilot):
        screen = pilot.app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        screen.query_one("#prompt").load_text("a lighthouse on a cliff at dusk, oil painting")
        await pilot.pause()

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=ready)


def test_queue_screen(snap_compare, snap_app, wait):
    queue = JobQueue(snap_app.db)
    done = queue.submit("generate", {"prompt": "a finished fox", "batch": 1})
    queue.claim(("generate",), "sd-local")
    queue.complete(done.id, {"generation_ids": [1]})
    running = queue.submit("generate", {"prompt": "a running castle", "batch": 4}, priority=2)
    queue.claim(("generate",), "sd-local")
    queue.set_progress(running.id, 0.4)
    failed = queue.submit("upscale", {}, max_attempts=1)
    queue.claim(("upscale",), "sd-local")
    queue.fail(failed.id, "missing_file: the image was deleted", retry=False)
    queue.submit("generate", {"prompt": "a queued owl", "batch": 2})
    with db_session:
        for job in snap_app.db.Job.select():
            job.created = FIXED
            job.started = FIXED if job.started else None
            job.finished = FIXED if job.finished else None

    async def ready(pilot):
        await pilot.press("f4")
        screen = pilot.app.screen
        await wait(pilot, lambda: len(screen.jobs) == 3, 10, "the jobs")
        await pilot.pause()

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=ready)


def test_vram_screen(snap_compare, snap_app, wait, fake_proc, monkeypatch):
    snap_app.system_probe = SystemProbe(fake_proc, use_nvml=False)
    monkeypatch.setattr(VramScreen, "sample_every", 3600.0)  # one sample: the bars cannot grow meanwhile

    async def ready(pilot):
        await pilot.press("f7")
        screen = pilot.app.screen
        await wait(pilot, lambda: screen.last is not None, 10, "a sample")
        await pilot.pause()

    assert snap_compare(snap_app, terminal_size=SIZE, run_before=ready)


def test_help_screen(snap_compare, snap_app):
    assert snap_compare(snap_app, terminal_size=SIZE, press=["f1"])
