"""Pilot tests of the Presets and Styles screens against a real database and the real demo model catalog."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from pony.orm import db_session
from textual.app import App
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, Select, TabbedContent, TextArea

from ddtui.catalog.demo import IMAGE_MODEL, IMAGE_SIDECAR, LLM, LLM_SIDECAR, MMPROJ
from ddtui.catalog.models import Catalog
from ddtui.config import load_config, resolve_home
from ddtui.db.schema import open_database
from ddtui.tui.host import Host
from ddtui.tui.screens.base import ConfirmDialog
from ddtui.tui.screens.presets import ModelPicker, PresetsScreen
from ddtui.tui.screens.styles import SAMPLE_PROMPT, StylesScreen

SIZE = (160, 48)


class HostApp(Host):
    """The app API these screens use, over a real demo home; records what it was asked to do."""

    def __init__(self, home_root: Path, screen: Callable[[], Screen], current_prompt: str | None = None) -> None:
        super().__init__()
        self.home = resolve_home(home_root)
        self.cfg = load_config(self.home)
        self.db = open_database(self.home.db_file)
        self.image_protocol = "none"
        self.calls: list[tuple[Any, ...]] = []
        self._screen = screen
        self._current_prompt = current_prompt or ""

    def on_mount(self) -> None:
        self.push_screen(self._screen())

    def catalog(self, refresh: bool = False) -> Catalog:
        return Catalog.scan(self.cfg.model_dir)

    def open_in_generate(self, params: dict[str, Any]) -> None:
        self.calls.append(("open_in_generate", params))

    @property
    def current_prompt(self) -> str:
        return self._current_prompt

    def notify_error(self, title: str, detail: str = "", severity: str = "error") -> None:
        self.calls.append(("notify_error", title, detail))


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def text_of(app: App, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def presets_in(app: HostApp) -> dict[str, dict[str, Any]]:
    with db_session:
        return {p.name: {"model": p.model, "params": dict(p.params), "components": dict(p.components),
                         "flags": dict(p.flags)} for p in app.db.ImagePreset.select()}


# ------------------------------------------------------------------ presets


async def presets_ready(pilot: Any) -> PresetsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, PresetsScreen)
    await wait_for(pilot, lambda: screen.catalog_entries, what="the catalog")
    return screen


async def test_image_preset_from_a_catalog_model_is_prefilled_and_saved(demo_home: Path) -> None:
    app = HostApp(demo_home, PresetsScreen)
    async with app.run_test(size=SIZE) as pilot:
        screen = await presets_ready(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, ModelPicker)
        picker = app.screen.query_one("#picker-list", OptionList)
        assert [picker.get_option_at_index(i).id for i in range(picker.option_count)] == [IMAGE_MODEL]
        await pilot.press("enter")
        assert app.screen is screen
        defaults = IMAGE_SIDECAR["defaults"]
        assert app.screen.query_one("#ip-steps", Input).value == str(defaults["steps"])
        assert app.screen.query_one("#ip-width", Input).value == str(defaults["width"])
        assert app.screen.query_one("#ip-sampler", Select).value == defaults["sampler"]
        assert app.screen.query_one("#ip-model", Select).value == IMAGE_MODEL
        assert "demo-qwen3" in text_of(app, "#ip-components")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: presets_in(app), what="the saved preset")
        saved = presets_in(app)["demo-flux2-klein"]
        assert saved["model"] == IMAGE_MODEL
        assert saved["params"] == defaults
        assert saved["components"] == IMAGE_SIDECAR["components"]
        await wait_for(pilot, lambda: app.screen.query_one("#image-presets", OptionList).option_count == 1,
                       what="the list")
        # A second preset from the same model gets a name of its own.
        await pilot.press("escape", "n", "enter", "ctrl+s")
        await wait_for(pilot, lambda: len(presets_in(app)) == 2, what="the second preset")
        assert "demo-flux2-klein 2" in presets_in(app)


async def test_editing_a_preset_checks_the_parameters(demo_home: Path) -> None:
    app = HostApp(demo_home, PresetsScreen)
    with db_session:
        app.db.ImagePreset(name="fast", model=IMAGE_MODEL, params={"steps": 4, "cfg": 1.0})
    async with app.run_test(size=SIZE) as pilot:
        screen = await presets_ready(pilot)
        await wait_for(pilot, lambda: screen.image_presets, what="the presets")
        listing = app.screen.query_one("#image-presets", OptionList)
        listing.focus()
        listing.highlighted = 0
        await wait_for(pilot, lambda: screen.editing is not None and screen.editing.name == "fast", what="editing")
        steps = app.screen.query_one("#ip-steps", Input)
        assert steps.value == "4"

        steps.value = "0"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "params.steps" in text_of(app, "#ip-error"), what="the range error")
        assert "from 1 to 500, got 0" in text_of(app, "#ip-error")
        steps.value = "lots"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "whole number" in text_of(app, "#ip-error"), what="the type error")
        app.screen.query_one("#ip-width", Input).value = "100"
        steps.value = "8"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "multiple of 8" in text_of(app, "#ip-error"), what="the width error")
        await pilot.pause(0.2)
        assert presets_in(app)["fast"]["params"] == {"steps": 4, "cfg": 1.0}  # nothing saved

        app.screen.query_one("#ip-width", Input).value = "128"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: presets_in(app)["fast"]["params"].get("steps") == 8, what="the saved edit")
        assert presets_in(app)["fast"]["params"] == {"steps": 8, "cfg": 1.0, "width": 128}
        assert text_of(app, "#ip-error") == ""


async def test_load_and_delete_a_preset(demo_home: Path) -> None:
    app = HostApp(demo_home, PresetsScreen)
    with db_session:
        app.db.ImagePreset(name="square", model=IMAGE_MODEL, params={"width": 64, "height": 64})
    async with app.run_test(size=SIZE) as pilot:
        screen = await presets_ready(pilot)
        await wait_for(pilot, lambda: screen.editing is not None, what="the first preset chosen")
        await pilot.press("l")
        await wait_for(pilot, lambda: app.calls, what="load")
        assert app.calls[0] == ("open_in_generate", {"model": IMAGE_MODEL, "width": 64, "height": 64,
                                                     "preset": "square"})
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert "square" in presets_in(app)
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: not presets_in(app), what="the preset deleted")
        await wait_for(pilot, lambda: app.screen.query_one("#image-presets", OptionList).option_count == 0,
                       what="the list emptied")


async def test_llm_preset_with_projector_context_and_system_prompts(demo_home: Path) -> None:
    app = HostApp(demo_home, PresetsScreen)
    async with app.run_test(size=SIZE) as pilot:
        screen = await presets_ready(pilot)
        await pilot.press("N")
        picker = app.screen.query_one("#picker-list", OptionList)
        picker.highlighted = picker.get_option_index(LLM)
        await pilot.press("enter")
        assert app.screen.query_one("#lp-mmproj", Select).value == MMPROJ  # from the model's sidecar
        assert app.screen.query_one("#lp-context", Input).value == str(LLM_SIDECAR["context_size"])
        tagging = app.screen.query_one("#lp-prompt-tagging", TextArea)
        assert tagging.text == app.cfg["llm"]["system_prompts"]["tagging"]
        app.screen.query_one("#lp-context", Input).value = "32"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "context size" in text_of(app, "#lp-error"), what="the context error")
        app.screen.query_one("#lp-context", Input).value = "2048"
        tagging.text = "Only JSON tags, please."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.llm_presets, what="the saved LLM preset")
        with db_session:
            p = app.db.LLMPreset.get(name="demo-llama")
            assert (p.model, p.mmproj, p.context_size) == (LLM, MMPROJ, 2048)
            assert p.system_prompts["tagging"] == "Only JSON tags, please."
            assert set(p.system_prompts) == {"tagging", "enhance", "variations", "styles"}


# ------------------------------------------------------------------ styles


def styles_in(app: HostApp) -> dict[str, tuple[str, str]]:
    with db_session:
        return {s.name: (s.prompt, s.negative_prompt) for s in app.db.Style.select()}


async def test_a_broken_placeholder_is_shown_and_nothing_is_saved(demo_home: Path) -> None:
    app = HostApp(demo_home, StylesScreen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        assert app.focused is app.screen.query_one("#style-name", Input)
        await pilot.press(*"Noir")
        prompt = app.screen.query_one("#style-prompt", TextArea)
        prompt.focus()
        prompt.text = ""
        await pilot.press(*"{promt}, film noir")
        await wait_for(pilot, lambda: "broken placeholder" in text_of(app, "#style-prompt-error"), what="the error")
        assert "'{promt}'" in text_of(app, "#style-prompt-error")
        assert prompt.has_class("-invalid")
        assert "no preview" in text_of(app, "#style-preview")
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert styles_in(app) == {}
        negative = app.screen.query_one("#style-negative", TextArea)
        prompt.text = "{prompt}, film noir"
        negative.text = "{prompt}"
        await wait_for(pilot, lambda: "belongs in the prompt" in text_of(app, "#style-negative-error"),
                       what="the negative error")
        assert text_of(app, "#style-prompt-error") == ""
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert styles_in(app) == {}


async def test_style_preview_save_rename_and_delete(demo_home: Path) -> None:
    app = HostApp(demo_home, StylesScreen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#style-sample", Input).value == SAMPLE_PROMPT
        await pilot.press("n", *"Noir")
        screen.query_one("#style-prompt", TextArea).text = "{prompt}, film noir, high contrast"
        screen.query_one("#style-negative", TextArea).text = "color, blurry"
        await wait_for(pilot, lambda: "film noir" in text_of(app, "#style-preview"), what="the preview")
        preview = text_of(app, "#style-preview")
        assert f"Prompt: {SAMPLE_PROMPT}, film noir, high contrast" in preview
        assert "Negative: color, blurry" in preview
        screen.query_one("#style-sample", Input).value = "a cat"
        await wait_for(pilot, lambda: "Prompt: a cat, film noir" in text_of(app, "#style-preview"),
                       what="the preview of another prompt")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: styles_in(app), what="the saved style")
        assert styles_in(app) == {"Noir": ("{prompt}, film noir, high contrast", "color, blurry")}
        name = screen.query_one("#style-name", Input)
        name.value = "Noir classic"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Noir classic" in styles_in(app), what="the rename")
        assert list(styles_in(app)) == ["Noir classic"]
        await wait_for(pilot, lambda: screen.query_one("#style-list", OptionList).option_count == 1, what="list")
        await pilot.press("escape", "d", "y")
        await wait_for(pilot, lambda: not styles_in(app), what="the style deleted")


async def test_preview_uses_the_apps_current_prompt(demo_home: Path) -> None:
    app = HostApp(demo_home, StylesScreen, current_prompt="a robot reading a book")
    with db_session:
        app.db.Style(name="Watercolor", prompt="watercolor painting of {prompt}", negative_prompt="photo")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.style_items, what="the styles")
        listing = screen.query_one("#style-list", OptionList)
        listing.highlighted = 0
        await wait_for(pilot, lambda: "watercolor painting of a robot reading a book" in text_of(app, "#style-preview"),
                       what="the preview")


async def test_snippet_insert_counts_uses_and_sorts_by_use(demo_home: Path) -> None:
    app = HostApp(demo_home, StylesScreen)
    with db_session:
        app.db.PromptSnippet(label="golden hour", content="golden hour lighting, long shadows", category="light")
        app.db.PromptSnippet(label="bokeh", content="shallow depth of field, bokeh", category="camera")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("t")
        assert app.screen.query_one("#styles-tabs", TabbedContent).active == "tab-snippets"
        table = screen.query_one("#snippet-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, what="the snippets")
        await wait_for(pilot, lambda: app.focused is table, what="the table focused")
        labels = [str(table.get_row_at(i)[0]) for i in range(2)]
        assert labels == ["bokeh", "golden hour"]  # no uses yet: by label
        await pilot.press("down", "i")
        await wait_for(pilot, lambda: app.calls, what="the insert")
        assert app.calls == [("open_in_generate", {"insert": "golden hour lighting, long shadows"})]
        with db_session:
            await wait_for(pilot, lambda: app.db.PromptSnippet.get(label="golden hour").use_count == 1, what="count")
        await wait_for(pilot, lambda: str(table.get_row_at(0)[0]) == "golden hour", what="sorted by use")
        assert str(table.get_row_at(0)[2]) == "1"
        assert table.cursor_row == 0  # the cursor followed the snippet
        await pilot.press("enter")  # enter inserts too
        await wait_for(pilot, lambda: len(app.calls) == 2 and str(table.get_row_at(0)[2]) == "2", what="second use")
        await pilot.press("s")  # sort by label
        await wait_for(pilot, lambda: str(table.get_row_at(0)[0]) == "bokeh", what="sorted by label")


async def test_snippet_create_and_delete(demo_home: Path) -> None:
    app = HostApp(demo_home, StylesScreen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("n")
        assert app.focused is screen.query_one("#snippet-label", Input)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "needs a label" in text_of(app, "#snippet-error"), what="the label error")
        await pilot.press(*"fog")
        screen.query_one("#snippet-content", TextArea).text = "rolling fog, volumetric light"
        await pilot.press("ctrl+s")
        table = screen.query_one("#snippet-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the saved snippet")
        with db_session:
            s = app.db.PromptSnippet.get(label="fog")
            assert (s.content, s.category, s.use_count) == ("rolling fog, volumetric light", "general", 0)
        await pilot.press("escape", "d", "y")
        await wait_for(pilot, lambda: table.row_count == 0, what="the snippet deleted")


def test_palettes_reach_every_key() -> None:
    for cls in (PresetsScreen, StylesScreen):
        bound = {b.action for b in cls.BINDINGS}
        assert bound <= {action for _t, action, _h in cls.PALETTE}, cls
        assert all(b.id and b.description for b in cls.BINDINGS)


async def test_presets_and_styles_inside_the_ddtui_app(demo_home: Path) -> None:
    from ddtui.tui.app import DdtuiApp

    h = resolve_home(demo_home)
    app = DdtuiApp(h, load_config(h), connect=False)
    async with app.run_test(size=SIZE) as pilot:
        app.show_main("presets")
        await pilot.pause()
        assert isinstance(app.screen, PresetsScreen)
        screen = await presets_ready(pilot)
        await pilot.press("n", "enter", "ctrl+s")
        await wait_for(pilot, lambda: screen.image_presets, what="a preset saved through the app")
        app.show_main("styles")
        await pilot.pause()
        assert isinstance(app.screen, StylesScreen)
        await pilot.press("n", *"Ink")
        app.screen.query_one("#style-prompt", TextArea).text = "ink drawing of {prompt}"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: styles_in(app), what="a style saved through the app")


def _snap_app(home: Path) -> Any:
    from ddtui.tui.app import DdtuiApp

    h = resolve_home(home)
    return DdtuiApp(h, load_config(h), image_protocol="none", connect=False, service_note="no service in snapshots")


def test_presets_screen_snapshot(snap_compare, demo_home: Path) -> None:
    app = _snap_app(demo_home)
    with db_session:
        app.db.ImagePreset(name="fast square", model=IMAGE_MODEL, params={"steps": 4, "width": 64, "height": 64},
                           components=dict(IMAGE_SIDECAR["components"]), description="quick drafts")
        app.db.LLMPreset(name="tagger", model=LLM, mmproj=MMPROJ, context_size=512,
                         system_prompts={"tagging": "Tags only."})

    async def ready(pilot: Any) -> None:
        app.show_main("presets")
        await pilot.pause()
        screen = await presets_ready(pilot)
        await wait_for(pilot, lambda: screen.editing is not None and screen.editing.name == "fast square")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_styles_screen_snapshot(snap_compare, demo_home: Path) -> None:
    app = _snap_app(demo_home)
    with db_session:
        app.db.Style(name="Film noir", prompt="{prompt}, film noir, high contrast", negative_prompt="color")
        app.db.Style(name="Watercolor", prompt="watercolor painting of {prompt}", negative_prompt="photo")

    async def ready(pilot: Any) -> None:
        app.show_main("styles")
        await pilot.pause()
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.style_items and screen.editing_style.id is not None)
        screen.query_one("#style-prompt", TextArea).text = "{promt}, film noir"
        await wait_for(pilot, lambda: "broken placeholder" in text_of(pilot.app, "#style-prompt-error"))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
