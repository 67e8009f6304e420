"""Images in the terminal: protocol detection (before Textual owns the terminal) and the `ImageView` widget.

Protocols: `kitty` (the kitty graphics protocol with Unicode placeholders, via textual-image's TGP widget),
`sixel`, `halfcell` (coloured ▀ cells, works everywhere) and `none` (a text placeholder). textual-image
queries the terminal when its modules are first imported and the answers cannot be read once Textual runs,
so `detect_protocol` must be called before `App.run` (launch.py does).

Inside tmux the graphics escape codes must be wrapped for passthrough, and tmux must allow it:
`set -g allow-passthrough on` in ~/.tmux.conf. The kitty placeholders are plain text to tmux, so images stay
in their pane; sixel works when tmux itself was built with sixel support (tmux 3.4+).

`ImageView` never decodes a full-size image: it is fed thumbnail files from the cache (decoded in a thread,
kept in a small LRU) or the small PNG bytes of a live preview.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from PIL import Image as PILImage
from textual import work
from textual.worker import Worker, WorkerState, get_current_worker
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

log = logging.getLogger("ddtui.tui.image")

PROTOCOLS = ("kitty", "sixel", "halfcell", "none")
CHOICES = ("auto", *PROTOCOLS)


@dataclass(frozen=True)
class Detection:
    """What `detect_protocol` decided, and why (shown at launch and on the help screen)."""

    protocol: str
    reason: str
    tmux: bool = False
    tmux_passthrough: bool | None = None  # None: not in tmux, or unknown


def in_tmux() -> bool:
    return bool(os.environ.get("TMUX"))


def _tmux(*args: str) -> str:
    if not shutil.which("tmux"):
        return ""
    try:
        out = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=1.0)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def tmux_passthrough() -> bool:
    """Whether this tmux server lets graphics escape codes through (`allow-passthrough on` or `all`)."""
    value = _tmux("show", "-gv", "allow-passthrough") or _tmux("show", "-pv", "allow-passthrough")
    return value in ("on", "all")


def wrap_for_tmux(sequence: str) -> str:
    """A DCS passthrough envelope: tmux hands the inner sequence to the outer terminal unchanged."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def _route_kitty_through_tmux() -> None:
    """Make textual-image's kitty uploads go through tmux passthrough (its placeholders are plain text)."""
    from textual_image.renderable import tgp

    if getattr(tgp._send_tgp_message, "_ddtui_tmux", False):
        return
    original_start, original_end = tgp._TGP_MESSAGE_START, tgp._TGP_MESSAGE_END

    def send(*, payload: str | None = None, **kwargs: int | str | None) -> None:
        if not sys.__stdout__:
            return
        body = ",".join(f"{k}={v}" for k, v in kwargs.items() if v is not None)
        seq = original_start + body + (f";{payload}" if payload else "") + original_end
        sys.__stdout__.write(wrap_for_tmux(seq))
        sys.__stdout__.flush()

    send._ddtui_tmux = True  # type: ignore[attr-defined]
    tgp._send_tgp_message = send


def _outer_terminal_speaks_kitty() -> bool:
    """Inside tmux the terminal cannot be asked directly; tmux knows the client's TERM."""
    term = _tmux("display", "-p", "#{client_termname}").lower()
    return any(name in term for name in ("kitty", "ghostty")) or bool(os.environ.get("KITTY_WINDOW_ID"))


def detect_protocol(requested: str = "auto") -> Detection:
    """Choose the image protocol; queries the terminal, so call it before the Textual app starts."""
    tty = bool(sys.__stdout__ and sys.__stdout__.isatty() and sys.__stdin__ and sys.__stdin__.isatty())
    tmux = in_tmux()
    passthrough = tmux_passthrough() if tmux else None
    if requested not in CHOICES:
        requested = "auto"
    # Importing these asks the terminal (DA1 for sixel, a kitty query) and reads the cell size in pixels.
    try:
        import textual_image.renderable as renderable
        import textual_image.widget  # noqa: F401 - fills textual-image's cell-size cache now
    except Exception as exc:  # noqa: BLE001 - a broken terminal answer must not stop the app
        log.warning("textual-image could not query the terminal: %s", exc)
        return Detection("halfcell" if requested == "auto" else requested, f"terminal query failed: {exc}",
                         tmux, passthrough)
    if requested != "auto":
        if requested == "kitty" and tmux:
            _route_kitty_through_tmux()
            if not passthrough:
                return Detection("kitty", "set by config/--images; tmux passthrough is OFF: add "
                                 "`set -g allow-passthrough on` to ~/.tmux.conf", tmux, passthrough)
        return Detection(requested, "set by config/--images", tmux, passthrough)
    if not tty:
        return Detection("none", "not a terminal", tmux, passthrough)
    chosen = renderable.Image
    if chosen is renderable.SixelImage:
        return Detection("sixel", "the terminal reports sixel graphics", tmux, passthrough)
    if chosen is renderable.TGPImage:
        return Detection("kitty", "the terminal answers kitty graphics queries", tmux, passthrough)
    if tmux and passthrough and _outer_terminal_speaks_kitty():
        _route_kitty_through_tmux()
        return Detection("kitty", "tmux with passthrough inside a kitty-graphics terminal", tmux, passthrough)
    reason = "no graphics protocol answered; drawing with half cells"
    if tmux and not passthrough:
        reason += " (in tmux: `set -g allow-passthrough on` lets kitty graphics through)"
    return Detection("halfcell", reason, tmux, passthrough)


