"""Which image protocol this terminal really shows, found by asking it (before Textual owns the terminal).

One round trip asks everything at once: the kitty graphics query, XTVERSION (the terminal's name and version),
the cell size in pixels, and the primary device attributes (DA1), whose answer comes last and whose attribute 4
means sixel. Every terminal answers DA1, so its arrival ends the wait: no guessed timeouts on a fast terminal.
Inside tmux the application talks to tmux, not to the terminal, so tmux is asked instead: `allow-passthrough`,
and `client_termtype` / `client_termfeatures`, which tmux learnt by asking the terminal itself.

Whatever cannot be confirmed falls back to the next protocol (kitty, then sixel, then half cells), so
`--images auto` never sends graphics a terminal would print as text. `decide` holds every rule and touches no
terminal; `detect` gathers the answers and calls it.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

PROTOCOLS = ("kitty", "sixel", "halfcell", "none")
CHOICES = ("auto", *PROTOCOLS)
DEFAULT_CELL = (10, 20)  # pixels per cell when the terminal does not say (a VT340's cell)
PLACEHOLDERS_SINCE = (0, 28, 0)  # kitty's Unicode placeholders for images
ANSWER_TIMEOUT_S = 2.0  # only reached when a terminal never answers DA1 (nothing answers: half cells)
_KITTY_QUERY_ID = 4242

_DA1 = re.compile(rb"\x1b\[\?([\d;]*)c")
_KITTY = re.compile(rb"\x1b_Gi=(\d+)[^;\x1b]*;([^\x1b]*)\x1b\\")
_XTVERSION = re.compile(rb"\x1bP>\|([^\x1b]*)\x1b\\")
_CELL = re.compile(rb"\x1b\[6;(\d+);(\d+)t")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Answers:
    """What the terminal (or tmux, inside tmux) said to the queries."""

    answered: bool = False  # DA1 came back: the terminal reads and answers queries
    kitty: bool = False  # the kitty graphics query was answered OK
    sixel: bool = False  # DA1 lists attribute 4
    version: str = ""  # XTVERSION, e.g. "kitty(0.26.5)", "XTerm(379)", "tmux 3.3a"
    cell: tuple[int, int] | None = None  # cell size in pixels from CSI 16 t


@dataclass(frozen=True)
class TmuxInfo:
    """What tmux knows about itself and about the terminal it runs in."""

    passthrough: bool = False
    termtype: str = ""  # client_termtype: the outer terminal's XTVERSION, e.g. "kitty(0.26.5)"
    termname: str = ""  # client_termname: its TERM, e.g. "xterm-kitty"
    features: frozenset[str] = frozenset()  # client_termfeatures, e.g. {"RGB", "sixel"}


@dataclass(frozen=True)
class Detection:
    """The protocol ddtui draws with, why (shown at launch and on the help screen), and how to draw it."""

    protocol: str
    reason: str
    tmux: bool = False
    tmux_passthrough: bool | None = None  # None: not in tmux
    placeholders: bool = False  # kitty: Unicode placeholders (else images are placed directly)
    wrap: bool = False  # graphics go through tmux passthrough, positioned absolutely
    cell: tuple[int, int] = DEFAULT_CELL
    terminal: str = ""  # the terminal's own name and version, where known
    facts: tuple[str, ...] = field(default=())

    def with_reason(self, reason: str) -> "Detection":
        return replace(self, reason=reason)


# ------------------------------------------------------------------ parsing (pure)


def parse_answers(data: bytes) -> Answers:
    """Read the terminal's answers out of everything it sent back."""
    da1 = _DA1.search(data)
    kitty = any(int(m.group(1)) == _KITTY_QUERY_ID and m.group(2) == b"OK" for m in _KITTY.finditer(data))
    version = _XTVERSION.search(data)
    cell = _CELL.search(data)
    cell_size = None
    if cell:
        height, width = int(cell.group(1)), int(cell.group(2))
        cell_size = (width, height) if plausible_cell((width, height)) else None
    attributes = da1.group(1).split(b";") if da1 else []
    return Answers(answered=bool(da1), kitty=kitty, sixel=b"4" in attributes,
                   version=version.group(1).decode("utf-8", "replace") if version else "", cell=cell_size)


def plausible_cell(cell: tuple[int, int] | None) -> bool:
    return cell is not None and 2 <= cell[0] <= 200 and 4 <= cell[1] <= 400


