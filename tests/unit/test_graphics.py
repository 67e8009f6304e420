"""Terminal graphics without a terminal: the detection rules on answers real terminals gave, the sixel encoder
read back by a decoder written from the format's description, kitty's commands, prepared pictures and the
sixel tile cache."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddtui.tui.graphics import kitty, sixel
from ddtui.tui.graphics.detect import Answers, Detection, TmuxInfo, decide, kitty_placeholders, parse_answers
from ddtui.tui.graphics.picture import Graphics, fit, prepare, sixel_cache_path, text_rows

# What the terminals in tests/e2e answered to ddtui's queries (kitty query, XTVERSION, CSI 16 t, DA1).
XTERM_VT340 = b"\x1bP>|XTerm(379)\x1b\\\x1b[?63;1;2;4;6;9;15;16;22;28c"
KITTY_026 = b"\x1b_Gi=4242;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[6;19;8t\x1b[?62;c"
TMUX_33 = b"\x1bP>|tmux 3.3a\x1b\\\x1b[?1;2c"


def test_answers_of_real_terminals_are_read():
    xterm = parse_answers(XTERM_VT340)
    assert xterm.answered and xterm.sixel and not xterm.kitty and xterm.version == "XTerm(379)"
    assert xterm.cell is None  # xterm does not report its cell size (it fills in the window size instead)
    kitty_answers = parse_answers(KITTY_026)
    assert kitty_answers.kitty and not kitty_answers.sixel and kitty_answers.cell == (8, 19)
    assert parse_answers(TMUX_33) == Answers(answered=True, version="tmux 3.3a")
    assert not parse_answers(b"").answered
    # Another program's kitty reply (another id), or an error, is no confirmation.
    assert not parse_answers(b"\x1b_Gi=31;OK\x1b\\\x1b[?62c").kitty
    assert not parse_answers(b"\x1b_Gi=4242;ENOTSUPPORTED:x\x1b\\\x1b[?62c").kitty


def test_placeholders_only_where_the_version_has_them():
    assert not kitty_placeholders("kitty(0.26.5)")
    assert kitty_placeholders("kitty(0.28.0)") and kitty_placeholders("kitty(0.35.2)")
    assert kitty_placeholders("ghostty 1.1.3")
    assert not kitty_placeholders("WezTerm 20240203") and not kitty_placeholders("")


@pytest.mark.parametrize("answers, tmux, protocol, placeholders, wrap, said", [
    (parse_answers(XTERM_VT340), None, "sixel", False, False, "reports sixel"),
    (parse_answers(KITTY_026), None, "kitty", False, False, "placeholders need kitty 0.28"),
    (parse_answers(KITTY_026.replace(b"0.26.5", b"0.35.2")), None, "kitty", True, False, "Unicode placeholders"),
    (parse_answers(b"\x1bP>|foot(1.16)\x1b\\\x1b[?62;4;22c"), None, "sixel", False, False, "foot(1.16) reports"),
    (Answers(), None, "halfcell", False, False, "did not answer"),
    (parse_answers(b"\x1b[?62;22c"), None, "halfcell", False, False, "no graphics"),
    # tmux: the terminal outside is known through tmux only
    (parse_answers(TMUX_33), TmuxInfo(True, "kitty(0.26.5)", "xterm-kitty"), "kitty", False, True, "directly"),
    (parse_answers(TMUX_33), TmuxInfo(True, "kitty(0.35.2)", "xterm-kitty", frozenset({"RGB"})), "kitty", True,
     True, "placeholders"),
    (parse_answers(TMUX_33), TmuxInfo(True, "kitty(0.35.2)", "xterm-kitty"), "kitty", False, True, "RGB"),
    (parse_answers(TMUX_33), TmuxInfo(False, "kitty(0.26.5)", "xterm-kitty"), "halfcell", False, False,
     "allow-passthrough on"),
    (parse_answers(TMUX_33), TmuxInfo(True, "XTerm(379)", "xterm"), "halfcell", False, False, "not known"),
    (parse_answers(TMUX_33), TmuxInfo(True, "XTerm(379)", "xterm", frozenset({"sixel"})), "sixel", False, True,
     "lists with sixel"),
    (parse_answers(b"\x1bP>|tmux 3.4\x1b\\\x1b[?1;2;4c"), TmuxInfo(False, "XTerm(379)"), "sixel", False, False,
     "tmux draws sixel itself"),
])
def test_decide(answers, tmux, protocol, placeholders, wrap, said):
    found = decide("auto", tty=True, answers=answers, tmux=tmux, window_cell=(6, 13))
    assert (found.protocol, found.placeholders, found.wrap) == (protocol, placeholders, wrap)
    assert said in found.reason
    assert found.tmux == (tmux is not None)
    assert found.cell == (answers.cell or (6, 13))  # the terminal's answer first, else the window's size


def test_sixel_without_a_cell_size_is_not_trusted_and_forced_modes_are_kept():
    foot = parse_answers(b"\x1bP>|foot(1.16)\x1b\\\x1b[?62;4;22c")
    assert decide("auto", tty=True, answers=foot, tmux=None).protocol == "halfcell"
    assert decide("auto", tty=True, answers=foot, tmux=None, window_cell=(9, 18)).protocol == "sixel"
    assert decide("auto", tty=False, answers=Answers(), tmux=None).protocol == "none"
    forced = decide("kitty", tty=True, answers=Answers(), tmux=TmuxInfo(False))
    assert forced.protocol == "kitty" and forced.wrap and "passthrough is OFF" in forced.reason
    assert decide("halfcell", tty=True, answers=parse_answers(KITTY_026), tmux=None).protocol == "halfcell"
    assert decide("bogus", tty=False, answers=Answers(), tmux=None).protocol == "none"  # as auto


# ------------------------------------------------------------------ sixel, read back


def decode_sixel(data: bytes) -> np.ndarray:
    """An RGBA array from one sixel sequence (raster attributes, palette, bands, repeats, transparency)."""
    text = data.decode("ascii")
    assert text.startswith("\x1bP0;1;0q") and text.endswith("\x1b\\")
    body = text[len("\x1bP0;1;0q"):-2]
    raster = re.match(r'"1;1;(\d+);(\d+)', body)
    assert raster
    width, height = int(raster.group(1)), int(raster.group(2))
    body = body[raster.end():]
    out = np.zeros((-(-height // 6) * 6, width, 4), dtype=np.uint8)
    palette: dict[int, tuple[int, int, int]] = {}
    colour, x, band = 0, 0, 0
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "#":
            m = re.match(r"#(\d+)(?:;2;(\d+);(\d+);(\d+))?", body[i:])
            assert m
            colour = int(m.group(1))
            if m.group(2) is not None:
                palette[colour] = tuple(round(int(m.group(k)) * 255 / 100) for k in (2, 3, 4))  # type: ignore
            i += m.end()
            continue
        repeat = 1
        if ch == "!":
            m = re.match(r"!(\d+)(.)", body[i:])
            assert m
            repeat, ch = int(m.group(1)), m.group(2)
            i += m.end() - 1
        if ch == "$":
            x = 0
        elif ch == "-":
            x, band = 0, band + 1
        else:
            bits = ord(ch) - 63
            assert 0 <= bits < 64
            for _ in range(repeat):
                for r in range(6):
                    if bits >> r & 1:
                        out[band * 6 + r, x] = (*palette[colour], 255)
                x += 1
        i += 1
    return out[:height]


def test_sixel_round_trip_keeps_every_pixel_and_leaves_transparency_unpainted():
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (12, 3))
    picked = rng.integers(0, 12, (23, 37))
    rgba = np.dstack([colours[picked], np.full((23, 37), 255)]).astype(np.uint8)
    rgba[5:9, 10:20, 3] = 0  # a transparent hole
    rgba[:, 30:] = (200, 10, 10, 255)  # a run long enough to be run-length coded
    data = sixel.encode(Image.fromarray(rgba, "RGBA"))
    assert b"!7" in data  # seven equal columns
    back = decode_sixel(data)
    assert back.shape == (23, 37, 4)
    opaque = rgba[..., 3] == 255
    assert (back[..., 3] == 255).sum() == opaque.sum()
    assert (back[5:9, 10:20, 3] == 0).all()
    # the palette is given in percent: a colour comes back within 255/200 of itself
    assert np.abs(back[opaque][:, :3].astype(int) - rgba[opaque][:, :3]).max() <= 2


def test_sixel_rows_are_one_sequence_per_cell_row_of_that_height():
    image = Image.new("RGB", (30, 40), (10, 200, 30))
    rows = sixel.encode_rows(image, 13)
    assert len(rows) == 4  # 13 + 13 + 13 + 1
    assert [decode_sixel(r).shape[0] for r in rows] == [13, 13, 13, 1]
    assert all(r.startswith(b"\x1bP") and r.endswith(b"\x1b\\") for r in rows)


# ------------------------------------------------------------------ kitty


def test_kitty_transmission_is_chunked_and_placeholders_name_the_image():
    png = bytes(range(256)) * 40  # 10 KiB: three chunks of base64
    commands = kitty.transmit(0x123456, png)
    assert len(commands) == 4
    assert commands[0].startswith("\x1b_Ga=t,f=100,t=d,i=1193046,q=2,m=1;")
    assert all(c.startswith("\x1b_Gm=1;") for c in commands[1:-1]) and commands[-1].startswith("\x1b_Gm=0;")
    assert all(len(c.split(";", 1)[1]) <= kitty.CHUNK + 2 for c in commands)
    assert kitty.id_colour(0x123456) == (0x12, 0x34, 0x56)
    row = kitty.placeholder_row(2, 3)
    assert row.count(kitty.PLACEHOLDER) == 3 and len(row) == 9
    assert row[1] == row[4] == row[7] == "\u030e"  # the row number: the third diacritic
    assert [row[2], row[5], row[8]] == ["\u0305", "\u030d", "\u030e"]  # columns 0, 1, 2
    place = kitty.place(7, 2, 24, 10, src=(0, 32, 192, 160))
    assert place == "\x1b_Ga=p,i=7,p=2,c=24,r=10,x=0,y=32,w=192,h=160,C=1,z=1,q=2\x1b\\"


def test_graphics_reuses_ids_and_wraps_for_tmux():
    graphics = Graphics(Detection("kitty", "test", cell=(8, 16)))
    first = prepare(Image.new("RGB", (64, 64), "red"), 4, 2, "kitty", (8, 16))
    second = prepare(Image.new("RGB", (64, 64), "blue"), 4, 2, "kitty", (8, 16))
    graphics.upload(first)
    old_id = first.image_id
    assert old_id and first.png is None  # sent once; the bytes are not kept
    graphics.forget(first)
    graphics.upload(second)
    assert second.image_id == old_id  # sending under a used id replaces the terminal's copy
    graphics.wrap, graphics.origin = True, (3, 40)
    placed = graphics.place(second, 5, 10, 2)
    assert placed.startswith("\x1bPtmux;\x1b\x1b7\x1b\x1b[6;51H")  # the pane's origin added, 1-based
    assert placed.endswith("\x1b\\") and "\x1b\x1b_Ga=p" in placed


# ------------------------------------------------------------------ pictures


def test_fit_keeps_the_shape_and_reports_cells():
    assert fit((512, 512), 24, 12, "sixel", (6, 13)) == (24, 12, 144, 144)
    assert fit((512, 256), 24, 12, "kitty", (8, 16)) == (24, 6, 192, 96)
    assert fit((512, 512), 24, 12, "halfcell", (8, 16)) == (24, 12, 24, 24)
    assert fit((64, 64), 24, 12, "kitty", (8, 16), upscale=False)[2:] == (64, 64)
    assert fit((100, 10), 4, 4, "sixel", (8, 16), stretch=True) == (4, 4, 32, 64)


def test_text_rows_centre_the_picture_and_keep_the_box(tmp_path: Path):
    from rich.style import Style

    picture = prepare(Image.new("RGB", (100, 50), (0, 0, 255)), 10, 10, "halfcell", (8, 16))
    assert (picture.cols, picture.rows) == (10, 3)
    rows = text_rows(picture, 10, 12, Style())
    assert len(rows) == 10 and all(r.cell_length == 12 for r in rows)
    drawn = [i for i, r in enumerate(rows) if "\u2580" in r.text]
    assert drawn == [3, 4, 5]


def test_sixel_tiles_are_encoded_once_and_read_from_beside_the_thumbnail(tmp_path: Path):
    thumb = tmp_path / "ab" / "abcdef.jpg"
    thumb.parent.mkdir()
    Image.new("RGB", (256, 256), (40, 120, 200)).save(thumb)
    cache = sixel_cache_path(thumb, 24, 12, (6, 13))
    assert cache.parent == thumb.parent and cache.name == "abcdef.24x12.6x13.six"
    image = Image.open(thumb).convert("RGB")
    first = prepare(image, 24, 12, "sixel", (6, 13), sixel_cache=cache, source_mtime=thumb.stat().st_mtime)
    assert cache.exists() and first.sixel is not None and len(first.sixel) == first.rows == 12
    written = cache.stat().st_mtime_ns
    again = prepare(image, 24, 12, "sixel", (6, 13), sixel_cache=cache, source_mtime=thumb.stat().st_mtime)
    assert again.sixel == first.sixel and cache.stat().st_mtime_ns == written  # read, not encoded again
    cache.write_bytes(b"ddtui-sixel-1\nnot sixel")  # damaged: encoded again, and the cache mended
    mended = prepare(image, 24, 12, "sixel", (6, 13), sixel_cache=cache, source_mtime=thumb.stat().st_mtime)
    assert mended.sixel == first.sixel and cache.read_bytes() != b"ddtui-sixel-1\nnot sixel"
    time.sleep(0.01)
    Image.new("RGB", (256, 256), (200, 20, 20)).save(thumb)  # a new thumbnail: the old encoding is stale
    newer = prepare(Image.open(thumb).convert("RGB"), 24, 12, "sixel", (6, 13), sixel_cache=cache,
                    source_mtime=thumb.stat().st_mtime)
    assert newer.sixel != first.sixel
