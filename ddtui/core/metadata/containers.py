"""Getting the text out of image files: PNG text chunks, EXIF UserComment/MakerNote, JPEG COM segments, XMP."""

from __future__ import annotations

import html
import re
from typing import Any

from PIL import Image

from .common import PARAMETERS_KEY


_EXIF_IFD = 0x8769
_TAG_USER_COMMENT = 0x9286
_TAG_MAKER_NOTE = 0x927C
_TAG_SOFTWARE = 0x0131


def decode_user_comment(value: bytes | bytearray | str) -> str:
    """Decode an EXIF UserComment (8-byte charset prefix + payload) to text.

    "UNICODE\\0" payloads are UTF-16: a BOM wins, otherwise the byte order whose zero bytes sit
    where ASCII-range text would put them (piexif, used by A1111, writes big-endian).
    """
    if isinstance(value, str):
        return value.rstrip("\x00")
    data = bytes(value)
    prefix, body = data[:8], data[8:]
    if prefix == b"UNICODE\x00":
        if body.startswith((b"\xfe\xff", b"\xff\xfe")):
            text = body.decode("utf-16", errors="replace")
        else:
            body = body[: len(body) - len(body) % 2]
            zeros_even = body[0::2].count(0)
            zeros_odd = body[1::2].count(0)
            text = body.decode("utf-16-be" if zeros_even >= zeros_odd else "utf-16-le",
                               errors="replace")
    elif prefix == b"ASCII\x00\x00\x00":
        # Plenty of writers put UTF-8 behind the ASCII prefix.
        text = body.decode("utf-8", errors="replace")
    elif prefix == b"JIS\x00\x00\x00\x00\x00":
        text = body.decode("shift_jis", errors="replace")
    elif prefix == b"\x00" * 8:
        text = body.decode("utf-8", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.rstrip("\x00")


def _fix_text_chunk(value: str) -> str:
    # tEXt is latin-1 by spec, but sd.cpp (stb) and others store UTF-8 bytes there.
    if type(value) is str:  # noqa: E721 - iTXt subclasses str and is already proper UTF-8
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value
    return str(value)


def _decode_bytes(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return None


def _collect_chunks(im: Image.Image, notes: list[str]) -> dict[str, str]:
    chunks: dict[str, str] = {}
    text = getattr(im, "text", None)  # PNG: tEXt/zTXt/iTXt from before and after IDAT
    for key, value in (text if isinstance(text, dict) else {}).items():
        if isinstance(value, str):
            chunks[str(key)] = _fix_text_chunk(value)
    for key, value in im.info.items():
        if isinstance(value, str) and str(key) not in chunks:
            chunks[str(key)] = _fix_text_chunk(value)

    comment = im.info.get("comment")
    if isinstance(comment, (bytes, bytearray)):
        raw = bytes(comment)
        if raw.startswith(b"parameters\x00"):  # sd.cpp JPEG: COM segment "parameters\0<text>"
            chunks.setdefault(PARAMETERS_KEY, raw[11:].rstrip(b"\x00\xff").decode("utf-8", "replace"))
        else:
            chunks["comment"] = raw.rstrip(b"\x00").decode("utf-8", "replace")

    xmp = _decode_bytes(im.info.get("xmp"))
    if xmp:
        found = re.search(r"<sdcpp:parameters>(.*?)</sdcpp:parameters>", xmp, re.DOTALL)
        if found:  # sd.cpp WebP: XMP packet with an XML-escaped parameters element
            chunks.setdefault(PARAMETERS_KEY, html.unescape(found.group(1)))
        chunks["xmp"] = xmp

    try:
        exif = im.getexif()
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block must not hide the other chunks
        notes.append(f"unreadable EXIF: {exc}")
        return chunks
    # A1111 puts UserComment in the Exif IFD; Fooocus puts it straight into IFD0.
    comment_value = exif_ifd.get(_TAG_USER_COMMENT, exif.get(_TAG_USER_COMMENT))
    if isinstance(comment_value, (bytes, bytearray, str)) and comment_value:
        chunks["exif:UserComment"] = decode_user_comment(comment_value)
    maker = exif_ifd.get(_TAG_MAKER_NOTE, exif.get(_TAG_MAKER_NOTE))
    if isinstance(maker, (bytes, bytearray, str)) and 0 < len(maker) < 64:
        chunks["exif:MakerNote"] = (_decode_bytes(maker) or "").rstrip("\x00")
    software = exif.get(_TAG_SOFTWARE)
    if isinstance(software, str):
        chunks["exif:Software"] = software
    for tag in range(0x010D, 0x0111):
        # ComfyUI WebP: IFD0 Model/Make/... hold "prompt:{json}" and "workflow:{json}".
        found = re.match(r"(\w+):(\{.*)", str(exif.get(tag, "")), re.DOTALL)
        if found:
            chunks.setdefault(found.group(1), found.group(2))
    return chunks
