"""The app shell through its keys: switching screens, themes remembered, keys remapped from config, the
command palette, the error log, and opening without a service.
"""

from __future__ import annotations

import json
from pathlib import Path

from pony.orm import db_session

from ddtui.tui.app import read_theme_file
from ddtui.tui.screens.base import MissingScreen
from ddtui.tui.screens.errors import ErrorLogScreen
from ddtui.tui.screens.generate import GenerateScreen
from ddtui.tui.screens.help import HelpScreen
from ddtui.tui.screens.queue import QueueScreen
from ddtui.tui.screens.settings import SettingsScreen
from ddtui.tui.screens.vram import VramScreen

SIZE = (160, 48)


async def test_number_and_function_keys_switch_screens(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, GenerateScreen)
        await pilot.press("f4")  # F-keys work even with the prompt editor focused
        assert isinstance(app.screen, QueueScreen)
        await pilot.press("6")  # the queue screen has no text field: digits work
        assert isinstance(app.screen, VramScreen)
        await pilot.press("7")
        assert isinstance(app.screen, SettingsScreen)
        await pilot.press("f2")
        assert isinstance(app.screen, GenerateScreen)
        # With the prompt focused a digit is text, not a screen switch.
        await pilot.press("3")
        assert isinstance(app.screen, GenerateScreen)
        assert app.screen.query_one("#prompt").text.endswith("3")
        await pilot.press("f3")
        assert app.screen is app.main_screens["history"]
        assert not isinstance(app.screen, MissingScreen) or "history" in app.screen._reason


