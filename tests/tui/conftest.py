"""Fixtures for the app-shell tests: apps built on demo homes (with or without the real service), a fake
/proc for deterministic VRAM snapshots, and a helper that waits on the app the way a person would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from ddtui.config import load_config, resolve_home
from ddtui.tui.app import DdtuiApp

SIZE = (160, 48)


def build_app(home: Path, *, connect: bool = False, protocol: str = "none", service_note: str = "",
              keys: dict[str, str] | None = None, theme: str | None = None) -> DdtuiApp:
    """The real app on `home`; `keys`/`theme` are written to its config.json first, as a user would."""
    if keys is not None or theme is not None:
        path = home / "config.json"
        data = json.loads(path.read_text())
        if keys is not None:
            data["ui"]["keys"] = keys
        if theme is not None:
            data["ui"]["theme"] = theme
        path.write_text(json.dumps(data, indent=2))
    h = resolve_home(home)
    note = service_note or ("" if connect else "no service in this test")
    return DdtuiApp(h, load_config(h), image_protocol=protocol, connect=connect, service_note=note)


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Let the app run until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")


async def palette_offers(pilot: Any, query: str, expect: str, timeout: float = 30.0) -> None:
    """Type `query` into the command palette (once it is open) and wait until its search for the whole query is done
    and the highlighted command (the one Enter runs) is the one whose text contains `expect`."""
    from textual.command import CommandList, CommandPalette

    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), timeout, "the palette")
    palette = pilot.app.screen
    await pilot.press(*query)

    def settled() -> bool:
        searching = any(w.group == CommandPalette._GATHER_COMMANDS_GROUP and not w.is_finished
                        for w in pilot.app.workers)
        commands = palette.query_one(CommandList)
        if searching or commands.highlighted is None:
            return False
        hit = getattr(commands.get_option_at_index(commands.highlighted), "hit", None)
        return hit is not None and expect.lower() in str(hit.text).lower()

    await wait_for(pilot, settled, timeout, f"the palette to offer {expect!r} for {query!r}")


@pytest.fixture
def offers() -> Callable[..., Any]:
    """`await offers(pilot, query, expect)` (see `palette_offers`)."""
    return palette_offers


@pytest.fixture
def wait() -> Callable[..., Any]:
    """`await wait(pilot, condition, timeout, what)` (see `wait_for`)."""
    return wait_for


@pytest.fixture
def app_at() -> Callable[..., DdtuiApp]:
    """`app_at(home, **kwargs)` builds the real app on any home (see `build_app`)."""
    return build_app


@pytest.fixture
def app_on(demo_home: Path) -> Callable[..., DdtuiApp]:
    """Build apps on the test's demo home (no service unless `connect=True` and a service runs)."""
    return lambda **kwargs: build_app(demo_home, **kwargs)


def write_fake_proc(root: Path, pids: dict[int, int] | None = None) -> Path:
    """A /proc with fixed figures: 4 CPUs, 16 GB of RAM, 2 GB swap, and optional process RSS (kB)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "loadavg").write_text("0.50 0.40 0.30 1/100 1234\n")
    cpus = "".join(f"cpu{i} 100 0 100 800 0 0 0 0 0 0\n" for i in range(4))
    (root / "stat").write_text("cpu  400 0 400 3200 0 0 0 0 0 0\n" + cpus)
    (root / "meminfo").write_text("MemTotal:       16777216 kB\nMemFree:         4194304 kB\n"
                                  "MemAvailable:   12582912 kB\nSwapTotal:       2097152 kB\n"
                                  "SwapFree:        2097152 kB\n")
    for pid, rss in (pids or {}).items():
        (root / str(pid)).mkdir(exist_ok=True)
        (root / str(pid) / "status").write_text(f"Name:\tpython\nVmRSS:\t{rss} kB\n")
    return root


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    return write_fake_proc(tmp_path / "proc")
