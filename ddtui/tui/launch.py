"""`ddtui` with no subcommand: load the config, detect the image protocol, make sure the service runs, and
open the app.

Order matters: the terminal is asked about graphics before Textual takes it over (the answers cannot be read
afterwards; ddtui/tui/graphics/detect.py), and the service is started first so queued work never depends on the
interface staying open. The app draws with what was found; the help screen shows the protocol and why.
If the service cannot start, the app opens anyway (history browsing needs only the database) and says why.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..config import Home, load_config, resolve_home

SERVICE_TIMEOUT_S = 30.0


def _say(text: str) -> None:
    print(f"ddtui: {text}", file=sys.stderr, flush=True)


def start_service(home: Home, timeout: float = SERVICE_TIMEOUT_S) -> tuple[bool, str]:
    """Ensure a service answers for `home`: (running, what happened) for the user."""
    from ..core.client import ServiceUnavailable, ensure_service

    try:
        started = asyncio.run(ensure_service(home, timeout=timeout))
    except ServiceUnavailable as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - the interface still opens; the reason is shown in it
        return False, f"{type(exc).__name__}: {exc}"
    return True, "started the service" if started else "the service is running"


def run_tui(args: argparse.Namespace) -> int:
    home = resolve_home(getattr(args, "home", None))
    cfg = load_config(home)
    requested = getattr(args, "images", None) or cfg["ui"]["image_protocol"]

    from .widgets.image import describe, detect_protocol

    detection = detect_protocol(requested)
    _say(describe(detection))
    _say(f"home {home.root}: connecting to the service…")
    running, note = start_service(home)
    if running:
        _say(note)
    else:
        _say(f"the service is not available: {note}")
        _say("opening anyway: history browsing works; generating needs the service.")

    from ..db.schema import SchemaError
    from .app import DdtuiApp

    try:
        app = DdtuiApp(home, cfg, image_protocol=detection.protocol,
                       image_note="; ".join([detection.reason, *detection.facts]),
                       service_note="" if running else note)
    except SchemaError as exc:
        _say(str(exc))
        return 2
    app.run()
    return 0
