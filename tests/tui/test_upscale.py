"""Upscaling from the History screen: the detail panel's button queues a real upscale that is recorded as the
image's child, and with several ESRGAN models a picker asks which one and remembers the choice."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from PIL import Image
from pony.orm import db_session
from textual.widgets import OptionList

from ddtui.catalog.demo import ESRGAN
from ddtui.config import resolve_home
from ddtui.tui.app import UPSCALER_SETTING
from ddtui.tui.screens.history import HistoryScreen
from ddtui.tui.screens.upscale import UpscalerPicker
from tests.conftest import Service
from tests.tui.test_inpaint import record_source

SIZE = (160, 48)


async def history_on(pilot, wait, generation_id: int) -> HistoryScreen:
    await pilot.press("f3")
    screen = pilot.app.screen
    assert isinstance(screen, HistoryScreen)
    await wait(pilot, lambda: screen.detail.detail is not None and screen.detail.detail.id == generation_id, 10,
               "the detail of the image")
    return screen


async def test_upscale_from_the_detail_panel_is_recorded_as_a_child(service, app_at, wait):
    app = app_at(service.home, connect=True)
    source = record_source(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        screen = await history_on(pilot, wait, source)
        await pilot.click("#detail-upscale")  # one ESRGAN model in the demo set: no question asked
        await wait(pilot, lambda: screen.model.items and screen.model.items[0].id != source, 60, "the upscaled image")
        child = screen.model.items[0]
        with db_session:
            gen = app.db.Generation[child.id]
            assert gen.kind == "upscale" and gen.parent.id == source
            assert gen.params["upscaler"] == ESRGAN and (gen.width, gen.height) == (128, 128)
            path = app.cfg.output_dir / gen.path
        with Image.open(path) as im:
            assert im.size == (128, 128)
        assert any("upscaled to 128x128" in str(n.message) for n in app._notifications)


async def test_several_esrgan_models_ask_and_remember(tmp_path: Path, demo_models: Path, app_at, wait):
    root = tmp_path / "home"
    resolve_home(root).ensure()
    (root / "models" / "esrgan").mkdir(parents=True)
    for name in ("a-sharp-x2", "b-soft-x2"):
        shutil.copy(demo_models / ESRGAN, root / "models" / "esrgan" / f"{name}.safetensors")
    svc = await asyncio.to_thread(Service(root).start)  # it pings with asyncio.run of its own
    try:
        app = app_at(root, connect=True)
        source = record_source(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait(pilot, lambda: app.link.connected, 20, "the service link")
            screen = await history_on(pilot, wait, source)
            screen.grid.focus()
            await pilot.press("U")
            await wait(pilot, lambda: isinstance(app.screen, UpscalerPicker), 5, "the picker")
            options = app.screen.query_one("#upscaler-list", OptionList)
            assert [o.id for o in options._options] == ["esrgan/a-sharp-x2.safetensors",
                                                        "esrgan/b-soft-x2.safetensors"]
            assert options.highlighted == 0
            await pilot.press("down", "enter")
            await wait(pilot, lambda: any("with b-soft-x2" in str(n.message) for n in app._notifications), 10,
                       "the upscale queued")
            assert app.store.setting(UPSCALER_SETTING) == "esrgan/b-soft-x2.safetensors"  # remembered
            await pilot.press("U")
            await wait(pilot, lambda: isinstance(app.screen, UpscalerPicker), 5, "the picker again")
            assert app.screen.query_one("#upscaler-list", OptionList).highlighted == 1  # the last choice first
            await pilot.press("escape")
            await wait(pilot, lambda: app.screen is screen, 5, "back in History")
    finally:
        svc.stop()
