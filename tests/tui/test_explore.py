"""The Explore screen against the real service: a seed-only grid fills in with eight distinct seeds and the
anchor's prompt, a cell promoted to anchor gets a new grid around it, and a stopped grid leaves no job running.
Without a service: the lock toggles and what the keys do before there is a grid.
"""

from __future__ import annotations

from pony.orm import db_session

from ddtui.core.explore import LOCKABLE
from ddtui.tui.messages import JobEvent
from ddtui.tui.screens.explore import CENTRE, ExploreScreen
from ddtui.tui.screens.generate import GenerateScreen
from tests.tui.test_inpaint import record_source

SIZE = (160, 48)


def finished(screen: ExploreScreen) -> bool:
    return len(screen.cells) == 8 and all(c.state in ("done", "failed", "cancelled") for c in screen.cells.values())


async def test_seed_grid_fills_in_promotes_and_stops(service, app_at, wait):
    app = app_at(service.home, connect=True, protocol="halfcell")
    anchor = record_source(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.link.connected, 20, "the service link")
        await pilot.press("f3")
        history = app.screen
        await wait(pilot, lambda: history.model is not None and history.model.started, 10, "the history")
        history.grid.focus()
        await pilot.press("x")  # explore the image under the cursor
        await wait(pilot, lambda: isinstance(app.screen, ExploreScreen), 10, "the explore screen")
        screen = app.screen
        assert screen.locked == set(LOCKABLE) - {"seed"}
        await wait(pilot, lambda: finished(screen), 120, "eight cells")
        cells = list(screen.cells.values())
        assert all(c.state == "done" and c.generation_id for c in cells)
        seeds = {c.params["seed"] for c in cells}
        assert len(seeds) == 8 and 11 not in seeds
        assert {c.params["prompt"] for c in cells} == {"a blue lake"}
        await wait(pilot, lambda: all(screen.query_one(f"#cell-{r}-{c}").query_one(".cell-image").has_image
                                      for r, c in screen.cells), 10, "every cell's thumbnail")
        title = str(screen.query_one("#cell-0-0").query_one(".cell-params").render())
        assert title.startswith("seed ") and "steps" not in title  # only what differs from the anchor
        with db_session:
            rows = [app.db.Generation[c.generation_id] for c in cells]
            assert {r.kind for r in rows} == {"variation"} and {r.parent.id for r in rows} == {anchor}
        # Keep the top-left cell, then promote it: a new group, the cell in the centre.
        first_group = screen.group
        promoted = screen.cells[(0, 0)].generation_id
        await pilot.press("up", "left", "f")
        await wait(pilot, lambda: screen.cells[(0, 0)].favorite, 5, "the favorite")
        with db_session:
            assert app.db.Generation[promoted].favorite
        await pilot.press("enter")
        await wait(pilot, lambda: screen.group != first_group and screen.anchor.generation_id == promoted
                   and all(c.job_id for c in screen.cells.values()), 30, "the new grid")
        assert screen.cursor == CENTRE and screen.groups == [first_group, screen.group]
        assert {c.params["prompt"] for c in screen.cells.values()} == {"a blue lake"}
        # Stop it once a cell has its image: nothing of the group stays queued or running.
        await wait(pilot, lambda: any(c.generation_id for c in screen.cells.values()), 60, "a first image")
        await pilot.press("x")
        await wait(pilot, lambda: finished(screen), 30, "the stopped grid")
        for _ in range(60):  # core_status from the app's own link (this loop is the app's)
            if not (await app.request("core_status"))["running"]:
                break
            await pilot.pause(0.5)
        assert (await app.request("core_status"))["running"] == []
        with db_session:
            states = [j.state for j in app.db.Job.select(lambda j: j.group == screen.group)]
        assert "queued" not in states and "running" not in states and "cancelled" in states
        assert 1 <= sum(1 for c in screen.cells.values() if c.state == "done" or c.generation_id) < 8
        # A made cell's parameters open in the Generate form.
        made = next(p for p, c in screen.cells.items() if c.generation_id)
        screen.move_to(made)
        await pilot.press("g")
        generate = app.main_screens["generate"]
        await wait(pilot, lambda: isinstance(app.screen, GenerateScreen) and generate.form_loaded, 10, "Generate")
        await wait(pilot, lambda: generate.query_one("#prompt").text == "a blue lake", 5, "the cell's prompt")
        assert generate.query_one("#seed").value == str(screen.cells[made].params["seed"]) and generate.form.seed_locked


async def test_locks_and_keys_without_a_grid(demo_home, app_at, wait):
    app = app_at(demo_home)
    async with app.run_test(size=SIZE) as pilot:
        app.show_main("explore")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExploreScreen)
        await pilot.press("s")  # the seed was the only free parameter: it must stay free
        assert "seed" not in screen.locked
        await pilot.press("c", "t")
        assert screen.free_parameters() == ["seed", "steps", "cfg"]
        assert not screen.query_one("#lock-cfg").value and screen.query_one("#lock-prompt").value
        await pilot.press("s")
        assert screen.free_parameters() == ["steps", "cfg"]
        await pilot.press("enter", "f", "g")  # nothing to act on yet: notes, no errors
        assert app.screen is screen and not app.error_log
        await pilot.press("right", "down", "down")
        assert screen.cursor == (2, 2)
        anchor = record_source(app)
        app.send_to("explore", anchor)  # no service: the reason is shown where the user looks
        await wait(pilot, lambda: app.error_log, 10, "the error")
        assert app.error_log[-1].title == f"Cannot explore #{anchor}"
        assert "Cannot explore" in str(screen.query_one("#explore-status").render())
        assert screen.anchor is not None and screen.anchor.generation_id == anchor
        # An exploration the core could not plan is reported in the status line and the error log.
        screen.group = "explore-test"
        screen.groups.append(screen.group)
        app.on_job_event(JobEvent("", "exploration_failed", {"group": "explore-test",
                                                             "message": "the LLM could not write rewrites"}))
        await wait(pilot, lambda: app.error_log[-1].title == "Exploration failed", 5, "the failure")
        assert "the LLM could not write rewrites" in str(screen.query_one("#explore-status").render())
        assert {c.state for c in screen.cells.values()} == {"failed"}
        # The anchor (or a cell) is shown in History with the cursor on it; that screen is made just now.
        record_source(app)  # a newer image: the cursor has to move to the anchor
        screen.move_to(CENTRE)
        await pilot.press("o")
        await wait(pilot, lambda: app.current_mode == "history" and app.screen.grid.current is not None
                   and app.screen.grid.current.id == anchor, 10, "the anchor under the History cursor")