def version_of(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def kitty_placeholders(version: str) -> bool:
    """Whether a terminal of this XTVERSION draws kitty images from Unicode placeholders."""
    name = version.lower()
    number = version_of(version)
    if name.startswith("kitty"):
        return number is not None and number >= PLACEHOLDERS_SINCE
    return name.startswith("ghostty")


def parse_tmux_features(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


# ------------------------------------------------------------------ the rules (pure)


def decide(requested: str, *, tty: bool, answers: Answers, tmux: TmuxInfo | None,
           window_cell: tuple[int, int] | None = None) -> Detection:
    """Choose the protocol from what was asked and answered; every rule of detection is here."""
    requested = requested if requested in CHOICES else "auto"
    cell_known = answers.cell if plausible_cell(answers.cell) else window_cell if plausible_cell(window_cell) \
        else None
    cell = cell_known or DEFAULT_CELL
    in_tmux = tmux is not None
    outer = (tmux.termtype or tmux.termname) if tmux else answers.version
    facts = [f"terminal: {outer or 'unknown'}",
             f"cell: {cell[0]}x{cell[1]} px" + ("" if cell_known else " (assumed)")]
    if tmux:
        facts.append(f"tmux passthrough: {'on' if tmux.passthrough else 'off'}")
    base = Detection("halfcell", "", in_tmux, tmux.passthrough if tmux else None, cell=cell, terminal=outer,
                     facts=tuple(facts))
    outer_kitty = bool(tmux and (tmux.termtype.lower().startswith("kitty") or tmux.termname == "xterm-kitty"))

    if requested != "auto":
        return _forced(base, requested, answers, tmux, outer_kitty)
    if not tty:
        return replace(base, protocol="none", reason="not a terminal")
    if tmux is not None:
        if answers.sixel and cell_known:
            return replace(base, protocol="sixel", reason="tmux draws sixel itself (its device attributes say so)")
        if not tmux.passthrough:
            return base.with_reason("in tmux with passthrough off: half cells "
                                    "(`set -g allow-passthrough on` in ~/.tmux.conf lets graphics through)")
        if outer_kitty:
            version = tmux.termtype or "kitty of unknown version"
            placeholders = kitty_placeholders(tmux.termtype) and "RGB" in tmux.features
            how = "Unicode placeholders" if placeholders else "placed directly at the pane's position"
            why = "" if placeholders or not kitty_placeholders(tmux.termtype) else \
                " (placeholders need tmux's RGB feature for the terminal)"
            return replace(base, protocol="kitty", placeholders=placeholders, wrap=True,
                           reason=f"tmux passthrough to {version}, which tmux found speaks kitty graphics: "
                                  f"images {how}{why}")
        if "sixel" in tmux.features and cell_known:
            return replace(base, protocol="sixel", wrap=True,
                           reason=f"tmux passthrough to {outer or 'the terminal'}, which tmux lists with sixel")
        return base.with_reason(f"in tmux: {outer or 'the terminal outside'} is not known to show kitty or sixel "
                                "graphics through tmux, so half cells")
    if not answers.answered:
        return base.with_reason("the terminal did not answer the graphics queries: half cells")
    if answers.kitty:
        placeholders = kitty_placeholders(answers.version)
        name = answers.version or "the terminal"
        how = "Unicode placeholders" if placeholders else \
            "placed directly (Unicode placeholders need kitty 0.28)" if answers.version.lower().startswith("kitty") \
            else "placed directly"
        return replace(base, protocol="kitty", placeholders=placeholders,
                       reason=f"{name} answered the kitty graphics query: images {how}")
    if answers.sixel:
        if not cell_known:
            return base.with_reason("the terminal reports sixel but not its cell size in pixels: half cells")
        return replace(base, protocol="sixel",
                       reason=f"{answers.version or 'the terminal'} reports sixel in its device attributes")
    return base.with_reason(f"{answers.version or 'the terminal'} answered no graphics query: half cells")


def _forced(base: Detection, requested: str, answers: Answers, tmux: TmuxInfo | None,
            outer_kitty: bool) -> Detection:
    reason = "set by config/--images"
    if requested == "kitty":
        version = tmux.termtype if tmux else answers.version
        placeholders = kitty_placeholders(version) and (tmux is None or "RGB" in tmux.features)
        if tmux is not None and not tmux.passthrough:
            reason += ("; tmux passthrough is OFF: add `set -g allow-passthrough on` to ~/.tmux.conf")
        return replace(base, protocol="kitty", placeholders=placeholders, wrap=tmux is not None, reason=reason)
    if requested == "sixel":
        return replace(base, protocol="sixel", wrap=tmux is not None and not answers.sixel, reason=reason)
    return replace(base, protocol=requested, reason=reason)


# ------------------------------------------------------------------ asking (I/O)


def _is_tty() -> bool:
    return bool(sys.__stdout__ and sys.__stdout__.isatty() and sys.__stdin__ and sys.__stdin__.isatty())


def window_cell_size() -> tuple[int, int] | None:
    """Cell size from the kernel's window size (most terminals fill in the pixel fields)."""
    try:
        import fcntl
        import struct
        import termios

        rows, cols, xpixel, ypixel = struct.unpack(
            "HHHH", fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, b"\0" * 8))  # type: ignore[union-attr]
    except (OSError, ImportError, AttributeError, ValueError):
        return None
    if not (rows and cols and xpixel and ypixel):
        return None
    return xpixel // cols, ypixel // rows


def query_terminal(*, kitty: bool = True, timeout: float = ANSWER_TIMEOUT_S) -> Answers:
    """Send the queries and read the answers until DA1 arrives (it is answered last)."""
    try:
        import termios
        import tty
    except ImportError:
        return Answers()
    fd_in, fd_out = sys.__stdin__.fileno(), sys.__stdout__.fileno()  # type: ignore[union-attr]
    queries = (f"\x1b_Gi={_KITTY_QUERY_ID},s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\" if kitty else "") + \
        "\x1b[>0q\x1b[16t\x1b[c"
    saved = termios.tcgetattr(fd_in)
    data = b""
    try:
        tty.setcbreak(fd_in, termios.TCSANOW)
        new = termios.tcgetattr(fd_in)
        new[3] &= ~termios.ECHO
        termios.tcsetattr(fd_in, termios.TCSANOW, new)
        os.write(fd_out, queries.encode())
        deadline = time.monotonic() + timeout
        while not _DA1.search(data):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd_in], [], [], left)
            if ready:
                chunk = os.read(fd_in, 4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        pass
    finally:
        termios.tcsetattr(fd_in, termios.TCSAFLUSH, saved)
    return parse_answers(data)


def _tmux(*args: str) -> str:
    if not shutil.which("tmux"):
        return ""
    try:
        out = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=2.0)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _pane_target() -> list[str]:
    pane = os.environ.get("TMUX_PANE", "")
    return ["-t", pane] if pane else []


def tmux_info() -> TmuxInfo:
    """Ask tmux about passthrough and about the terminal outside it."""
    target = _pane_target()
    passthrough = _tmux("show", "-pv", *target, "allow-passthrough") or _tmux("show", "-wv", *target,
                                                                             "allow-passthrough") \
        or _tmux("show", "-gv", "allow-passthrough")
    line = _tmux("display", "-p", *target, "#{client_termtype}\t#{client_termname}\t#{client_termfeatures}")
    termtype, termname, features = (line.split("\t") + ["", "", ""])[:3]
    return TmuxInfo(passthrough=passthrough in ("on", "all"), termtype=termtype, termname=termname,
                    features=parse_tmux_features(features))


def tmux_pane_origin() -> tuple[int, int]:
    """Where this pane's top-left cell is on the terminal (row, column), counting a status line on top."""
    line = _tmux("display", "-p", *_pane_target(),
                 "#{pane_top} #{pane_left} #{status} #{status-position}")
    parts = line.split()
    try:
        top, left = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0
    status, position = (parts[2] if len(parts) > 2 else "off"), (parts[3] if len(parts) > 3 else "bottom")
    if position == "top" and status != "off":
        top += int(status) if status.isdigit() else 1
    return top, left


def in_tmux() -> bool:
    return bool(os.environ.get("TMUX"))


_last: list[Detection] = []


def last_detection() -> Detection | None:
    """What `detect` found in this process (the app's graphics are drawn accordingly)."""
    return _last[-1] if _last else None


def detect(requested: str = "auto") -> Detection:
    """Ask the terminal (or tmux) and decide; call it before the Textual app starts."""
    tty_ok = _is_tty()
    tmux = tmux_info() if in_tmux() else None
    answers = Answers()
    if tty_ok and requested in ("auto", "kitty", "sixel"):
        term = os.environ.get("TERM", "")
        # The Linux console prints an unknown APC string as text, and tmux never answers the kitty query.
        answers = query_terminal(kitty=tmux is None and not term.startswith(("linux", "vt1", "vt2")))
    detection = decide(requested, tty=tty_ok, answers=answers, tmux=tmux,
                       window_cell=window_cell_size() if tty_ok else None)
    _last[:] = [detection]
    return detection
