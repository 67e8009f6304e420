"""The generate screen through its keys, against a real service (real workers, the demo models) where it
generates, and against a real history database for the form, prompt history, LoRA insertion and checks.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pony.orm import db_session
from textual.widgets import Input, Select, TextArea

from ddtui.catalog.demo import IMAGE_MODEL
from ddtui.tui.screens.generate import FORM_SETTING, GenerateScreen
from ddtui.tui.screens.prompt_tools import LoraPicker
from ddtui.tui.widgets.progress import JobProgressBar
from ddtui.tui.widgets.results import ResultThumb

SIZE = (160, 48)


async def type_prompt(pilot, text: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#prompt", TextArea).focus()
    await pilot.press(*text)


async def test_generate_from_the_keyboard_records_and_shows_the_image(service, app_at, wait):
    app = app_at(service.home, connect=True, protocol="halfcell")
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        screen = app.screen
        assert isinstance(screen, GenerateScreen)
        await wait(pilot, lambda: screen._ready, 10, "the form")
        await type_prompt(pilot, "a red fox")
        screen.query_one("#batch", Input).value = "2"
        await pilot.press("ctrl+g")
        await wait(pilot, lambda: screen.job_id, 10, "the job to be queued")
        progress = screen.query_one("#progress", JobProgressBar)
        await wait(pilot, lambda: len(screen.query(ResultThumb)) == 2, 90, "two results in the strip")
        await wait(pilot, lambda: progress.state == "done", 30, "the job to finish")
        thumbs = list(screen.query(ResultThumb))
        ids = [t.generation_id for t in thumbs]
        with db_session:
            rows = [app.db.Generation[i] for i in ids]
            assert all(r.prompt == "a red fox" for r in rows)
            assert rows[0].model == IMAGE_MODEL
            assert rows[1].seed == rows[0].seed + 1  # a batch walks seeds
        assert all(t.thumb.exists() for t in thumbs)
        assert progress.fraction == 1.0
        assert "finished: 2 image(s)" in str(screen.query_one("#gen-status").render())
        # Unlocked, the field empties after the run and shows the seed used; locking keeps that seed.
        seed = screen.query_one("#seed", Input)
        assert seed.value == "" and str(rows[0].seed) in seed.placeholder
        assert screen.form.to_request()["seed"] == -1
        await pilot.press("ctrl+r")
        assert seed.value == str(rows[0].seed)
        assert screen.form.to_request()["seed"] == rows[0].seed


async def test_cancel_the_running_job_from_the_generate_screen(service, app_at, wait):
    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        await type_prompt(pilot, "many owls")
        screen.query_one("#batch", Input).value = "20"
        await pilot.press("ctrl+g")
        progress = screen.query_one("#progress", JobProgressBar)
        await wait(pilot, lambda: progress.state == "running", 30, "the job to start")
        await pilot.press("ctrl+o")
        await wait(pilot, lambda: progress.state == "cancelled", 60, "the cancellation")
        with db_session:
            job = app.db.Job[int(screen.job_id)]
            assert job.state == "cancelled"
            assert len(job.result.get("generation_ids", [])) < 20


async def test_a_bad_value_is_reported_before_anything_is_queued(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        await type_prompt(pilot, "a boat")
        screen.query_one("#size", Input).value = "65x64"
        await pilot.press("ctrl+g")
        error = str(screen.query_one("#form-error").render())
        assert "width 65 is not a multiple of 8" in error
        assert screen.query_one("#form-error").has_class("-shown")
        assert not screen.job_id


async def test_form_and_prompt_history_persist_and_walk(demo_home: Path, app_at, wait):
    app = app_at(demo_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        for prompt in ("first prompt", "second prompt"):
            screen.query_one("#prompt", TextArea).load_text("")
            await type_prompt(pilot, prompt)
            await pilot.press("ctrl+g")  # no service: refused, but the prompt is remembered
            await pilot.pause()
        screen.query_one("#steps", Input).value = "3"
        screen.query_one("#sampler", Select).value = "heun"
        await pilot.press("ctrl+q")
    with db_session:
        assert app.db.Setting[FORM_SETTING].value["steps"] == "3"  # saved at quit
    again = app_at(demo_home)
    async with again.run_test(size=SIZE) as pilot:
        screen = again.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        area = screen.query_one("#prompt", TextArea)
        assert area.text == "second prompt"
        assert screen.query_one("#steps", Input).value == "3"
        assert screen.query_one("#sampler", Select).value == "heun"
        assert screen.form.prompt_history[-2:] == ["first prompt", "second prompt"]
        area.load_text("draft")
        await pilot.press("ctrl+up")
        assert area.text == "second prompt"
        await pilot.press("ctrl+up")
        assert area.text == "first prompt"
        await pilot.press("ctrl+down")
        assert area.text == "second prompt"
        await pilot.press("ctrl+down")
        assert area.text == "draft"
        await pilot.press("ctrl+up")
        await pilot.press("ctrl+z")  # the editor's undo brings back what was there
        assert area.text == "draft"


async def test_lora_is_inserted_at_the_cursor_with_its_trigger_words(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        screen.query_one("#prompt", TextArea).load_text("")
        await type_prompt(pilot, "a castle")
        await pilot.press("ctrl+l")
        await wait(pilot, lambda: isinstance(app.screen, LoraPicker), 5, "the LoRA picker")
        await pilot.press("enter")
        await wait(pilot, lambda: app.screen is screen, 5, "back on the form")
        assert screen.query_one("#prompt", TextArea).text == "a castle, <lora:demo-lora:0.8> demo style"
        request = screen.form.to_request()
        assert request["prompt"].startswith("a castle, <lora:demo-lora:0.8>")


async def test_seed_lock_and_request_from_the_form(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        screen.query_one("#prompt", TextArea).load_text("a tree")
        assert screen.form.to_request()["seed"] == -1  # no seed: random
        screen.query_one("#seed", Input).value = "42"
        assert screen.form.to_request()["seed"] == 42  # a typed seed is used, locked or not
        screen.form.seed_used(42)  # a run went: unlocked, the field empties, the seed used is shown
        assert screen.query_one("#seed", Input).value == "" and "42" in screen.query_one("#seed", Input).placeholder
        assert screen.form.to_request()["seed"] == -1
        screen.query_one("#seed", Input).value = "42"
        await pilot.press("ctrl+r")
        assert screen.form.seed_locked
        screen.form.seed_used(42)  # locked, the seed stays for the next run
        req = screen.form.to_request()
        assert req["seed"] == 42 and req["batch"] == 1 and "model" not in req
        screen.query_one("#model", Select).value = f"model:{IMAGE_MODEL}"
        screen.query_one("#size", Input).value = "128x96"
        req = screen.form.to_request()
        assert (req["model"], req["width"], req["height"]) == (IMAGE_MODEL, 128, 96)
        assert screen.query_one("#steps", Input).placeholder == "4"  # the model's default is shown


async def test_open_in_generate_and_send_to_img2img(demo_home: Path, app_at, wait, tmp_path):
    from PIL import Image

    from ddtui.core.recording import Recorder

    app = app_at(demo_home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        params = {"prompt": "a snowy hill", "negative_prompt": "blurry", "model": IMAGE_MODEL, "width": 64,
                  "height": 64, "steps": 2, "cfg": 1.0, "sampler": "euler", "scheduler": "discrete", "seed": 7}
        app.open_in_generate(params)
        screen = app.main_screens["generate"]
        await wait(pilot, lambda: app.screen is screen and screen._ready, 10, "the generate screen")
        await wait(pilot, lambda: screen.query_one("#prompt", TextArea).text == "a snowy hill", 5, "the prompt")
        req = screen.form.to_request()
        assert req["seed"] == 7 and req["steps"] == 2 and req["negative_prompt"] == "blurry"
        # A recorded image becomes the init image.
        import io

        png = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 30, 30)).save(png, "PNG")
        rec = Recorder(app.db, app.cfg.output_dir).record(png.getvalue(), {"prompt": "red", "seed": 1})
        await pilot.press("f4")
        app.send_to("img2img", rec.id)
        await wait(pilot, lambda: app.screen is screen and screen.form.init_image is not None, 10, "the init image")
        req = screen.form.to_request()
        assert Path(req["init_image"]) == rec.path and req["strength"] == 0.75 and req["parent_id"] == rec.id
        await pilot.press("ctrl+n")
        assert "init_image" not in screen.form.to_request()


# ------------------------------------------------------------------ prompt tools, LoRAs, hires fix


async def test_enhance_accept_and_undo_then_styles_from_the_prompt_and_hires(service, app_at, wait):
    from ddtui.tui.screens.prompt_tools import EnhanceDialog, StyleProposals

    app = app_at(service.home, connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        area = screen.query_one("#prompt", TextArea)
        area.load_text("")
        await type_prompt(pilot, "a lighthouse at dusk")
        await pilot.press("alt+e")
        await wait(pilot, lambda: isinstance(app.screen, EnhanceDialog), 5, "the enhance preview")
        dialog = app.screen
        await wait(pilot, lambda: dialog.result is not None or "LLM" in str(dialog.query_one("#enhance-note").render()),
                   60, "the LLM's answer")
        assert dialog.streamed  # tokens were streamed into the preview as they came
        assert dialog.result and dialog.result != "a lighthouse at dusk"
        enhanced = dialog.result
        await pilot.press("enter")
        await wait(pilot, lambda: app.screen is screen, 5, "back on the form")
        assert area.text == enhanced
        await pilot.press("ctrl+z")  # one undo step brings the prompt back exactly
        assert area.text == "a lighthouse at dusk"
        await pilot.press("ctrl+y")
        assert area.text == enhanced
        await pilot.press("ctrl+z")
        # Styles from the prompt: the LLM's proposals, the chosen ones saved and listed in the form.
        await pilot.press("alt+s")
        await wait(pilot, lambda: isinstance(app.screen, StyleProposals), 5, "the style proposals")
        proposals = app.screen
        await wait(pilot, lambda: proposals.proposals, 60, "the proposals")
        assert all("{prompt}" in p["prompt"] for p in proposals.proposals)
        await pilot.press("ctrl+s")
        names = [p["name"] for p in proposals.proposals]
        await wait(pilot, lambda: set(names) <= set(screen.form.style_texts), 10, "the saved styles in the form")
        with db_session:
            assert {s.name for s in app.db.Style.select()} >= set(names)
        # The chosen style is previewed, and applied at submit: the final prompt is shown.
        styles = screen.query_one("#styles")
        styles.select(names[0])
        await pilot.pause()
        preview = str(screen.query_one("#styles-preview").render())
        assert preview.startswith("Final prompt: ") and "a lighthouse at dusk" in preview
        styles.deselect(names[0])
        # Hires fix: validated fields, sent as the hires dict; the image comes out at the scaled size.
        await pilot.press("alt+h")
        assert screen.query_one("#hires").value and screen.query_one("#hires-scale").display
        screen.query_one("#hires-scale").value = "5"
        await pilot.press("ctrl+g")
        assert "hires scale must be above 1 and at most 4" in str(screen.query_one("#form-error").render())
        screen.query_one("#hires-scale").value = "2"
        screen.query_one("#hires-steps").value = "2"
        request = screen.form.to_request()
        assert request["hires"] == {"enabled": True, "scale": 2.0, "steps": 2, "strength": 0.5, "upscaler": ""}
        await pilot.press("ctrl+g")
        await wait(pilot, lambda: len(screen.query(ResultThumb)) == 1, 90, "the hires result")
        with db_session:
            gen = app.db.Generation[screen.query(ResultThumb).first().generation_id]
            path, params = app.cfg.output_dir / gen.path, dict(gen.params)
        with Image.open(path) as im:
            assert im.size == (128, 128)  # the demo model's 64x64, scaled by 2
        assert params["hires"] == {"enabled": True, "scale": 2.0, "steps": 2, "strength": 0.5, "upscaler": ""}


async def test_pasting_a_parameters_block_fills_the_form(app_on, wait):
    from ddtui.tui.screens.prompt_tools import PasteParameters

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        await pilot.press("alt+p")
        await wait(pilot, lambda: isinstance(app.screen, PasteParameters), 5, "the paste box")
        app.screen.query_one("#paste-text", TextArea).load_text(
            "a castle on a hill, golden hour\nNegative prompt: blurry, lowres\n"
            "Steps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 1234, Size: 512x768, "
            "Model: dreamshaper_8, Hires upscale: 2, Version: v1.10")
        await pilot.press("ctrl+s")
        await wait(pilot, lambda: app.screen is screen, 5, "back on the form")
        req = screen.form.to_request()
        assert req["prompt"] == "a castle on a hill, golden hour" and req["negative_prompt"] == "blurry, lowres"
        assert (req["steps"], req["cfg"], req["seed"], req["width"], req["height"]) == (12, 5.5, 1234, 512, 768)
        assert (req["sampler"], req["scheduler"]) == ("dpm++2m", "karras") and screen.form.seed_locked
        status = str(screen.query_one("#gen-status").render())
        assert "dreamshaper_8" in status and "Hires upscale" in status  # left out, with a note
        await pilot.press("ctrl+z")  # the prompt that was there comes back
        assert screen.query_one("#prompt", TextArea).text != "a castle on a hill, golden hour"


async def test_lora_weight_keys_and_trigger_words_added_once(app_on, wait):
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        area = screen.query_one("#prompt", TextArea)
        area.load_text("")
        await type_prompt(pilot, "demo style castle")
        await pilot.press("ctrl+l")
        await wait(pilot, lambda: isinstance(app.screen, LoraPicker), 5, "the LoRA picker")
        await pilot.press("enter")
        await wait(pilot, lambda: app.screen is screen, 5, "back on the form")
        assert area.text == "demo style castle, <lora:demo-lora:0.8>"  # the trigger word was there already
        await pilot.press("alt+up", "alt+up")
        assert area.text.endswith("<lora:demo-lora:0.9>")
        await pilot.press("alt+shift+down", "alt+shift+down", "alt+shift+down", "alt+down")
        assert area.text.endswith("<lora:demo-lora:0.55>")
        assert "weight 0.55" in str(screen.query_one("#gen-status").render())
        assert screen.form.to_request()["prompt"] == "demo style castle, <lora:demo-lora:0.55>"
        area.move_cursor((0, 0))
        await pilot.press("alt+up")  # not on a tag: nothing changes
        assert area.text == "demo style castle, <lora:demo-lora:0.55>"
        await pilot.press("ctrl+z")
        assert area.text.endswith("<lora:demo-lora:0.6>")  # each nudge is its own undo step


async def test_open_in_generate_inserts_snippets_and_presets_keep_the_prompt(app_on, wait):
    from ddtui.tui.screens.prompt_tools import SnippetPicker
    from ddtui.tui.prompt_library import SnippetData, save_snippet

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        area = screen.query_one("#prompt", TextArea)
        area.load_text("a fox in the snow")
        area.move_cursor((0, 5))
        app.open_in_generate({"insert": "red"})
        assert area.text == "a fox, red in the snow"
        assert app.current_prompt == "a fox, red in the snow"
        with db_session:
            app.db.ImagePreset(name="quick", model=IMAGE_MODEL, params={"steps": 3})
        screen.load_form()
        await wait(pilot, lambda: "preset:quick" in screen.form.defaults, 10, "the preset in the list")
        app.open_in_generate({"model": IMAGE_MODEL, "steps": 3, "preset": "quick"})
        assert area.text == "a fox, red in the snow"  # a preset leaves the prompt alone
        assert screen.query_one("#model", Select).value == "preset:quick"
        assert screen.form.to_request()["preset"] == "quick"
        snippet = save_snippet(app.db, SnippetData(None, "moody", "moody light, fog"))
        area.move_cursor(area.document.end)
        await pilot.press("alt+i")
        await wait(pilot, lambda: isinstance(app.screen, SnippetPicker), 5, "the snippet picker")
        await pilot.press("enter")
        await wait(pilot, lambda: app.screen is screen, 5, "back on the form")
        assert area.text == "a fox, red in the snow, moody light, fog"
        await wait(pilot, lambda: _uses(app, snippet) == 1, 5, "the use counted")


def _uses(app, snippet_id: int) -> int:
    with db_session:
        return app.db.PromptSnippet[snippet_id].use_count


async def test_explore_the_last_result_from_the_form(app_on, wait):
    from ddtui.tui.screens.explore import ExploreScreen
    from tests.tui.test_inpaint import record_source

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait(pilot, lambda: screen._ready, 10, "the form")
        await pilot.press("alt+x")  # no result yet: a note, nothing else
        assert app.screen is screen
        gid = record_source(app)
        await screen.query_one("#results").mount(ResultThumb(gid, Path("/nonexistent.png"), 11))
        await pilot.press("alt+x")
        await wait(pilot, lambda: isinstance(app.screen, ExploreScreen), 5, "the explore screen")
        await wait(pilot, lambda: app.screen.anchor is not None, 10, "the anchor")
        assert app.screen.anchor.generation_id == gid and app.screen.anchor.request["seed"] == 11
