"""Exploration through the real service: only the seed unlocked, promotion, a cancelled grid, prompt tools."""

from __future__ import annotations

import asyncio
import json

from ddtui.config import resolve_home
from ddtui.core.client import CoreClient
from tests.conftest import ddtui
from tests.integration.test_core import history, jobs, lines, wait_for


def anchor(home) -> int:
    return [e for e in lines(ddtui(home, "generate", "a red fox", "--seed", "7", "--json").stdout)
            if e["event"] == "image"][0]["generation_id"]


def test_seed_only_grid_then_promote(service):
    home = service.home
    gid = anchor(home)
    r = ddtui(home, "explore", str(gid), "--unlock", "seed", "--json")
    assert r.returncode == 0, r.stderr
    events = lines(r.stdout)
    grid = next(e for e in events if e["event"] == "exploration")
    images = [e for e in events if e["event"] == "image"]
    assert len(grid["cells"]) == 8 == len(images)
    assert len({c["seed"] for c in grid["cells"]}) == 8 and 7 not in {c["seed"] for c in grid["cells"]}
    assert {c["prompt"] for c in grid["cells"]} == {"a red fox"}
    assert sorted(tuple(c["position"]) for c in grid["cells"]) == sorted(
        (r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1))
    rows = {h[0]: h for h in history(home)}
    for img in images:
        assert rows[img["generation_id"]][2] == "variation" and rows[img["generation_id"]][3] == gid
    # Promote a cell to anchor: the grid regenerates around it.
    promoted = images[3]["generation_id"]
    r = ddtui(home, "explore", str(promoted), "--unlock", "seed,cfg", "--json")
    assert r.returncode == 0, r.stderr
    second = lines(r.stdout)
    grid2 = next(e for e in second if e["event"] == "exploration")
    assert grid2["anchor"]["seed"] == rows[promoted][1] and grid2["parent_id"] == promoted
    assert len([e for e in second if e["event"] == "image"]) == 8


def test_cancelled_grid_leaves_no_running_jobs(service):
    home = service.home
    gid = anchor(home)

    async def go() -> str:
        async with CoreClient(resolve_home(home)) as client:
            await client.subscribe()
            group = (await client.request("submit", {"kind": "explore", "params": {
                "generation_id": gid, "locked": ["prompt", "steps", "cfg", "sampler", "scheduler"]}}))["group"]
            async for event, _ in client.iter_events():
                if event["event"] == "exploration" and event["data"]["group"] == group:
                    break
            async for event, _ in client.iter_events():
                if event["event"] == "image":
                    break  # one cell has finished: cancel the rest
            await client.request("cancel_group", {"group": group})
            return group

    group = asyncio.run(go())
    wait_for(lambda: service.status()["running"] == [], timeout=30)
    states = [state for _, state, _, _ in jobs(home).values()]
    assert "queued" not in states and "running" not in states
    assert states.count("cancelled") >= 1
    made = [h for h in history(home) if h[2] == "variation"]
    assert 1 <= len(made) < 8
    assert group.startswith("explore-")


def test_prompt_unlocked_uses_llm_rewrites_and_prompt_tools(service):
    home = service.home
    gid = anchor(home)
    r = ddtui(home, "explore", str(gid), "--unlock", "prompt,seed", "--json")
    assert r.returncode == 0, r.stderr
    grid = next(e for e in lines(r.stdout) if e["event"] == "exploration")
    prompts = {c["prompt"] for c in grid["cells"]}
    assert "a red fox" not in prompts and len(prompts) >= 1  # rewrites from the (random) demo LLM
    out = json.loads(ddtui(home, "prompt", "variations", "a red fox", "-n", "3", "--json").stdout)
    assert 1 <= len(out["result"]) <= 3
    r = ddtui(home, "prompt", "styles", "a red fox, ink drawing, moody", "--save", "--json")
    assert r.returncode == 0, r.stderr
    styles = json.loads(r.stdout)["result"]
    assert styles and all("{prompt}" in s["prompt"] for s in styles)
    r = ddtui(home, "generate", "a cat", "--style", styles[0]["name"], "--seed", "1", "--json")
    assert r.returncode == 0, r.stderr
