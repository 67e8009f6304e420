"""Every write goes through the service, and every subscribed client hears of it with the request's id.

A real `ddtui serve` with real workers; one client watches the event stream while the CLI (a second client)
or the watcher itself writes.
"""

from __future__ import annotations

import asyncio
import json

from ddtui.config import resolve_home
from ddtui.core.client import CoreClient, RequestFailed
from tests.conftest import ddtui
from tests.integration.test_core import lines


async def _until(client: CoreClient, predicate, timeout: float = 60.0) -> list[dict]:
    """Events read until one matches `predicate` (all of them, the match last)."""
    seen: list[dict] = []

    async def read() -> list[dict]:
        while True:
            event, _ = await client.events.get()
            seen.append(event)
            if predicate(event):
                return seen

    return await asyncio.wait_for(read(), timeout)


def _generate_one(home, prompt: str = "a lighthouse at night") -> int:
    r = ddtui(home, "generate", prompt, "--json")
    assert r.returncode == 0, r.stderr
    return next(e["generation_id"] for e in lines(r.stdout) if e["event"] == "image")


def test_cli_writes_reach_a_watching_client(service):
    home = service.home
    gid = _generate_one(home)

    async def go() -> None:
        async with CoreClient(resolve_home(home)) as watcher:
            await watcher.subscribe()

            async def cli(*args: str) -> None:
                r = await asyncio.to_thread(ddtui, home, *args)
                assert r.returncode == 0, r.stderr

            def change(topic: str, action: str):
                return lambda e: e["event"] == f"{topic}_changed" and e["data"].get("action") == action

            await cli("history", "rate", str(gid), "4")
            event = (await _until(watcher, change("history", "rate")))[-1]
            assert event["data"]["ids"] == [gid] and event["parent"]  # the CLI's request id
            await cli("history", "favorite", str(gid))
            await _until(watcher, change("history", "favorite"))
            await cli("history", "tag", str(gid), "+harbour")
            await _until(watcher, change("history", "tags"))
            await cli("queue", "pause")
            assert (await _until(watcher, change("queue", "paused")))[-1]["data"]["ids"] == []
            await cli("queue", "resume")
            await _until(watcher, change("queue", "resumed"))
            await cli("history", "delete", str(gid), "--yes")
            assert (await _until(watcher, change("history", "delete")))[-1]["data"]["ids"] == [gid]

    asyncio.run(go())


def test_own_job_events_carry_the_request_id_from_the_first(service):
    home = service.home

    async def go() -> None:
        h = resolve_home(home)
        async with CoreClient(h) as mine, CoreClient(h) as other:
            await mine.subscribe()
            await other.subscribe()
            rid = mine.new_request_id()
            job = await mine.submit("generate", {"prompt": "a kite over dunes", "batch": 2}, request_id=rid)
            # The job's own "done" comes first, then what it changed: the queue's "done" is the last word.
            done = lambda e: e["event"] == "queue_changed" and e["data"] == {"ids": [job["id"]], "action": "done"}  # noqa: E731
            for client in (mine, other):
                seen = await _until(client, done)
                events = [e for e in seen if e["job_id"] == str(job["id"])]
                kinds = [e["event"] for e in events]
                assert kinds[0] == "queued" and "started" in kinds and kinds.count("image") == 2
                assert {e["parent"] for e in events} == {rid}  # both know whose job it is, from the first event
                # What the job changed elsewhere (its new images, the queue) carries the same request id.
                new = [e for e in seen if e["event"] == "history_changed" and e["data"]["action"] == "new"]
                assert len(new) == 2 and {e["parent"] for e in new} == {rid}
                queue = [e["data"]["action"] for e in seen if e["event"] == "queue_changed"
                         and e["data"]["ids"] == [job["id"]]]
                assert queue[0] == "queued" and queue[-1] == "done"

    asyncio.run(go())


def test_styles_are_applied_once_by_the_core_and_recorded(service):
    home = service.home

    async def go() -> dict:
        async with CoreClient(resolve_home(home)) as client:
            await client.subscribe()
            saved = await client.request("style.save", {"id": None, "name": "Noir",
                                                        "prompt": "{prompt}, film noir", "negative_prompt": "colour"})
            event = (await _until(client, lambda e: e["event"] == "styles_changed"))[-1]
            assert event["data"] == {"ids": [saved["id"]], "action": "save"}
            try:
                await client.request("style.save", {"id": None, "name": "Noir", "prompt": "again"})
            except RequestFailed as exc:
                assert "already a style named 'Noir'" in str(exc)
            else:
                raise AssertionError("a second style of the same name was accepted")
            return saved

    asyncio.run(go())
    r = ddtui(home, "generate", "a street at night", "--style", "Noir", "--json")
    assert r.returncode == 0, r.stderr
    gid = next(e["generation_id"] for e in lines(r.stdout) if e["event"] == "image")
    shown = json.loads(ddtui(home, "history", "show", str(gid), "--json").stdout)
    assert shown["prompt"] == "a street at night, film noir" and shown["negative_prompt"] == "colour"
    assert shown["params"]["styles"] == ["Noir"] and shown["params"]["base_prompt"] == "a street at night"
    r = ddtui(home, "generate", "x", "--style", "Missing")
    assert r.returncode == 2 and "no style named 'Missing'" in r.stderr


def test_import_goes_through_the_service_and_is_announced(service, tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    home = service.home
    info = PngInfo()
    info.add_text("parameters", "a tide pool\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 9, Size: 24x24")
    Image.new("RGB", (24, 24), (10, 90, 140)).save(tmp_path / "a1111.png", pnginfo=info)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")

    async def go() -> list[dict]:
        async with CoreClient(resolve_home(home)) as watcher:
            await watcher.subscribe()
            r = await asyncio.to_thread(ddtui, home, "import", str(tmp_path), "--no-tag", "--json")
            assert r.returncode == 1  # one file was skipped
            results = {json.loads(x)["path"].rsplit("/", 1)[-1]: json.loads(x) for x in r.stdout.splitlines()}
            assert results["a1111.png"]["status"] == "imported" and results["broken.png"]["status"] == "skipped"
            event = (await _until(watcher, lambda e: e["event"] == "history_changed"
                                  and e["data"]["action"] == "import"))[-1]
            assert event["data"]["ids"] == [results["a1111.png"]["generation_id"]]
            return [e for e in await _until(watcher, lambda e: e["event"] == "import_progress")]

    progress = asyncio.run(go())[-1]["data"]
    assert progress == {"done": 2, "total": 2, "imported": 1}


def test_config_saved_by_the_service_names_the_changed_keys(service):
    home = service.home

    async def go() -> None:
        async with CoreClient(resolve_home(home)) as client:
            await client.subscribe()
            res = await client.request("config.save", {"changes": {"ui.theme": "ddtui-light"}})
            assert res == {"changed": ["ui.theme"]}
            event = (await _until(client, lambda e: e["event"] == "settings_changed"))[-1]
            assert event["data"]["changed"] == ["ui.theme"]
            try:
                await client.request("config.save", {"changes": {"queue.max_attempts": "three"}})
            except RequestFailed as exc:
                assert "queue.max_attempts" in str(exc)
            else:
                raise AssertionError("a bad value was saved")

    asyncio.run(go())
    saved = json.loads((home / "config.json").read_text())
    assert saved["ui"]["theme"] == "ddtui-light" and saved["queue"]["max_attempts"] == 3
