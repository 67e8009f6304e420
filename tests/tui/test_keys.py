"""Keys behave as the help says: global keys from inside text fields, Esc leaves a field, the same bars on
every screen, and a command palette that speaks the user's words (the real app on a demo home, no service).
"""

from __future__ import annotations

import re

from textual.command import CommandPalette
from textual.widgets import Input, TextArea

from ddtui.tui.commands import all_commands
from ddtui.tui.keys import SCREENS
from ddtui.tui.screens.base import ScreenNav, every_screen_binding
from ddtui.tui.screens.help import HelpScreen
from ddtui.tui.screens.history import HistoryScreen
from ddtui.tui.screens.prompt_tools import PasteParameters
from ddtui.tui.screens.settings import SettingsScreen

SIZE = (160, 48)


async def test_esc_leaves_a_text_field_so_screen_keys_work_again(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen.form_loaded, 10, "the form")
        prompt = screen.query_one("#prompt", TextArea)
        assert app.focused is prompt
        await pilot.press("f1")  # F1 works from inside the prompt
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is screen and app.focused is prompt
        await pilot.press(*"a fox 2")
        assert prompt.text.endswith("a fox 2") and app.screen is screen  # a digit in a field is text
        await pilot.press("escape")
        assert app.focused is None and prompt.text.endswith("a fox 2")  # the text stays
        await pilot.press("2")
        assert isinstance(app.screen, HistoryScreen)
        # Settings: Esc leaves its fields too; digits then switch screens.
        await pilot.press("7")
        settings = app.screen
        assert isinstance(settings, SettingsScreen)
        field = settings.query(Input).first()
        field.focus()
        await pilot.pause()
        await pilot.press("escape")
        assert app.focused is None
        await pilot.press("1")
        assert app.screen is screen


async def test_esc_in_a_dialog_and_on_a_screen_with_its_own_esc(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen.form_loaded, 10, "the form")
        await pilot.press("alt+p")
        await wait(pilot, lambda: isinstance(app.screen, PasteParameters), 5, "the paste box")
        assert isinstance(app.focused, TextArea)
        await pilot.press("escape")  # the dialog's own Esc closes it
        assert app.screen is screen
        await pilot.press("f3")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.press("slash")  # the search field
        assert isinstance(app.focused, Input)
        await pilot.press("escape")  # History's Esc: back to the images
        assert app.focused is history.grid


async def test_every_screen_has_the_same_title_and_screen_bars(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        for mode, title in SCREENS:
            app.show_main(mode)
            await pilot.pause()
            screen = app.screen
            assert screen.title == title, mode
            assert screen.query("Header"), f"{mode} has no header"
            nav = screen.query_one(ScreenNav)
            line = str(nav.render())
            assert all(t in line for _m, t in SCREENS), line
            assert nav.current == mode  # this screen is the highlighted one
            # The row names keys that switch from here: on History the digits rate, so it names F-keys.
            assert (" F3 History " in line) if mode == "history" else (" 2 History " in line), line


async def test_the_screen_row_fits_a_narrow_terminal(app_on, wait):
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        for mode, _title in SCREENS:
            app.show_main(mode)
            await pilot.pause()
            nav = app.screen.query_one(ScreenNav)
            line = str(nav.render())
            assert len(line) <= 80, line
            # Every key is still there: digits, or F-keys where the screen uses digits itself (History rates).
            assert all(f" {n} " in line for n in range(1, len(SCREENS) + 1)) or \
                all(f" F{n + 1} " in line for n in range(1, len(SCREENS) + 1)), line


def test_the_palette_speaks_the_users_words(demo_home, app_at):
    app = app_at(demo_home)
    commands = all_commands(app)
    actions = {b.action for _m, _t, b in every_screen_binding()}
    identifier = re.compile(r"\b[a-z]+_[a-z_]+\b")  # a method-like name: toggle_all, send_to
    for command in commands:
        assert not identifier.search(command.help.replace("ui.theme", "")), command
        assert not any(action in command.help for action in actions if "_" in action or "(" in action), command
    helps = {c.title: c.help for c in commands}
    assert helps["Queue: Finished jobs"] == "Show finished jobs too, or only the active ones (on Queue, key a)"
    assert helps["Queue: Cancel now"].startswith("Cancel the selected job at once")
    assert helps["History: Reuse"].startswith("Reuse the parameters in Generate")


async def test_the_palette_from_inside_a_text_field(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen.form_loaded, 10, "the form")
        assert isinstance(app.focused, TextArea)
        await pilot.press("ctrl+p")
        await wait(pilot, lambda: isinstance(app.screen, CommandPalette), 5, "the palette")
        await pilot.press(*"go to queue")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait(pilot, lambda: app.screen is app.main_screens.get("queue"), 5, "the Queue screen")