async def test_help_lists_keys_and_closes(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.key_rows()
        ids = {r[3] for r in rows}
        assert {"generate.submit", "queue.cancel_now", "settings.save", "app.errors"} <= ids
        assert ("Queue", "C", "Cancel now", "queue.cancel_now") in rows
        await pilot.press("escape")
        assert isinstance(app.screen, GenerateScreen)


async def test_theme_switch_is_remembered_in_config(service, app_at, wait):
    demo_home = service.home
    app = app_at(demo_home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        assert app.theme == "ddtui-dark"
        assert {"ddtui-dark", "ddtui-light", "ddtui-high-contrast"} <= set(app.available_themes)
        app.theme = "ddtui-light"
        await wait(pilot, lambda: json.loads((demo_home / "config.json").read_text())["ui"]["theme"]
                       == "ddtui-light", 10, "ui.theme saved")
        assert app.has_class("-theme-ddtui-light")
    again = app_at(demo_home)
    async with again.run_test(size=SIZE):
        assert again.theme == "ddtui-light"


async def test_theme_from_the_palette_and_a_user_theme_file(service, app_at, wait, offers):
    demo_home = service.home
    (demo_home / "themes").mkdir()
    (demo_home / "themes" / "mine.toml").write_text('name = "mine"\nprimary = "#ff8800"\ndark = true\n')
    (demo_home / "themes" / "broken.toml").write_text('name = "broken"\nprimary = "not a colour"\n')
    app = app_at(demo_home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")  # the service saves the choice
        assert "mine" in app.available_themes
        assert any("broken.toml" in e.detail for e in app.error_log)  # reported, not fatal
        await pilot.press("ctrl+p")
        await offers(pilot, "theme: mine", "mine")
        await pilot.press("enter")
        await wait(pilot, lambda: app.theme == "mine", 5, "the theme")
        await wait(pilot, lambda: json.loads((demo_home / "config.json").read_text())["ui"]["theme"] == "mine",
                       10, "ui.theme saved")


def test_theme_files_shipped_are_valid():
    themes = Path(__file__).resolve().parents[2] / "themes"
    names = {read_theme_file(p).name for p in themes.glob("*.toml")}
    assert {"ddtui-dark", "ddtui-light", "ddtui-high-contrast"} <= names


async def test_key_remap_from_config_changes_a_binding(demo_home: Path, app_at, wait):
    app = app_at(demo_home, keys={"screen.queue": "z", "app.errors": "ctrl+e", "no.such.binding": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.press("6")
        assert isinstance(app.screen, VramScreen)
        await pilot.press("3")  # the old key no longer shows the queue
        assert isinstance(app.screen, VramScreen)
        await pilot.press("z")
        assert isinstance(app.screen, QueueScreen)
        await pilot.press("e")
        assert not isinstance(app.screen, ErrorLogScreen)
        await pilot.press("ctrl+e")
        assert isinstance(app.screen, ErrorLogScreen)
        assert any("no.such.binding" in e.detail for e in app.error_log)  # unknown ids are reported
        await pilot.press("escape")
        await pilot.press("f1")
        assert ("everywhere", "z / F4", "show the Queue screen", "screen.queue, screen.queue.fkey") in \
            app.screen.key_rows()


async def test_command_palette_finds_a_screen(app_on, wait, offers):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await offers(pilot, "go to vram", "vram")
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, VramScreen), 5, "the VRAM screen")


async def test_command_palette_reaches_a_screen_action(app_on, wait, offers):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await offers(pilot, "queue: finished jobs", "finished jobs")
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.show_all, 5,
                       "the queue showing finished jobs")


async def test_errors_notify_and_the_detail_is_one_key_away(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        app.notify_error("Job 7 failed", "bad_lora: LoRA 'x' not found in models/lora")
        await pilot.pause()
        assert any(n.title == "Job 7 failed" for n in app._notifications)
        await pilot.press("e")
        assert isinstance(app.screen, ErrorLogScreen)
        detail = str(app.screen.query_one("#error-detail").render())
        assert "LoRA 'x' not found" in detail
        await pilot.press("x")
        assert app.error_log == []
        await pilot.press("escape")
        assert isinstance(app.screen, QueueScreen)


async def test_opens_without_a_service_and_says_why(demo_home: Path, app_at, wait):
    app = app_at(demo_home, connect=True)  # no service runs for this home
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: not app.link.connected and "no ddtui service" in app.link.reason, 10,
                       "the reason")
        assert app.client is None
        assert app.sub_title == "service offline"
        status = str(app.screen.query_one("#gen-status").render())
        assert "Service offline" in status
        await wait(pilot, lambda: app.screen.form_loaded, 10, "the form")
        app.screen.query_one("#prompt").load_text("a cat")
        await pilot.press("ctrl+g")
        await wait(pilot, lambda: any(e.title == "Cannot generate" for e in app.error_log), 5, "the error")
        await pilot.press("f3")  # history still opens
        assert app.screen is app.main_screens["history"]


async def test_q_quits_and_saves_the_form(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        screen.query_one("#prompt").load_text("kept for next time")
        await pilot.press("f4")
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running
    with db_session:
        assert app.db.Setting["tui.generate.form"].value["prompt"] == "kept for next time"


def test_image_protocol_detection_and_overrides(monkeypatch):
    from ddtui.tui.widgets.image import detect_protocol, wrap_for_tmux

    monkeypatch.delenv("TMUX", raising=False)
    assert detect_protocol("auto").protocol == "none"  # pytest's stdout is not a terminal
    assert detect_protocol("sixel").protocol == "sixel"
    assert detect_protocol("halfcell").reason == "set by config/--images"
    # Inside tmux a forced kitty protocol wraps its escape codes for passthrough.
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/none,1,0")
    detection = detect_protocol("kitty")
    assert detection.protocol == "kitty" and detection.tmux and detection.wrap
    assert wrap_for_tmux("\x1b_Ga=q\x1b\\") == "\x1bPtmux;\x1b\x1b_Ga=q\x1b\x1b\\\x1b\\"


def test_progress_and_preview_floods_coalesce():
    from ddtui.tui.messages import JobEvent, JobPreview, JobProgress

    first, newer = JobProgress("5", step=1, steps=4), JobProgress("5", step=2, steps=4)
    assert newer.can_replace(first) and not JobProgress("6").can_replace(first)
    assert JobPreview("5", b"png2").can_replace(JobPreview("5", b"png1"))
    assert not JobEvent("5", "image").can_replace(JobEvent("5", "image"))  # images are never dropped
    copy = newer.copy()
    assert copy == newer and copy is not newer


def test_every_new_action_has_an_id_a_description_and_a_palette_entry():
    from ddtui.tui.commands import all_commands
    from ddtui.tui.keys import KEYS, TOOL_SCREENS
    from ddtui.tui.screens.explore import ExploreScreen
    from ddtui.tui.screens.inpaint import InpaintScreen

    for cls in (InpaintScreen, ExploreScreen, GenerateScreen):
        assert all(b.id and b.description for b in cls.BINDINGS)
    assert {mode for mode, _ in TOOL_SCREENS} == {"inpaint", "explore"}
    assert {s.id for s in KEYS} >= {"inpaint.paint", "inpaint.rect", "inpaint.ellipse", "inpaint.undo",
                                     "inpaint.feather_more", "explore.promote", "explore.cancel",
                                     "generate.enhance", "generate.paste_params", "generate.lora_up"}

    class FakeApp:  # all_commands only reads the keymap and the themes
        _keymap: dict[str, str] = {}
        available_themes: dict[str, object] = {}

        def show_main(self, mode): ...

        def search_themes(self): ...

        def start_service(self): ...

    titles = {c.title for c in all_commands(FakeApp())}  # type: ignore[arg-type]
    for title in ("Inpaint: Rectangle", "Inpaint: Undo", "Explore: Promote", "Explore: Stop grid",
                  "Generate: Enhance", "Generate: Paste parameters", "Generate: Hires fix", "Go to Explore",
                  "History: Explore", "History: Upscale"):
        assert title in titles, title


async def test_tool_screens_in_help_remaps_and_the_screen_row(demo_home: Path, app_at, wait):
    from ddtui.tui.screens.base import ScreenNav
    from ddtui.tui.screens.history import HistoryScreen
    from ddtui.tui.screens.inpaint import InpaintScreen

    app = app_at(demo_home, keys={"inpaint.paint": "p"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        rows = app.screen.key_rows()
        assert ("Inpaint", "p", "Paint", "inpaint.paint") in rows
        assert ("Explore", "⏎", "Promote", "explore.promote") in rows
        await pilot.press("escape")
        await pilot.press("f3")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        assert history.query_one(ScreenNav) and history.query("Header")  # like every main screen
        assert "F3 History" in str(history.query_one(ScreenNav).render())  # its digits rate: F-keys switch
        app.show_main("inpaint")
        await pilot.pause()
        assert isinstance(app.screen, InpaintScreen)
        assert " Inpaint " in str(app.screen.query_one(ScreenNav).render())
        await pilot.press("p")  # remapped paint key; no image yet: a note, nothing breaks
        assert app.screen.canvas.model is None and not app.error_log
        app.show_main("generate")
        await wait(pilot, lambda: app.screen.form_loaded, 10, "the form")
        app.screen.query_one("#prompt").load_text("a quiet harbour")
        assert app.current_prompt == "a quiet harbour"  # what the Styles preview uses