# ------------------------------------------------------------------ decoding, cached

_CACHE_SIZE = 256
_cache: "OrderedDict[tuple[str, float], PILImage.Image]" = OrderedDict()
_cache_lock = Lock()


def load_thumbnail(path: Path) -> PILImage.Image:
    """Decode a (small) cached thumbnail once; later calls for the same file are served from memory."""
    stat = path.stat()
    key = (str(path), stat.st_mtime)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    with PILImage.open(path) as im:
        im.draft("RGB", (512, 512))  # a JPEG decodes at reduced scale when it is bigger than a thumbnail
        if max(im.size) > 512:
            im.thumbnail((512, 512))
        image = im.convert("RGB")
    with _cache_lock:
        _cache[key] = image
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return image


def decode_png(data: bytes) -> PILImage.Image:
    with PILImage.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def _widget_class(protocol: str) -> type[Widget] | None:
    if protocol == "none":
        return None
    from textual_image import widget as ti

    return {"kitty": ti.TGPImage, "sixel": ti.SixelImage, "halfcell": ti.HalfcellImage}.get(protocol,
                                                                                             ti.HalfcellImage)


class ImageView(Widget):
    """An image in the terminal, drawn with the app's protocol; a caption shows when there is none."""

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
        align: center middle;
    }
    ImageView > .image {
        width: auto;
        height: auto;
    }
    ImageView > Static.placeholder {
        width: 100%;
        height: 100%;
        content-align: center middle;
        color: $text-muted;
    }
    """

    caption: reactive[str] = reactive("", init=False)
    image_size: reactive[tuple[int, int]] = reactive((0, 0), init=False)

    def __init__(self, placeholder: str = "no image", protocol: str | None = None, *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._protocol = protocol
        self._placeholder_text = placeholder
        self._image: PILImage.Image | None = None
        self._inner: Widget | None = None
        self._text: Static | None = None

    @property
    def protocol(self) -> str:
        if self._protocol is None:
            self._protocol = getattr(self.app, "image_protocol", "halfcell")
        return self._protocol

    @property
    def has_image(self) -> bool:
        return self._image is not None

    def compose(self) -> ComposeResult:
        cls = _widget_class(self.protocol)
        self._text = Static(self._placeholder_text, classes="placeholder")
        yield self._text
        if cls is not None:
            self._inner = cls(classes="image")
            self._inner.display = False
            yield self._inner

    def _set(self, image: PILImage.Image | None, label: str = "") -> None:
        self._image = image
        self.image_size = image.size if image is not None else (0, 0)
        if self._text is None:
            return
        if image is None:
            self._text.update(self._placeholder_text)
            self._text.display = True
            if self._inner is not None:
                self._inner.display = False
                self._inner.image = None  # type: ignore[attr-defined]
            return
        if self._inner is None:  # protocol "none": say what would be there
            self._text.update(label or f"▣ {image.width}×{image.height}")
            self._text.display = True
            return
        self._text.display = False
        self._inner.display = True
        self._inner.image = image  # type: ignore[attr-defined]

    def show_png(self, data: bytes, label: str = "") -> None:
        """Show small PNG bytes (a live preview) at once."""
        try:
            image = decode_png(data)
        except Exception as exc:  # noqa: BLE001 - a bad preview must not break the screen
            log.debug("undecodable preview: %s", exc)
            return
        self._set(image, label)

    def show_pil(self, image: PILImage.Image | None, label: str = "") -> None:
        self._set(image, label)

    def show_file(self, path: Path, label: str = "") -> None:
        """Show a thumbnail file; it is decoded off the event loop."""
        self._load(Path(path), label)

    @work(group="image-load", thread=True, exit_on_error=False, exclusive=True)
    def _load(self, path: Path, label: str) -> None:
        image = load_thumbnail(path)
        if not get_current_worker().is_cancelled:  # a newer image was asked for meanwhile
            self.app.call_from_thread(self._set, image, label)

    def clear(self, placeholder: str | None = None) -> None:
        """Show no image: the placeholder text (a new one when given) instead."""
        if placeholder is not None:
            self._placeholder_text = placeholder
        self._set(None)

    def fix_size(self, cols: int, rows: int) -> None:
        """Draw the image in exactly `cols` x `rows` cells (the mask editor maps cells to pixels with this)."""
        self.styles.width = cols
        self.styles.height = rows
        if self._inner is not None:
            self._inner.styles.width = cols
            self._inner.styles.height = rows

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A thumbnail that cannot be read is shown as missing; the cache makes it again on the next visit.
        if event.state == WorkerState.ERROR and self._text is not None:
            self._set(None)
            self._text.update("thumbnail missing")


def describe(detection: Detection) -> str:
    tmux = ""
    if detection.tmux and "tmux" not in detection.reason:
        tmux = f"; tmux passthrough {'on' if detection.tmux_passthrough else 'off'}"
    return f"images: {detection.protocol} ({detection.reason}{tmux})"

