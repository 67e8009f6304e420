"""Resizing the terminal down to a few cells and back: every screen keeps working, nothing raises."""

from __future__ import annotations

from tests.tui.conftest import build_app

SIZES = [(160, 48), (40, 12), (20, 5), (8, 3), (1, 1), (120, 40)]
SCREENS = ["f2", "f3", "f4", "f5", "f6", "f7", "f8"]


async def test_every_screen_survives_tiny_sizes(demo_home):
    app = build_app(demo_home)
    async with app.run_test(size=(160, 48)) as pilot:
        for key in SCREENS:
            await pilot.press(key)
            await pilot.pause(0.05)
            for width, height in SIZES:
                await pilot.resize_terminal(width, height)
                await pilot.pause(0.05)
        await pilot.press("f1")  # the help screen too
        for width, height in SIZES:
            await pilot.resize_terminal(width, height)
            await pilot.pause(0.05)
        await pilot.press("escape")
        await pilot.press("f2")
        await pilot.press("ctrl+f")
        await pilot.press(*"still typing")
        await pilot.pause(0.1)
        from textual.widgets import TextArea

        assert "still typing" in app.screen.query_one("#prompt", TextArea).text  # the app still answers keys
        assert app.is_running
        assert not [e for e in app.error_log if "Traceback" in (e.detail or "")]
    assert app.return_code in (None, 0)
